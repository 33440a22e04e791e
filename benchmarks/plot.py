"""Draw benchmarks/results/*.json as PNG charts, so a run can be read at a glance and compared.

    python benchmarks/plot.py [--results benchmarks/results] [--out benchmarks/results/plots]

It reads what `make bench` wrote (the batched run at the top level, the per-activation baseline
under "baseline", and a "floor" run of the same shape when a result has one) and writes, into
--out, with names that depend only on the scenario:

- <scenario>-latency-cdf.png: create -> Active, one curve per mode. A result that stores every
  request's figure (a `latencies_s` list) is drawn as an empirical CDF; one that stores only
  percentiles (`latency_s`: p50, p95, p99, as bench.py does today) is drawn as a step CDF through
  those points, and the axis label says so. Where requests were still waiting when the run
  stopped, the percentiles are lower bounds: the curve is dashed and the legend says how many.
- <scenario>-expiry-lag-cdf.png: expiresAt -> binding gone (`expiry_lag_s`, or `expiry_lags_s`
  per request), for the scenarios that measure it.
- iam-calls-per-activation.png: setIamPolicy and getIamPolicy calls per Active request, across
  scenarios and modes.

It never runs the bench, never writes outside --out, and never needs a display (Agg renders into
memory). A file it cannot read is reported in one line naming the file and the field, with exit
status 1, not a traceback. "ratios" are not drawn: they are quotients of figures drawn here.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

RESULTS = Path(__file__).resolve().parent / "results"
# (key of the section in a result, its label when the section does not name its mode)
SECTIONS = (("", "batched"), ("baseline", "per-activation"), ("floor", "floor"))
COLOURS = {"batched": "tab:blue", "per-activation": "tab:orange", "floor": "tab:green"}
PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?)")


class PlotError(Exception):
    """A result that cannot be drawn; main prints it as one line."""


@dataclass(frozen=True)
class Distribution:
    points: tuple[tuple[float, float], ...]  # (seconds, fraction of requests at or below), ascending
    sampled: bool  # every request's figure, rather than a few stored percentiles


@dataclass(frozen=True)
class Run:
    label: str
    requests: int | None
    activations: int | None
    censored: int
    latency: Distribution | None
    expiry_lag: Distribution | None
    set_per_activation: float | None
    get_per_activation: float | None


@dataclass(frozen=True)
class Scenario:
    name: str  # the file's stem, which the output names are made of
    runs: tuple[Run, ...]


# -- reading -----------------------------------------------------------------------------------


def load(results: Path) -> list[Scenario]:
    if results.is_dir():
        paths = sorted(results.glob("*.json"))
        if not paths:
            raise PlotError(f"{results}: no *.json results in this folder (`make bench` writes them)")
    elif results.is_file():
        paths = [results]
    else:
        raise PlotError(f"{results}: no such file or folder")
    return sorted((read(path) for path in paths), key=lambda scenario: natural(scenario.name))


def natural(name: str) -> list[tuple[int, int | str]]:
    """burst-100-1 < burst-100-10 < burst-500-1: numbers compare as numbers."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name)]


