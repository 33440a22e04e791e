"""`make bench`: the operator under load, batched IAM writes against one write per activation,
both against the floor of the platform.

Each scenario runs in three modes, against a fresh world each time: the sandbox Kubernetes API
(HTTPS, admission webhooks on) and the IAM emulator (Google-like latency and quota) in this
process, and the operator as a process of its own (`jitaccess run`), exactly as deployed, with
batched IAM writes or one read-modify-write per activation; or, as the floor, the minimal operator
of floor_operator.py (the same admission, one status patch per request, no IAM). Requests are
created over HTTP as distinct users (engineer0@example.com, …); latency is measured from the
moment the create is sent to the moment a watch sees the request Active. CPU is measured over
the same window: the operator process's from /proc, this process's (the load, the sandbox API
and the emulator) apart.

    python benchmarks/bench.py [--scenarios "burst-500-1 steady-50"] [--latency-ms 100]

Prints a table and writes benchmarks/results/<scenario>.json (the batched run at the top level,
the per-activation baseline under "baseline", the floor under "floor", and the ratios: batched
over baseline, and each mode over the floor under "ratios"."over_floor").
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from resource import RUSAGE_SELF, getrusage
from typing import Any

import aiohttp
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed import Seeded, admitted_request, live_bindings, settle

from jitaccess.api.objects import parse_grant
from jitaccess_emulator.server import Emulator
from jitaccess_sandbox.kube_apiserver import assets_dir, why_not_available
from jitaccess_sandbox.runner import Sandbox, _free_port, _wait_for_port

API = "/apis/jitaccess.dev/v1alpha1"
NAMESPACE = "team-sre"
ROLE = "roles/compute.admin"
RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("floor", "batched", "per-activation")
FLOOR_OPERATOR = Path(__file__).resolve().parent / "floor_operator.py"
# Scenarios the floor has no counterpart for, and why.
FLOOR_NOT_APPLICABLE = {
    "expiry": "the floor never expires anything (no IAM, no expiry), so it has no expiry lag to compare",
    "scale": "the floor keeps no state and writes no IAM; there is nothing for it to reconcile on a restart",
}
# The engineers who file the requests: a group of their own, allowed to file requests in NAMESPACE.
ENGINEERS = "engineers@example.com"
EXPIRY_SHORTEST_S, EXPIRY_LONGEST_S = 15, 44
log = logging.getLogger("bench")


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
            "--kubeconfig", str(self.sandbox.kubeconfig),
            "--context", "admin",
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
            # The operator runs as admin (as the harness's setup and watch do, before the window opens).
            window.calls = collections.Counter(
                {k: n for k, n in (calls - window.calls).items() if k[0] == "admin" and k[2] != "namespaces"}
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


# -- scenarios ---------------------------------------------------------------------------------


async def run_scenario(scenario: Scenario, mode: str, settings: Settings) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{scenario.name}-") as directory:
        async with World(scenario, mode, settings, Path(directory)) as world:
            runner = {"burst": burst, "steady": steady, "expiry": expiry, "scale": scale}[scenario.kind]
            harness_cpu = time.process_time()
            api_server_cpu = world.api_server_cpu()
            result = await runner(world)
            if api_server_cpu is not None:
                result["api_server_cpu_s"] = round((world.api_server_cpu() or 0.0) - api_server_cpu, 1)
            world.sample_rss()
            operator_calls = {
                f"{verb} {resource}{'/' + sub if sub else ''}": count / max(1, result.get("activations") or 1)
                for (user, verb, resource, sub), count in world.sandbox.api.served.items()
                if user == "admin" and resource != "namespaces"
            }
            result.update(
                kubernetes_calls_per_activation={k: round(v, 2) for k, v in sorted(operator_calls.items())},
                operator_cpu_s=round(sum(world.operator_cpu_s.values()), 1),
                harness_cpu_s=round(time.process_time() - harness_cpu, 1),
                **window_figures(world.window, result.get("activations") or 0),
                scenario=scenario.name,
                mode=mode,
                api_server=world.api_server,
                emulator_latency_ms=settings.latency_ms,
                emulator_policy_bytes_limit=scenario.policy_bytes,
                peak_rss_mib=round(world.peak_rss_kib / 1024, 1),
            )
            return result


async def with_watch(
    world: World, body: Callable[[Observed], Awaitable[None]], expected: int = 0
) -> Observed:
    observed = Observed()
    watcher = asyncio.create_task(world.watch(observed))
    progress = asyncio.create_task(show_progress(world, observed, expected))
    try:
        await asyncio.sleep(0.2)  # the watch is established before anything is created
        world.open_window()
        await body(observed)
    finally:
        observed.ended = time.time()
        settled = all(name in observed.active or name in observed.failed for name in observed.created)
        await world.close_window(settled)
        for task in (watcher, progress):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await task
    return observed


async def show_progress(world: World, observed: Observed, expected: int) -> None:
    """One line per run on a terminal, redrawn twice a second: elapsed, created, Active, rate."""
    began = time.monotonic()
    run = f"{world.scenario.name} {world.mode}"
    with tqdm(
        total=expected or None,
        desc=f"{run}: created 0",
        unit="act",
        disable=not sys.stderr.isatty(),
        leave=False,
        bar_format="{desc}  Active {n}/{total}  {rate_fmt}  {elapsed}",
        ncols=shutil.get_terminal_size(fallback=(100, 24)).columns,
        mininterval=0.5,
    ) as line:

        def redraw() -> None:
            line.set_description_str(f"{run}: created {len(observed.created)}", refresh=False)
            line.update(len(observed.active) - line.n)

        try:
            while True:
                redraw()
                await asyncio.sleep(0.5)
        finally:
            redraw()
            log.info(
                "%s %s: %d Active in %.0fs", world.scenario.name, world.mode, line.n, time.monotonic() - began
            )


async def until(observed: Observed, done: Callable[[], bool], deadline: float) -> bool:
    while not done():
        remaining = deadline - time.time()
        if remaining <= 0:
            return False
        observed.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(observed.changed.wait(), timeout=min(remaining, 1.0))
    return True


async def burst(world: World) -> dict[str, Any]:
    await world.start_operator()
    world.emulator.calls.clear()
    count = world.scenario.count

    async def body(observed: Observed) -> None:
        await asyncio.gather(*(world.create(observed, n) for n in range(count)))
        settled = lambda: len(observed.active) + len(observed.failed) >= count  # noqa: E731
        await until(observed, settled, time.time() + world.settings.deadline_s)

    observed = await with_watch(world, body, count)
    return activation_figures(world, observed, count)


async def steady(world: World) -> dict[str, Any]:
    await world.start_operator()
    world.emulator.calls.clear()
    rate, seconds = world.scenario.rate, world.settings.steady_seconds
    count = int(rate * seconds)

    async def body(observed: Observed) -> None:
        start = time.monotonic()
        creations = []
        for n in range(count):
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            # Short-lived, so that the policies hold about rate x 20 s of bindings, as in real life.
            creations.append(asyncio.create_task(world.create(observed, n, duration="20s")))
        await asyncio.gather(*creations)
        settled = lambda: len(observed.active) + len(observed.failed) >= count  # noqa: E731
        await until(observed, settled, time.time() + world.settings.deadline_s)

    observed = await with_watch(world, body, count)
    return activation_figures(world, observed, count)


async def expiry(world: World) -> dict[str, Any]:
    await world.start_operator()
    world.emulator.calls.clear()
    count = world.scenario.count

    async def body(observed: Observed) -> None:
        # Durations 15 s … 44 s: the expiries are staggered over half a minute.
        durations = (f"{EXPIRY_SHORTEST_S + n % 30}s" for n in range(count))
        await asyncio.gather(*(world.create(observed, n, duration=d) for n, d in enumerate(durations)))
        settled = lambda: len(observed.expired) + len(observed.failed) >= count  # noqa: E731
        await until(observed, settled, time.time() + world.settings.deadline_s + EXPIRY_LONGEST_S)

    observed = await with_watch(world, body, count)
    figures = activation_figures(world, observed, count)
    lags = [
        observed.expired[n] - observed.expires_at[n] for n in observed.expired if n in observed.expires_at
    ]
    figures["expired"] = len(lags)
    figures["expiry_lag_s"] = percentiles(lags, ("p50", "p99"))
    figures["expiry_lags_s"] = sorted(round(lag, 3) for lag in lags)
    figures["jit_bindings_left"] = sum(
        1
        for resource in world.resources
        for binding in world.emulator.snapshot(resource)["bindings"]
        if "jitaccess.dev/request=" in (binding.get("condition") or {}).get("description", "")
    )
    return figures


async def scale(world: World) -> dict[str, Any]:
    scenario = world.scenario
    key = world.key
    now = datetime.now(UTC)
    grants = {}
    for index, resource in enumerate(world.resources):
        grants[f"bench-{index}"], _ = parse_grant(grant_body(index, resource))
    seeded: list[Seeded] = []
    for n in range(scenario.count):
        grant_name = f"bench-{n % scenario.projects}"
        active = n < scenario.active
        created = now - (timedelta(minutes=10) if active else timedelta(days=2))
        spec = {
            "grant": grant_name,
            "roles": [ROLE],
            "duration": "1h",
            "justification": f"INC-{n}: benchmark",
            "requester": f"user:{engineer(n)}",
        }
        item = Seeded(admitted_request(NAMESPACE, f"req-{n}", spec, created, key))
        grant = grants[grant_name]
        assert grant is not None
        settle(item, grant, created + timedelta(seconds=1), key)
        if not active:
            settle(item, grant, created + timedelta(hours=1, seconds=2), key)
        seeded.append(item)
    phases = {item.body["status"]["phase"] for item in seeded}
    for item in seeded:
        world.sandbox.api.seed("jitaccess.dev/v1alpha1/activationrequests", item.body)
    for resource, bindings in live_bindings(seeded).items():
        world.emulator.seed(resource, bindings)
    world.emulator.calls.clear()

    async def catch_up() -> tuple[float, int]:
        """Start the operator; seconds until it has seen every request and has nothing left to do."""
        started = await world.start_operator()
        deadline = started + world.settings.deadline_s
        while time.time() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                figures = await world.metrics()
                known = sum(v for k, v in figures.items() if k.startswith("jitaccess_requests{"))
                leading = figures.get("jitaccess_leader") == 1  # a standby's work is always 0
                if leading and known >= scenario.count and figures.get("jitaccess_work_busy") == 0:
                    return time.time() - started, sum(
                        1 for c in world.emulator.calls if c.method == "setIamPolicy"
                    )
            world.sample_rss()
            await asyncio.sleep(0.2)
        raise TimeoutError(
            f"the operator did not catch up with {scenario.count} requests in {world.settings.deadline_s}s"
        )

    start_s, start_writes = await catch_up()
    await world.stop_operator()
    world.emulator.calls.clear()
    restart_s, restart_writes = await catch_up()
    return {
        "activations": 0,
        "requests": scenario.count,
        "seeded_phases": sorted(phases),
        "start_to_reconciled_s": round(start_s, 2),
        "restart_to_reconciled_s": round(restart_s, 2),
        "iam_writes_on_start": start_writes,
        "iam_writes_on_restart": restart_writes,
        "latency_s": None,
        "throughput_per_s": None,
        **iam_figures(world),
    }


# -- figures -----------------------------------------------------------------------------------


def activation_figures(world: World, observed: Observed, count: int) -> dict[str, Any]:
    latencies = [observed.active[n] - observed.created[n] for n in observed.active if n in observed.created]
    # Neither Active nor refused when the run was cut off: counted as taking as long as we waited.
    censored = [
        observed.ended - created
        for name, created in observed.created.items()
        if name not in observed.active and name not in observed.failed
    ]
    incomplete = count - len(latencies)
    first = min(observed.created.values(), default=0.0)
    last = max(observed.active.values(), default=first)
    figures: dict[str, Any] = {
        "requests": count,
        "activations": len(latencies),
        "incomplete": incomplete,
        "failures": dict(list(observed.failed.items())[:5]),
        "failure_count": len(observed.failed),
        "latency_s": percentiles(latencies + censored, ("p50", "p95", "p99")),
        "latency_censored": len(censored),
        # Every request's figure (the censored ones as long as the run waited), for CDF plots.
        "latencies_s": sorted(round(value, 3) for value in latencies + censored),
        # Of which admission (the create call, both webhooks included).
        "admission_s": percentiles(
            [observed.admitted[n] - observed.created[n] for n in observed.admitted], ("p50", "p99")
        ),
        "throughput_per_s": round(len(latencies) / (last - first), 2) if last > first else None,
    }
    figures.update(iam_figures(world))
    figures["set_iam_policy_per_activation"] = (
        round(figures["set_iam_policy_calls"] / len(latencies), 4) if latencies else None
    )
    return figures


def window_figures(window: Window | None, activations: int) -> dict[str, Any]:
    """CPU and API calls in the measured window, and per activation (for the floor: per request
    it marked Active). None where there was no window (scale) or nothing was activated."""
    if window is None or not window.closed:
        return dict.fromkeys(
            (
                "window_s",
                "operator_cpu_window_s",
                "operator_cpu_per_activation_ms",
                "harness_cpu_window_s",
                "harness_cpu_per_activation_ms",
                "operator_api_calls",
                "api_calls_per_activation",
            )
        )
    calls = sum(window.calls.values()) if window.calls is not None else None

    def per(total: float | None, scale: float = 1.0, digits: int = 2) -> float | None:
        return round(total * scale / activations, digits) if total is not None and activations else None

    return {
        "window_s": round(window.ended - window.started, 2),
        "operator_cpu_window_s": round(window.operator_cpu, 2) if window.operator_cpu is not None else None,
        "operator_cpu_per_activation_ms": per(window.operator_cpu, 1000.0),
        "harness_cpu_window_s": round(window.harness_cpu, 2),
        "harness_cpu_per_activation_ms": per(window.harness_cpu, 1000.0),
        "operator_api_calls": calls,
        "api_calls_per_activation": per(calls),
    }


def iam_figures(world: World) -> dict[str, Any]:
    calls = world.emulator.calls
    return {
        "set_iam_policy_calls": sum(1 for c in calls if c.method == "setIamPolicy"),
        "get_iam_policy_calls": sum(1 for c in calls if c.method == "getIamPolicy"),
        "conflicts": sum(1 for c in calls if c.status == 409),
        "quota_exceeded": sum(1 for c in calls if c.status == 429),
    }


def percentiles(values: list[float], which: tuple[str, ...]) -> dict[str, float | None]:
    if not values:
        return {name: None for name in which}
    ordered = sorted(values)
    if len(ordered) == 1:
        return {name: round(ordered[0], 3) for name in which}
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {name: round(cuts[int(name[1:]) - 1], 3) for name in which}


def _epoch(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _message(status: dict[str, Any]) -> str:
    for condition in status.get("conditions") or []:
        if condition.get("message"):
            return str(condition["message"])[:200]
    return ""


# -- report ------------------------------------------------------------------------------------

COLUMNS = (
    ("scenario", 13),
    ("mode", 14),
    ("done", 9),
    ("p50 s", 7),
    ("p95 s", 7),
    ("p99 s", 7),
    ("act/s", 7),
    ("set/act", 8),
    ("sets", 6),
    ("gets", 6),
    ("409", 6),
    ("429", 6),
    ("lag p50", 8),
    ("lag p99", 8),
    ("RSS MiB", 8),
    ("cpu ms", 7),  # operator CPU per activation (the floor: per request), in the window
    ("h-cpu ms", 9),  # this process's: the load, the sandbox API and the emulator
    ("api/act", 8),  # the operator's calls to the Kubernetes API per activation, in the window
)


def row(result: dict[str, Any]) -> str:
    latency = result.get("latency_s") or {}
    lag = result.get("expiry_lag_s") or {}
    done = (
        f"{result.get('activations', 0)}/{result.get('requests', 0)}"
        if result.get("latency_s") is not None
        else f"{result.get('restart_to_reconciled_s')}s"
    )
    cells = (
        result["scenario"],
        result["mode"],
        done,
        latency.get("p50"),
        latency.get("p95"),
        latency.get("p99"),
        result.get("throughput_per_s"),
        result.get("set_iam_policy_per_activation"),
        result.get("set_iam_policy_calls"),
        result.get("get_iam_policy_calls"),
        result.get("conflicts"),
        result.get("quota_exceeded"),
        lag.get("p50"),
        lag.get("p99"),
        result.get("peak_rss_mib"),
        result.get("operator_cpu_per_activation_ms"),
        result.get("harness_cpu_per_activation_ms"),
        result.get("api_calls_per_activation"),
    )
    return " ".join(_cell(value, width) for value, (_, width) in zip(cells, COLUMNS, strict=True))


def _cell(value: Any, width: int) -> str:
    text = "-" if value is None else str(value)
    return text.rjust(width) if isinstance(value, int | float) else text.ljust(width)


def _ratio(
    mine: dict[str, Any], theirs: dict[str, Any], get: Callable[[dict[str, Any]], Any]
) -> float | None:
    a, b = get(mine), get(theirs)
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return None
    return round(a / b, 4)


def ratios(batched: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float | None]:
    def ratio(get: Callable[[dict[str, Any]], Any]) -> float | None:
        return _ratio(batched, baseline, get)

    return {
        "latency_p50": ratio(lambda r: (r.get("latency_s") or {}).get("p50")),
        "latency_p99": ratio(lambda r: (r.get("latency_s") or {}).get("p99")),
        "throughput": ratio(lambda r: r.get("throughput_per_s")),
        "set_iam_policy_calls": ratio(lambda r: r.get("set_iam_policy_calls")),
        "get_iam_policy_calls": ratio(lambda r: r.get("get_iam_policy_calls")),
        "expiry_lag_p99": ratio(lambda r: (r.get("expiry_lag_s") or {}).get("p99")),
        "peak_rss": ratio(lambda r: r.get("peak_rss_mib")),
    }


def over_floor(run: dict[str, Any], floor: dict[str, Any]) -> dict[str, float | None]:
    """A mode's figures over the floor's: latency, operator CPU per activation over the floor's per
    request, this process's CPU likewise, and the operator's API calls per activation."""

    def ratio(get: Callable[[dict[str, Any]], Any]) -> float | None:
        return _ratio(run, floor, get)

    return {
        "latency_p50": ratio(lambda r: (r.get("latency_s") or {}).get("p50")),
        "latency_p99": ratio(lambda r: (r.get("latency_s") or {}).get("p99")),
        "cpu_per_activation": ratio(lambda r: r.get("operator_cpu_per_activation_ms")),
        "harness_cpu_per_activation": ratio(lambda r: r.get("harness_cpu_per_activation_ms")),
        "api_calls_per_activation": ratio(lambda r: r.get("api_calls_per_activation")),
    }


def document_of(scenario: Scenario, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The scenario's JSON: the batched run at the top level (else the first run), the baseline
    under "baseline", the floor under "floor" (or why there is none), and the ratios."""
    first = results.get("batched") or next(iter(results.values()), None)
    document: dict[str, Any] = dict(first) if first is not None else {"scenario": scenario.name}
    if "batched" in results and "per-activation" in results:
        document["baseline"] = results["per-activation"]
        document["ratios"] = ratios(results["batched"], results["per-activation"])
    floor = results.get("floor")
    others = {mode: run for mode, run in results.items() if mode != "floor"}
    if floor is not None:
        document["floor"] = floor
        if others:
            document.setdefault("ratios", {})["over_floor"] = {
                mode: over_floor(run, floor) for mode, run in others.items()
            }
    elif scenario.kind in FLOOR_NOT_APPLICABLE:
        document["floor"] = {
            "scenario": scenario.name,
            "mode": "floor",
            "skipped": FLOOR_NOT_APPLICABLE[scenario.kind],
        }
    # What else the machine was doing: absolute figures swing with it, ratios much less.
    document["machine"] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    return document


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


