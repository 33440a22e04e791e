"""Render benchmarks/results/*.json as the Markdown table in benchmarks/README.md.

python benchmarks/table.py [RESULTS_DIR]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ORDER = [
    "burst-100-1",
    "burst-100-10",
    "burst-500-1",
    "burst-500-10",
    "steady-10",
    "steady-50",
    "steady-50-10",
]
ORDER += ["expiry-500", "scale-10000"]


def cell(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def rows(result: dict[str, Any]) -> list[str]:
    lines = []
    floor = result.get("floor") if result.get("mode") != "floor" else None  # a floor-only run is the top
    for run in (floor, result, result.get("baseline")):
        if not run or run.get("skipped"):
            continue
        latency = run.get("latency_s") or {}
        lag = run.get("expiry_lag_s") or {}
        censored = run.get("latency_censored") or 0
        bound = "≥ " if censored else ""
        activations = run.get("activations") or 0
        lines.append(
            "| "
            + " | ".join(
                [
                    run["scenario"],
                    run["mode"],
                    f"{activations}/{run.get('requests', activations)}",
                    bound + cell(latency.get("p50")),
                    bound + cell(latency.get("p95")),
                    bound + cell(latency.get("p99")),
                    cell(run.get("throughput_per_s"), 1),
                    cell(run.get("set_iam_policy_per_activation"), 3),
                    cell(run.get("set_iam_policy_calls")),
                    cell(run.get("get_iam_policy_calls")),
                    cell(run.get("conflicts")),
                    cell(run.get("quota_exceeded")),
                    cell(lag.get("p50")),
                    cell(lag.get("p99")),
                    cell(run.get("peak_rss_mib"), 0),
                    cell(run.get("operator_cpu_per_activation_ms"), 1),
                    cell(run.get("api_calls_per_activation"), 2),
                ]
            )
            + " |"
        )
    return lines


def ratio_rows(result: dict[str, Any]) -> list[str]:
    """Each mode over the floor of the same run: latency, operator CPU and API calls per activation."""
    lines = []
    for mode, figures in ((result.get("ratios") or {}).get("over_floor") or {}).items():
        lines.append(
            "| "
            + " | ".join(
                [
                    result["scenario"],
                    mode,
                    *(
                        "-" if figures.get(name) is None else f"{figures[name]:.2f}x"
                        for name in (
                            "latency_p50",
                            "latency_p99",
                            "cpu_per_activation",
                            "api_calls_per_activation",
                        )
                    ),
                ]
            )
            + " |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0]) if args else Path(__file__).resolve().parent / "results"
    results = {path.stem: json.loads(path.read_text()) for path in folder.glob("*.json")}
    print(
        "| scenario | mode | Active | p50 s | p95 s | p99 s | act/s | set/act | sets | gets | 409 | 429 "
        "| lag p50 s | lag p99 s | RSS MiB | CPU ms/act | API calls/act |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    ordered = sorted(results, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))
    for name in ordered:
        if name.startswith("scale"):
            continue
        for line in rows(results[name]):
            print(line)
    print()
    print("| scenario | mode | p50 / floor | p99 / floor | CPU/act / floor | API calls/act / floor |")
    print("|---|---|---|---|---|---|")
    for name in ordered:
        for line in ratio_rows(results[name]):
            print(line)
    scale = results.get("scale-10000")
    if scale:
        print()
        print(json.dumps({k: v for k, v in scale.items() if not isinstance(v, dict | list)}, indent=1))


if __name__ == "__main__":
    main()
