"""benchmarks/table.py: the README's table from bench results, the floor's row beside the others
and each mode's ratios over the floor of the same run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "table.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_table", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(mode: str, p99: float, cpu_ms: float, calls: float) -> dict[str, object]:
    return {
        "scenario": "burst-100-1",
        "mode": mode,
        "requests": 100,
        "activations": 100,
        "latency_s": {"p50": p99 / 2, "p95": p99, "p99": p99},
        "operator_cpu_per_activation_ms": cpu_ms,
        "api_calls_per_activation": calls,
    }


def test_floor_batched_and_baseline_rows_and_the_ratios_over_the_floor(tmp_path: Path, capsys):
    document = {
        **run("batched", 1.5, 12.0, 4.0),
        "floor": run("floor", 0.5, 6.0, 1.0),
        "baseline": {**run("per-activation", 30.0, 20.0, 9.0), "latency_censored": 3},
        "ratios": {
            "over_floor": {
                "batched": {
                    "latency_p50": 3.0,
                    "latency_p99": 3.0,
                    "cpu_per_activation": 2.0,
                    "api_calls_per_activation": 4.0,
                },
                "per-activation": {
                    "latency_p50": 60.0,
                    "latency_p99": None,
                    "cpu_per_activation": 3.33,
                    "api_calls_per_activation": 9.0,
                },
            }
        },
    }
    (tmp_path / "burst-100-1.json").write_text(json.dumps(document))
    load_script().main([str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith("| burst-100-1")]
    # Three runs, then each mode's ratios over the floor.
    assert [row.split(" | ")[1] for row in rows] == [
        "floor",
        "batched",
        "per-activation",
        "batched",
        "per-activation",
    ]
    floor, batched, baseline = (row.split(" | ") for row in rows[:3])
    assert floor[5] == "0.50" and floor[-2] == "6.0" and floor[-1] == "1.00 |"
    assert batched[5] == "1.50" and batched[-2] == "12.0"
    assert baseline[5] == "≥ 30.00"  # censored: a lower bound
    assert rows[3].endswith("| 3.00x | 3.00x | 2.00x | 4.00x |")
    assert rows[4].endswith("| 60.00x | - | 3.33x | 9.00x |")


def test_a_floor_only_run_is_one_row(tmp_path: Path, capsys):
    document = {**run("floor", 0.5, 6.0, 1.0), "floor": run("floor", 0.5, 6.0, 1.0)}
    (tmp_path / "burst-100-1.json").write_text(json.dumps(document))
    load_script().main([str(tmp_path)])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| burst-100-1")]
    assert len(rows) == 1 and rows[0].split(" | ")[1] == "floor"
