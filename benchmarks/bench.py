"""`make bench`: the operator under load, batched IAM writes against one write per activation.

Each scenario runs twice, against a fresh world each time: the sandbox Kubernetes API (HTTPS,
admission webhooks on) and the IAM emulator (Google-like latency and quota) in this process, and
the operator as a process of its own (`jitaccess run`), exactly as deployed. Requests are created
over HTTP as distinct users (engineer0@example.com, …); latency is measured from the moment the
create is sent to the moment a watch sees the request Active.

    python benchmarks/bench.py [--scenarios "burst-500-1 steady-50"] [--latency-ms 100]

Prints a table and writes benchmarks/results/<scenario>.json (the batched run at the top level,
the per-activation baseline under "baseline", and their ratios).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
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
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seed import Seeded, admitted_request, live_bindings, settle

from jitaccess.api.objects import parse_grant
from jitaccess_emulator.server import Emulator
from jitaccess_sandbox.runner import Sandbox, _free_port, _wait_for_port

API = "/apis/jitaccess.dev/v1alpha1"
NAMESPACE = "team-sre"
ROLE = "roles/compute.admin"
RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("batched", "per-activation")
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
        self.sandbox = Sandbox(directory, run_operator=False, tick_s=0.1)
        self.operator: subprocess.Popen[bytes] | None = None
        self.metrics_port = _free_port()
        self.key_file = directory / "attestation.key"
        self.key = secrets.token_hex(32).encode()  # the operator reads the file as text
        self.session: aiohttp.ClientSession | None = None
        self.peak_rss_kib = 0
        self.operator_cpu_s: dict[int, float] = {}  # per operator process (scale restarts it)

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
            headers={"Authorization": f"Bearer {self.sandbox.tokens[user]}"},
        ) as response:
            answer = await response.json(content_type=None)
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: {response.status} {answer.get('message')}")
            return answer

    async def start_operator(self) -> float:
        """Start `jitaccess run`; returns the time it was started (the webhooks are live after)."""
        started = time.time()
        profile = (
            ["-m", "cProfile", "-o", str(self.settings.profile_dir / f"operator-{self.mode}.prof")]
            if self.settings.profile_dir
            else []
        )
        command = [
            sys.executable, *profile, "-m", "jitaccess.cli",
            "run",
            "--kubeconfig", str(self.sandbox.kubeconfig),
            "--context", "admin",
            "--iam-endpoint", self.sandbox.iam_url,
            "--iam-write-mode", self.mode,
            "--attestation-key-file", str(self.key_file),
            "--webhook-host", "127.0.0.1",
            "--webhook-port", str(self.sandbox.webhook_port),
            "--webhook-cert-dir", str(self.sandbox.webhook_cert_dir),
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
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{self.operator.pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks = os.sysconf("SC_CLK_TCK")
            self.operator_cpu_s[self.operator.pid] = (int(fields[11]) + int(fields[12])) / ticks
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.operator.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))

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
            path, headers={"Authorization": "Bearer sandbox:admin"}, timeout=aiohttp.ClientTimeout(total=None)
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
            result = await runner(world)
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
                scenario=scenario.name,
                mode=mode,
                emulator_latency_ms=settings.latency_ms,
                emulator_policy_bytes_limit=scenario.policy_bytes,
                peak_rss_mib=round(world.peak_rss_kib / 1024, 1),
            )
            return result


async def with_watch(world: World, body: Callable[[Observed], Awaitable[None]]) -> Observed:
    observed = Observed()
    watcher = asyncio.create_task(world.watch(observed))
    try:
        await asyncio.sleep(0.2)  # the watch is established before anything is created
        await body(observed)
    finally:
        observed.ended = time.time()
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await watcher
    return observed


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

    observed = await with_watch(world, body)
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

    observed = await with_watch(world, body)
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

    observed = await with_watch(world, body)
    figures = activation_figures(world, observed, count)
    lags = [
        observed.expired[n] - observed.expires_at[n] for n in observed.expired if n in observed.expires_at
    ]
    figures["expired"] = len(lags)
    figures["expiry_lag_s"] = percentiles(lags, ("p50", "p99"))
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
    )
    return " ".join(_cell(value, width) for value, (_, width) in zip(cells, COLUMNS, strict=True))


def _cell(value: Any, width: int) -> str:
    text = "-" if value is None else str(value)
    return text.rjust(width) if isinstance(value, int | float) else text.ljust(width)


def ratios(batched: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float | None]:
    def ratio(get: Callable[[dict[str, Any]], Any]) -> float | None:
        mine, theirs = get(batched), get(baseline)
        if not isinstance(mine, int | float) or not isinstance(theirs, int | float) or not theirs:
            return None
        return round(mine / theirs, 4)

    return {
        "latency_p50": ratio(lambda r: (r.get("latency_s") or {}).get("p50")),
        "latency_p99": ratio(lambda r: (r.get("latency_s") or {}).get("p99")),
        "throughput": ratio(lambda r: r.get("throughput_per_s")),
        "set_iam_policy_calls": ratio(lambda r: r.get("set_iam_policy_calls")),
        "get_iam_policy_calls": ratio(lambda r: r.get("get_iam_policy_calls")),
        "expiry_lag_p99": ratio(lambda r: (r.get("expiry_lag_s") or {}).get("p99")),
        "peak_rss": ratio(lambda r: r.get("peak_rss_mib")),
    }


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
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    names = args.scenarios.split() or list(SCENARIOS)
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    settings = Settings(args.latency_ms, args.steady_seconds, args.deadline, args.verbose, args.profile)
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
        results: dict[str, dict[str, Any]] = {}
        for mode in args.modes.split():
            results[mode] = await run_scenario(SCENARIOS[name], mode, settings)
            print(row(results[mode]), flush=True)
        document = dict(results.get("batched") or next(iter(results.values())))
        if "batched" in results and "per-activation" in results:
            document["baseline"] = results["per-activation"]
            document["ratios"] = ratios(results["batched"], results["per-activation"])
            print(f"{'':13} {'ratio b/base':14} " + json.dumps(document["ratios"]), flush=True)
        (args.out / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n")
    print(f"\n{len(names)} scenario(s) in {time.monotonic() - began:.0f}s; results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
