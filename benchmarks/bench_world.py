"""The world a bench run measures: a fresh sandbox API (or kube-apiserver) and IAM emulator in
this process, the operator (or the floor) as a child process, the load's engineers, and what is
seen and spent while requests are created and served."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from resource import RUSAGE_SELF, getrusage
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))


from jitaccess_emulator.server import Emulator
from jitaccess_sandbox.runner import OPERATOR_USER, Sandbox, _free_port, _wait_for_port

API = "/apis/jitaccess.dev/v1alpha1"
NAMESPACE = "team-sre"
ROLE = "roles/compute.admin"
FLOOR_OPERATOR = Path(__file__).resolve().parent / "floor_operator.py"
# Scenarios the floor has no counterpart for, and why.
FLOOR_NOT_APPLICABLE = {
    "expiry": "the floor never expires anything (no IAM, no expiry), so it has no expiry lag to compare",
    "scale": "the floor keeps no state and writes no IAM; there is nothing for it to reconcile on a restart",
}
# The engineers who file the requests: a group of their own, allowed to file requests in NAMESPACE.
ENGINEERS = "engineers@example.com"


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # burst | steady | expiry | scale
    count: int = 0  # requests (burst, expiry, scale)
    projects: int = 1
    rate: int = 0  # requests per second (steady)
    active: int = 0  # of `count`, how many are Active (scale)
    # Google's policy size cap (~64 KB) holds about 180 of our bindings; a scenario that puts more
    # on one project raises the emulator's cap, and says so in its results.
    policy_bytes: int = 64 * 1024

    def people(self, settings: Settings) -> int:
        """How many engineers file its requests (one request each)."""
        return int(self.rate * settings.steady_seconds) if self.kind == "steady" else self.count


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("burst-100-1", "burst", count=100),
        Scenario("burst-100-10", "burst", count=100, projects=10),
        Scenario("burst-500-1", "burst", count=500, policy_bytes=1024 * 1024),
        Scenario("burst-500-10", "burst", count=500, projects=10),
        # Steady load on one project (~1,000 live bindings: the cap is raised as for burst-500-1),
        # and spread over 10 projects, where the quota binds: 10 projects sharing 8 writes/s get
        # a write each every 1.25 s, which is then the floor of their p99.
        Scenario("steady-10", "steady", rate=10, policy_bytes=1024 * 1024),
        Scenario("steady-50", "steady", rate=50, policy_bytes=1024 * 1024),
        Scenario("steady-50-10", "steady", rate=50, projects=10),
        Scenario("expiry-500", "expiry", count=500, projects=10),
        Scenario("scale-10000", "scale", count=10_000, active=1_000, projects=10),
    )
}


@dataclass
class Settings:
    latency_ms: float = 100.0
    steady_seconds: float = 60.0
    # How long to wait for stragglers after the last request was created. The baseline cannot
    # keep up with most scenarios; what it has not done by then counts as "incomplete", with the
    # time it waited as its latency (so its percentiles are lower bounds, flattering it).
    deadline_s: float = 30.0
    verbose: bool = False
    profile_dir: Path | None = None  # cProfile the operator and this harness into that folder
    # kube-apiserver and etcd from this folder (KUBEBUILDER_ASSETS) instead of the sandbox API.
    kube_apiserver_assets: Path | None = None


@dataclass
class Observed:
    created: dict[str, float] = field(default_factory=dict)  # name -> time.time() the create was sent
    admitted: dict[str, float] = field(default_factory=dict)  # when the create returned
    active: dict[str, float] = field(default_factory=dict)
    expired: dict[str, float] = field(default_factory=dict)
    expires_at: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    ended: float = 0.0  # when the scenario stopped waiting
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class World:
    """One fresh sandbox API + emulator in this process, and the operator as a child process."""

    def __init__(self, scenario: Scenario, mode: str, settings: Settings, directory: Path) -> None:
        self.scenario, self.mode, self.settings, self.directory = scenario, mode, settings, directory
        self.sandbox = Sandbox(
            directory,
            run_operator=False,
            tick_s=0.1,
            kube_apiserver_assets=settings.kube_apiserver_assets,
            # Each request is filed by an engineer of its own: their tokens exist before the API serves.
            extra_users={engineer(n): [ENGINEERS] for n in range(scenario.people(settings))},
        )
        self.operator: subprocess.Popen[bytes] | None = None
        self.metrics_port = _free_port()
        self.key_file = directory / "attestation.key"
        self.key = secrets.token_hex(32).encode()  # the operator reads the file as text
        self.session: aiohttp.ClientSession | None = None
        self.peak_rss_kib = 0
        self.operator_cpu_s: dict[int, float] = {}  # per operator process (scale restarts it)
        self.window: Window | None = None  # what was measured while requests were created and served

    @property
    def emulator(self) -> Emulator:
        return self.sandbox.emulator

    @property
    def resources(self) -> list[str]:
        return [f"projects/bench-{i}" for i in range(self.scenario.projects)]

    async def __aenter__(self) -> World:
        await self.sandbox.__aenter__()
        self.key_file.write_bytes(self.key)
        self.emulator.resources.update(self.resources)
        self.emulator.configure(
            {
                "latency_ms": self.settings.latency_ms,
                "quota": {},
                "limits": {"policy_bytes": self.scenario.policy_bytes},
            }
        )
        context = ssl.create_default_context(cadata=self.sandbox._api_tls.ca_pem.decode())
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=64), timeout=aiohttp.ClientTimeout(total=120)
        )
        await self.call(
            "POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NAMESPACE}/rolebindings", requesters()
        )
        for index, resource in enumerate(self.resources):
            await self.call("POST", f"{API}/eligiblegrants", grant_body(index, resource))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_operator()
        if self.session is not None:
            await self.session.close()
        await self.sandbox.__aexit__(*exc)

    async def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, user: str = "admin"
    ) -> dict[str, Any]:
        assert self.session is not None
        async with self.session.request(
            method,
            self.sandbox.k8s_url + path,
            json=body,
            headers={"Authorization": f"Bearer {self.token(user)}"},
        ) as response:
            answer = await response.json(content_type=None)
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: {response.status} {answer.get('message')}")
            return answer

    def token(self, user: str) -> str:
        return self.sandbox.tokens[user]

    @property
    def api_server(self) -> str:
        """Which API server the run measured: the sandbox's (Python, in this process) or a real one."""
        return "kube-apiserver" if self.sandbox.kube_apiserver is not None else "sandbox"

    def api_server_cpu(self) -> float | None:
        """CPU seconds of kube-apiserver and etcd so far (None on the sandbox API: it is this process)."""
        server = self.sandbox.kube_apiserver
        return None if server is None else sum(filter(None, map(process_cpu, server.pids())))

    async def start_operator(self) -> float:
        """Start `jitaccess run` (or the floor); returns the time it was started (the webhooks are live after)."""
        started = time.time()
        floor = self.mode == "floor"
        profile = (
            ["-m", "cProfile", "-o", str(self.settings.profile_dir / f"operator-{self.mode}.prof")]
            if self.settings.profile_dir
            else []
        )
        program = [str(FLOOR_OPERATOR)] if floor else ["-m", "jitaccess.cli"]
        command = [
            sys.executable, *profile, *program,
            "run",
            # As deployed: the operator's ServiceAccount, its RBAC, and the webhooks' matchConditions for it.
            "--kubeconfig", str(self.sandbox.operator_kubeconfig),
            "--context", OPERATOR_USER,
            "--iam-endpoint", self.sandbox.iam_url,
            "--attestation-key-file", str(self.key_file),
            "--webhook-host", "127.0.0.1",
            "--webhook-port", str(self.sandbox.webhook_port),
            "--webhook-cert-dir", str(self.sandbox.webhook_cert_dir),
        ]  # fmt: skip
        if not floor:  # the floor takes no Lease and serves no /metrics (floor_operator.py says why)
            command += [
                "--iam-write-mode", self.mode,
                "--metrics-host", "127.0.0.1",
                "--metrics-port", str(self.metrics_port),
                "--leader-elect",  # as deployed: the Lease is taken (at once) before any work
                "--leader-election-identity", "jitaccess-bench",
            ]  # fmt: skip
        log_file = open(self.directory / "operator.log", "ab")
        self.operator = subprocess.Popen(
            [*command, *(["-v"] if self.settings.verbose else [])],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log_file.close()
        try:
            await _wait_for_port(self.sandbox.webhook_port, timeout_s=60)
            if not floor:
                await _wait_for_port(self.metrics_port, timeout_s=60)
            await self.sandbox.wait_for_admission()
        except TimeoutError:
            tail = (self.directory / "operator.log").read_text()[-2000:]
            raise RuntimeError(f"the operator did not start (exit {self.operator.poll()}):\n{tail}") from None
        return started

    async def stop_operator(self) -> None:
        if self.operator is None:
            return
        self.sample_rss()
        self.operator.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.operator.wait, 30)
        except subprocess.TimeoutExpired:
            self.operator.kill()
            await asyncio.to_thread(self.operator.wait)
        self.operator = None

    def sample_rss(self) -> None:
        """The operator's peak resident memory (VmHWM), the figure the target is about, and its CPU time."""
        if self.operator is None:
            return
        cpu = self.operator_cpu()
        if cpu is not None:
            self.operator_cpu_s[self.operator.pid] = cpu
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.operator.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))

    def operator_cpu(self) -> float | None:
        """CPU seconds the operator process has used so far (utime + stime of /proc/PID/stat, all threads)."""
        return process_cpu(self.operator.pid) if self.operator is not None else None

    def api_calls(self) -> collections.Counter[tuple[str, str, str, str]] | None:
        """Every call the sandbox API served so far, by (user, verb, resource, subresource); None
        on an API server that does not count them."""
        api = getattr(self.sandbox, "api", None)
        return collections.Counter(api.served) if api is not None else None

    def open_window(self) -> None:
        self.window = Window(time.time(), self.operator_cpu(), harness_cpu(), self.api_calls())

    async def close_window(self, settled: bool) -> None:
        """End the measured window; when every request settled, first let the operator finish what
        follows (Events, the grants' counts), at most a few seconds, so its CPU is all counted."""
        window = self.window
        if window is None:
            return
        if settled:
            await self.quiesce()
        window.ended = time.time()
        before, after = window.operator_cpu, self.operator_cpu()
        window.operator_cpu = after - before if before is not None and after is not None else None
        window.harness_cpu = harness_cpu() - window.harness_cpu
        calls = self.api_calls()
        if calls is not None and window.calls is not None:
            window.calls = collections.Counter(
                {k: n for k, n in (calls - window.calls).items() if k[0] == OPERATOR_USER}
            )
        window.closed = True

    async def quiesce(self, step_s: float = 0.25, limit_s: float = 5.0) -> None:
        """Until the operator used at most one clock tick of CPU in `step_s` (or `limit_s` passed)."""
        deadline = time.monotonic() + limit_s
        last = self.operator_cpu()
        while last is not None and time.monotonic() < deadline:
            await asyncio.sleep(step_s)
            now = self.operator_cpu()
            if now is None or now - last <= 1.0 / os.sysconf("SC_CLK_TCK"):
                return
            last = now

    async def metrics(self) -> dict[str, float]:
        assert self.session is not None
        async with self.session.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as response:
            text = await response.text()
        figures: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    figures[name] = float(value)
        return figures

    async def watch(self, observed: Observed) -> None:
        """Follow every request's phase over a real watch, noting when each was first seen where."""
        assert self.session is not None
        path = f"{self.sandbox.k8s_url}{API}/namespaces/{NAMESPACE}/activationrequests?watch=true&timeoutSeconds=3600"
        async with self.session.get(
            path,
            headers={"Authorization": f"Bearer {self.token('admin')}"},
            timeout=aiohttp.ClientTimeout(total=None),
        ) as response:
            async for line in response.content:
                if not line.strip():
                    continue
                now = time.time()
                event = json.loads(line)
                body = event.get("object") or {}
                name = (body.get("metadata") or {}).get("name", "")
                status = body.get("status") or {}
                phase = status.get("phase")
                if phase == "Active":
                    observed.active.setdefault(name, now)
                elif phase == "Expired":
                    observed.expired.setdefault(name, now)
                    if status.get("expiresAt"):
                        observed.expires_at[name] = _epoch(status["expiresAt"])
                elif phase in ("ActivationFailed", "Rejected", "Denied"):
                    observed.failed.setdefault(name, f"{phase}: {_message(status)}")
                observed.changed.set()

    async def create(self, observed: Observed, number: int, duration: str = "30m") -> None:
        name = f"req-{number}"
        resource_index = number % self.scenario.projects
        body = {
            "apiVersion": "jitaccess.dev/v1alpha1",
            "kind": "ActivationRequest",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {
                "grant": f"bench-{resource_index}",
                "roles": [ROLE],
                "duration": duration,
                "justification": f"INC-{number}: benchmark",
            },
        }
        observed.created[name] = time.time()
        try:
            await self.call(
                "POST", f"{API}/namespaces/{NAMESPACE}/activationrequests", body, user=engineer(number)
            )
            observed.admitted[name] = time.time()
        except (RuntimeError, aiohttp.ClientError, TimeoutError) as error:
            observed.failed[name] = f"create: {error}"
            observed.changed.set()


