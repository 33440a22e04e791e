"""benchmarks/plot.py: the PNGs it draws from bench results, with and without a floor run, and the
one-line errors it gives for results it cannot read.

The script is run through its own `main` on small results written here, as `make` would run it
on benchmarks/results/ (it is a script, not a module of the product, so it is loaded by path).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import struct
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "plot.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_plot", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


plot = load_script()


def run(scenario: str, mode: str, **figures: object) -> dict[str, object]:
    """One mode's run, in the shape bench.py writes."""
    return {
        "requests": 10,
        "activations": 10,
        "incomplete": 0,
        "latency_s": {"p50": 0.8, "p95": 0.9, "p99": 1.1},
        "latency_censored": 0,
        "throughput_per_s": 12.5,
        "set_iam_policy_calls": 2,
        "get_iam_policy_calls": 1,
        "set_iam_policy_per_activation": 0.2,
        "scenario": scenario,
        "mode": mode,
        "peak_rss_mib": 150.0,
        **figures,
    }


def result(scenario: str, *, floor: bool, **extra: object) -> dict[str, object]:
    document = run(scenario, "batched", **extra)
    document["baseline"] = run(
        scenario,
        "per-activation",
        activations=7,
        incomplete=3,
        latency_s={"p50": 15.4, "p95": 30.4, "p99": 30.5},
        latency_censored=3,
        set_iam_policy_calls=15,
        get_iam_policy_calls=40,
        set_iam_policy_per_activation=2.1429,
        **({"expiry_lag_s": {"p50": 15.7, "p99": 48.5}} if "expiry_lag_s" in extra else {}),
    )
    document["ratios"] = {"latency_p50": 0.05, "latency_p99": 0.04, "expiry_lag_p99": None}
    if floor:
        document["floor"] = run(
            scenario,
            "floor",
            latency_s={"p50": 0.3, "p95": 0.4, "p99": 0.5},
            set_iam_policy_calls=0,
            get_iam_policy_calls=0,
            set_iam_policy_per_activation=0.0,
        )
        document["ratios"] = {**document["ratios"], "over_floor": {"batched": {"latency_p99": 2.2}}}
    return document


def write_results(folder: Path, *, floor: bool) -> Path:
    folder.mkdir(parents=True)
    documents = {
        "burst-10-1": result("burst-10-1", floor=floor),
        "expiry-10": result("expiry-10", floor=floor, expiry_lag_s={"p50": 0.39, "p99": 0.54}),
        # every request's latency rather than percentiles: an empirical CDF
        "steady-2": result("steady-2", floor=floor, latencies_s=[0.2, 0.25, 0.3, 0.5, 0.21, 0.9]),
        # as scale-10000: nothing activated, no latency: no CDF of its own, no bar
        "scale-10": {**run("scale-10", "batched", activations=0, latency_s=None), "set_iam_policy_calls": 0},
    }
    del documents["scale-10"]["set_iam_policy_per_activation"]
    for name, document in documents.items():
        (folder / f"{name}.json").write_text(json.dumps(document, indent=2))
    return folder


EXPECTED = {
    "burst-10-1-latency-cdf.png",
    "expiry-10-latency-cdf.png",
    "expiry-10-expiry-lag-cdf.png",
    "steady-2-latency-cdf.png",
    "iam-calls-per-activation.png",
}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def draw(results: Path, out: Path) -> dict[str, bytes]:
    assert plot.main(["--results", str(results), "--out", str(out)]) == 0
    return {path.name: path.read_bytes() for path in out.iterdir()}


@pytest.mark.parametrize("floor", [False, True], ids=["without-floor", "with-floor"])
def test_every_chart_is_a_real_png_with_a_name_from_its_scenario(tmp_path, floor):
    drawn = draw(write_results(tmp_path / "results", floor=floor), tmp_path / "plots")

    assert set(drawn) == EXPECTED
    for name in drawn:
        width, height = png_size(tmp_path / "plots" / name)
        assert width >= 600 and height >= 400, (name, width, height)
        assert len(drawn[name]) > 15_000, f"{name} is {len(drawn[name])} bytes: an empty chart?"


def test_the_floor_is_drawn_when_a_result_has_one(tmp_path):
    without = draw(write_results(tmp_path / "without", floor=False), tmp_path / "without-plots")
    with_floor = draw(write_results(tmp_path / "with", floor=True), tmp_path / "with-plots")

    assert set(without) == set(with_floor)
    # the floor adds a curve to each latency CDF and bars to the IAM chart; it measures no expiry lag
    for name in EXPECTED - {"expiry-10-expiry-lag-cdf.png"}:
        assert without[name] != with_floor[name], name
    assert without["expiry-10-expiry-lag-cdf.png"] == with_floor["expiry-10-expiry-lag-cdf.png"]


