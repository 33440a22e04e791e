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
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_report import (
    COLUMNS,
    activation_figures,
    as_times,
    document_of,
    iam_figures,
    percentiles,
    row,
    window_figures,
)
from bench_world import (
    FLOOR_NOT_APPLICABLE,
    NAMESPACE,
    ROLE,
    SCENARIOS,
    Observed,
    Scenario,
    Settings,
    World,
    engineer,
    grant_body,
)
from seed import Seeded, admitted_request, live_bindings, settle

from jitaccess.api.objects import parse_grant
from jitaccess_sandbox.kube_apiserver import assets_dir, why_not_available
from jitaccess_sandbox.runner import OPERATOR_USER

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("floor", "batched", "per-activation")
EXPIRY_SHORTEST_S, EXPIRY_LONGEST_S = 15, 44
log = logging.getLogger("bench")


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
            served = world.api_calls() or {}  # none counted on a kube-apiserver
            operator_calls = {
                f"{verb} {resource}{'/' + sub if sub else ''}": count / max(1, result.get("activations") or 1)
                for (user, verb, resource, sub), count in served.items()
                if user == OPERATOR_USER
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
            f"p50 {as_times(figures['latency_p50'])}  p99 {as_times(figures['latency_p99'])}  "
            f"cpu/act {as_times(figures['cpu_per_activation'])}  "
            f"harness cpu/act {as_times(figures['harness_cpu_per_activation'])}  "
            f"api/act {as_times(figures['api_calls_per_activation'])}",
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
