"""The figures of a bench run (latency, IAM calls, CPU and API calls in the measured window) and
how they are printed and written: a row per run, the ratios over the baseline and the floor, the
scenario's JSON document."""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


from bench_world import FLOOR_NOT_APPLICABLE, Observed, Scenario, Window, World

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


def as_times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"