def read(path: Path) -> Scenario:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PlotError(f"{path}: cannot read it: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise PlotError(f"{path}: not UTF-8 text, so not a bench result") from None
    except json.JSONDecodeError as error:
        raise PlotError(
            f"{path}: not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("scenario"), str):
        raise PlotError(f'{path}: not a bench result (expected a JSON object with a "scenario" name)')
    runs = []
    for key, default in SECTIONS:
        section = document.get(key) if key else document
        if section is None:
            continue  # no baseline (--modes batched) or no floor: fewer curves, not an error
        if not isinstance(section, dict):
            raise PlotError(f"{path}: {key}: expected an object like the top level, got {section!r:.40}")
        runs.append(run(section, f"{path}: {key + '.' if key else ''}", default))
    return Scenario(path.stem, tuple(runs))


def run(section: dict[str, Any], where: str, default: str) -> Run:
    mode = section.get("mode")
    if mode is not None and not isinstance(mode, str):
        raise PlotError(f"{where}mode: {mode!r} is not a string")
    label = mode or default
    if default == "floor" and mode not in (None, "floor"):
        label = f"floor ({mode})"
    requests = number(section, "requests", where)
    activations = number(section, "activations", where)
    sets = number(section, "set_iam_policy_per_activation", where)
    set_calls = number(section, "set_iam_policy_calls", where)
    get_calls = number(section, "get_iam_policy_calls", where)
    if sets is None and set_calls is not None and activations:
        sets = set_calls / activations
    return Run(
        label=label,
        requests=None if requests is None else int(requests),
        activations=None if activations is None else int(activations),
        censored=int(number(section, "latency_censored", where) or 0),
        latency=distribution(section, where, "latencies_s", "latency_s"),
        expiry_lag=distribution(section, where, "expiry_lags_s", "expiry_lag_s"),
        set_per_activation=sets,
        get_per_activation=get_calls / activations if get_calls is not None and activations else None,
    )


def number(section: dict[str, Any], key: str, where: str) -> float | None:
    value = section.get(key)
    return None if value is None else as_number(value, f"{where}{key}")


def as_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlotError(f"{where}: {value!r:.40} is not a number")
    return float(value)


def distribution(section: dict[str, Any], where: str, samples: str, stored: str) -> Distribution | None:
    """Every request's figure when the result has them, else the percentiles it stored."""
    values = section.get(samples)
    if values is not None:
        if not isinstance(values, list):
            raise PlotError(f"{where}{samples}: expected a list of seconds, got {values!r:.40}")
        figures = sorted(as_number(value, f"{where}{samples}[{i}]") for i, value in enumerate(values))
        if figures:
            return Distribution(tuple((x, (i + 1) / len(figures)) for i, x in enumerate(figures)), True)
    percentiles = section.get(stored)
    if percentiles is None:
        return None
    if not isinstance(percentiles, dict):
        raise PlotError(f"{where}{stored}: expected percentiles like {{'p50': 0.8}}, got {percentiles!r:.40}")
    points = []
    for name in percentiles:
        match = PERCENTILE.fullmatch(name)
        if not match:
            raise PlotError(f"{where}{stored}.{name}: not a percentile name (p50, p95, p99, ...)")
        at = number(percentiles, name, f"{where}{stored}.")
        if at is not None:
            points.append((at, float(match[1]) / 100))
    points.sort(key=lambda point: point[1])
    return Distribution(tuple(points), False) if points else None


# -- drawing -----------------------------------------------------------------------------------


def render(scenarios: list[Scenario], out: Path) -> list[Path]:
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = [save(figure, out / name) for s in scenarios for name, figure in scenario_figures(s)]
        if any(
            r.set_per_activation is not None or r.get_per_activation is not None
            for s in scenarios
            for r in s.runs
        ):
            written.append(save(iam_calls(scenarios), out / "iam-calls-per-activation.png"))
    except OSError as error:
        raise PlotError(f"{error.filename or out}: cannot write there: {error.strerror or error}") from None
    return written


def scenario_figures(scenario: Scenario) -> list[tuple[str, Figure]]:
    """(file name, figure): the latency CDF, and the expiry lag CDF where the scenario measures it."""
    figures = []
    latency = [(r, r.latency) for r in scenario.runs if r.latency]
    if latency:
        title = f"{scenario.name}: create → Active"
        figure = cdf(
            title, "seconds from create to Active", latency, describe_latency, lambda r: r.censored > 0
        )
        figures.append((f"{scenario.name}-latency-cdf.png", figure))
    lag = [(r, r.expiry_lag) for r in scenario.runs if r.expiry_lag]
    if lag:
        title = f"{scenario.name}: expiry lag"
        figure = cdf(title, "seconds from expiresAt to binding gone", lag, describe_lag, lambda r: False)
        figures.append((f"{scenario.name}-expiry-lag-cdf.png", figure))
    return figures


def save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)  # Agg draws into memory: no display, no pyplot state
    figure.savefig(path, format="png")
    return path


def colour(run: Run) -> str:
    return COLOURS.get(run.label.split(" ")[0], "tab:gray")


def describe_latency(run: Run) -> str:
    text = run.label
    if run.activations is not None and run.requests is not None:
        text += f", {run.activations}/{run.requests} Active"
    if run.censored:
        text += f"\n({run.censored} still waiting at the deadline: a lower bound)"
    return text


def describe_lag(run: Run) -> str:
    return run.label


def cdf(
    title: str,
    xlabel: str,
    series: list[tuple[Run, Distribution]],
    describe: Callable[[Run], str],
    lower_bound: Callable[[Run], bool],
) -> Figure:
    """One curve per mode; dashed where its figures are lower bounds."""
    figure = Figure(figsize=(8, 5), dpi=120, layout="constrained")
    axes = figure.add_subplot()
    mixed = len({d.sampled for _, d in series}) > 1
    for run, dist in series:
        xs = [dist.points[0][0], *(x for x, _ in dist.points)]
        ys = [0.0, *(y for _, y in dist.points)]
        label = describe(run) + (" [percentiles]" if mixed and not dist.sampled else "")
        axes.step(
            xs,
            ys,
            where="post",
            color=colour(run),
            linestyle="--" if lower_bound(run) else "-",
            marker=None if dist.sampled else "o",
            markevery=list(range(1, len(xs))),
            label=label,
        )
    axes.set_xscale("log")
    axes.set_ylim(0, 1.02)
    axes.set_xlabel(f"{xlabel} (log scale)")
    axes.set_ylabel(cdf_ylabel([d for _, d in series]))
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    axes.set_title(title)
    return figure


def cdf_ylabel(distributions: list[Distribution]) -> str:
    if all(d.sampled for d in distributions):
        return "fraction of requests (empirical CDF)"
    fractions = sorted({y for d in distributions if not d.sampled for _, y in d.points})
    names = "/".join(f"p{y * 100:g}" for y in fractions)
    if any(d.sampled for d in distributions):
        return (
            f"fraction of requests (empirical CDF;\n[percentiles]: step CDF through the stored {names} only)"
        )
    return f"fraction of requests\n(step CDF through the stored {names} only,\nnot every request)"


def iam_calls(scenarios: list[Scenario]) -> Figure:
    names = [
        s.name
        for s in scenarios
        if any(r.set_per_activation is not None or r.get_per_activation is not None for r in s.runs)
    ]
    labels = list(dict.fromkeys(r.label for s in scenarios if s.name in names for r in s.runs))
    colours = {r.label: colour(r) for s in scenarios for r in s.runs}
    figure = Figure(figsize=(max(8.0, 1.2 * len(names) + 2), 8), dpi=120, layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    for axes, method, attribute in (
        (top, "setIamPolicy", "set_per_activation"),
        (bottom, "getIamPolicy", "get_per_activation"),
    ):
        values = {(s.name, r.label): getattr(r, attribute) for s in scenarios for r in s.runs}
        bars(axes, names, labels, colours, values)
        axes.set_ylabel(f"{method} calls\nper Active request")
        axes.grid(True, axis="y", which="both", alpha=0.3)
    top.set_title("IAM calls per activation (log scale; the number above each bar is its value)")
    top.legend(fontsize="small")
    bottom.set_xticks(range(len(names)), names, rotation=30, ha="right")
    return figure


def bars(
    axes: Axes,
    names: list[str],
    labels: list[str],
    colours: dict[str, str],
    values: dict[tuple[str, str], float | None],
) -> None:
    width = 0.8 / len(labels)
    positive = [v for v in values.values() if v]
    if positive:  # ratios of 100x between modes: only a log scale shows both
        axes.set_yscale("log")
        axes.set_ylim(min(positive) / 4, max(positive) * 8)
    base = axes.get_ylim()[0]
    for i, label in enumerate(labels):
        placed = [
            (j + (i - (len(labels) - 1) / 2) * width, values[name, label])
            for j, name in enumerate(names)
            if values.get((name, label)) is not None
        ]
        heights = [float(value or 0) for _, value in placed]
        axes.bar([x for x, _ in placed], heights, width, color=colours[label], label=label)
        for x, value in placed:
            axes.annotate(
                f"{value:.3g}",
                (x, value or base),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                rotation=90,
                fontsize=7,
            )


# -- command -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="plot.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="a folder of <scenario>.json, or one such file"
    )
    parser.add_argument("--out", type=Path, help="where the PNGs go; default: <results folder>/plots")
    args = parser.parse_args(argv)
    folder = args.results if not args.results.is_file() else args.results.parent
    out = args.out or folder / "plots"
    try:
        written = render(load(args.results), out)
    except PlotError as error:
        print(f"plot.py: error: {error}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    if not written:
        print(f"nothing to draw: no latency, expiry lag or IAM call figures in {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