async def run_modes(scenario: Scenario, modes: list[str], settings: Settings, out: Path) -> dict[str, Any]:
    """Run `scenario` in each mode, print a row each and the ratios, write out/<name>.json."""
    results: dict[str, dict[str, Any]] = {}
    for mode in modes:
        if scenario.kind == "scale" and settings.kube_apiserver_assets is not None:
            print(
                f"{scenario.name:13} {mode:14} n/a: its requests are seeded into the sandbox API's store",
                flush=True,
            )
            continue
        if mode == "floor" and scenario.kind in FLOOR_NOT_APPLICABLE:
            print(f"{scenario.name:13} {'floor':14} n/a: {FLOOR_NOT_APPLICABLE[scenario.kind]}", flush=True)
            continue
        results[mode] = await run_scenario(scenario, mode, settings)
        print(row(results[mode]), flush=True)
    document = document_of(scenario, results)
    ratios_found = document.get("ratios") or {}
    if "baseline" in document:
        plain = {k: v for k, v in ratios_found.items() if k != "over_floor"}
        print(f"{'':13} {'ratio b/base':14} " + json.dumps(plain), flush=True)
    for mode, figures in (ratios_found.get("over_floor") or {}).items():
        print(
            f"{'':13} {mode[:8] + '/floor':14} "
            f"p50 {_times(figures['latency_p50'])}  p99 {_times(figures['latency_p99'])}  "
            f"cpu/act {_times(figures['cpu_per_activation'])}  "
            f"harness cpu/act {_times(figures['harness_cpu_per_activation'])}  "
            f"api/act {_times(figures['api_calls_per_activation'])}",
            flush=True,
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{scenario.name}.json").write_text(json.dumps(document, indent=2) + "\n")
    return document


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenarios", default=os.environ.get("SCENARIOS", ""), help="space-separated; default all"
    )
    parser.add_argument("--latency-ms", type=float, default=100.0, help="emulator latency per IAM call")
    parser.add_argument("--steady-seconds", type=float, default=60.0)
    parser.add_argument(
        "--deadline", type=float, default=30.0, help="seconds to wait for stragglers after the last create"
    )
    parser.add_argument("--modes", default=" ".join(MODES))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--verbose", "-v", action="store_true")
    parser.add_argument("--profile", type=Path, help="write cProfile files of the operator and harness here")
    parser.add_argument(
        "--api-server",
        choices=("auto", "sandbox", "kube-apiserver"),
        default="auto",
        help="the Kubernetes API to measure against; auto: kube-apiserver when KUBEBUILDER_ASSETS has it",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    names = args.scenarios.split() or list(SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    wrong = [mode for mode in args.modes.split() if mode not in MODES]
    if wrong:
        parser.error(f"unknown mode(s) {', '.join(wrong)}; known: {', '.join(MODES)}")
    assets = assets_dir()
    if args.api_server == "kube-apiserver" and assets is None:
        parser.error(f"--api-server kube-apiserver: {why_not_available()}")
    settings = Settings(
        args.latency_ms,
        args.steady_seconds,
        args.deadline,
        args.verbose,
        args.profile,
        kube_apiserver_assets=assets if args.api_server != "sandbox" else None,
    )
    print(
        f"API server: {'kube-apiserver from ' + str(assets) if settings.kube_apiserver_assets else 'sandbox'}"
    )
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    print(
        " ".join(
            title.ljust(width) if i < 2 else title.rjust(width) for i, (title, width) in enumerate(COLUMNS)
        )
    )
    began = time.monotonic()
    for name in names:
        await run_modes(SCENARIOS[name], args.modes.split(), settings, args.out)
    print(f"\n{len(names)} scenario(s) in {time.monotonic() - began:.0f}s; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