def test_the_same_results_draw_the_same_files(tmp_path):
    results = write_results(tmp_path / "results", floor=True)

    assert draw(results, tmp_path / "first") == draw(results, tmp_path / "second")


def test_the_output_folder_defaults_to_plots_beside_the_results(tmp_path, capsys):
    results = write_results(tmp_path / "results", floor=False)

    assert plot.main(["--results", str(results)]) == 0

    assert {path.name for path in (results / "plots").iterdir()} == EXPECTED
    assert str(results / "plots" / "iam-calls-per-activation.png") in capsys.readouterr().out


def test_percentiles_are_said_to_be_percentiles_and_samples_a_cdf(tmp_path):
    folder = write_results(tmp_path / "results", floor=True)
    scenarios = {s.name: s for s in plot.load(folder)}

    burst = {r.label: r for r in scenarios["burst-10-1"].runs}
    assert list(burst) == ["batched", "per-activation", "floor"]
    assert not burst["batched"].latency.sampled
    assert burst["batched"].latency.points == ((0.8, 0.5), (0.9, 0.95), (1.1, 0.99))
    assert plot.cdf_ylabel([burst["batched"].latency]).startswith(
        "fraction of requests\n(step CDF through the stored p50/p95/p99 only"
    )
    steady = scenarios["steady-2"].runs[0].latency
    assert steady.sampled and steady.points[0] == (0.2, 1 / 6) and steady.points[-1] == (0.9, 1.0)
    assert plot.cdf_ylabel([steady]) == "fraction of requests (empirical CDF)"
    assert plot.cdf_ylabel([steady, burst["batched"].latency]) == (
        "fraction of requests (empirical CDF;\n[percentiles]: step CDF through the stored p50/p95/p99 only)"
    )
    assert "(3 still waiting at the deadline: a lower bound)" in plot.describe_latency(
        burst["per-activation"]
    )
    assert burst["per-activation"].get_per_activation == pytest.approx(40 / 7)


def error_of(capsys, *argv: str) -> str:
    assert plot.main(list(argv)) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert captured.err.startswith("plot.py: error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err


def test_a_missing_results_folder_is_one_clear_line(tmp_path, capsys):
    missing = tmp_path / "nowhere"

    assert (
        error_of(capsys, "--results", str(missing)) == f"plot.py: error: {missing}: no such file or folder\n"
    )
    assert not missing.exists()


def test_a_folder_without_results_is_one_clear_line(tmp_path, capsys):
    assert "no *.json results in this folder" in error_of(capsys, "--results", str(tmp_path))


def test_a_file_that_is_not_json_is_named_with_the_line(tmp_path, capsys):
    folder = write_results(tmp_path / "results", floor=False)
    (folder / "burst-10-1.json").write_text('{\n  "scenario": "burst-10-1",\n  "latency_s": {p50: 1}\n}')

    message = error_of(capsys, "--results", str(folder), "--out", str(tmp_path / "plots"))

    assert f"{folder / 'burst-10-1.json'}: not valid JSON" in message and "line 3" in message
    assert not (tmp_path / "plots").exists(), "nothing is drawn from a folder with a broken result"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.clear(), 'not a bench result (expected a JSON object with a "scenario" name)'),
        (lambda d: d["latency_s"].update(p95="fast"), "latency_s.p95: 'fast' is not a number"),
        (lambda d: d["baseline"].update(latency_s=[1, 2]), "baseline.latency_s: expected percentiles"),
        (
            lambda d: d["floor"].update(latency_s={"median": 1.0}),
            "floor.latency_s.median: not a percentile name",
        ),
        (lambda d: d.update(floor="none"), "floor: expected an object like the top level"),
        (lambda d: d.update(latencies_s=[0.1, None]), "latencies_s[1]: None is not a number"),
        (lambda d: d["baseline"].update(activations="7"), "baseline.activations: '7' is not a number"),
    ],
)
def test_a_result_of_the_wrong_shape_names_the_field(tmp_path, capsys, change, expected):
    document = copy.deepcopy(result("burst-10-1", floor=True))
    change(document)
    path = tmp_path / "burst-10-1.json"
    path.write_text(json.dumps(document))

    message = error_of(capsys, "--results", str(path), "--out", str(tmp_path / "plots"))

    assert message.startswith(f"plot.py: error: {path}: ") and expected in message, message


def test_an_output_path_that_cannot_be_a_folder_is_one_clear_line(tmp_path, capsys):
    folder = write_results(tmp_path / "results", floor=False)
    (tmp_path / "taken").write_text("a file, not a folder")

    assert "cannot write there" in error_of(
        capsys, "--results", str(folder), "--out", str(tmp_path / "taken")
    )