@dataclass
class Window:
    """From the first create to the last request settled: the operator's CPU, this process's CPU
    (the load, the sandbox API and the emulator) and the operator's API calls. Totals so far
    while open; what was spent in the window once closed."""

    started: float
    operator_cpu: float | None
    harness_cpu: float
    calls: collections.Counter[tuple[str, str, str, str]] | None
    ended: float = 0.0
    closed: bool = False


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process so far, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def harness_cpu() -> float:
    usage = getrusage(RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def requesters() -> dict[str, Any]:
    """The engineers may file requests in NAMESPACE, as README's installation binds requesters."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "bench-requesters", "namespace": NAMESPACE},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "jitaccess-requester",
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": ENGINEERS}],
    }


def grant_body(index: int, resource: str) -> dict[str, Any]:
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "EligibleGrant",
        "metadata": {"name": f"bench-{index}"},
        "spec": {
            "resource": resource,
            "roles": [ROLE],
            "principals": ["domain:example.com"],
            "maxDuration": "2h",
            "justification": {"pattern": "^INC-[0-9]+: .+"},
        },
    }


def engineer(number: int) -> str:
    return f"engineer{number}@example.com"


def _epoch(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _message(status: dict[str, Any]) -> str:
    for condition in status.get("conditions") or []:
        if condition.get("message"):
            return str(condition["message"])[:200]
    return ""
