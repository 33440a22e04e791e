"""What manifests/monitoring/ queries exists: a sandbox operator does real work, /metrics is scraped
over HTTP, and every metric an alert or a dashboard panel names must be in that scrape (as the
exposition spells it), with the labels they match and group on where the metric has samples (this
sandbox sends no notices: jitaccess_notifications_total is declared, with none). The new figures
(IAM and webhook latency, reconcile errors) must count what happened."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from kubernetes.client import ApiException
from prometheus_client.parser import text_string_to_metric_families

from jitaccess.controller.metrics import serve_metrics
from jitaccess_sandbox.runner import _free_port
from tests.integration.conftest import until
from tests.integration.test_metrics import scrape
from tests.unit.test_monitoring_manifests import (
    PROMETHEUS_OPERATOR,
    alert_rules,
    dashboard_queries,
    matcher_labels,
    metric_names,
    queried_metrics,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]
# Added by whoever scrapes (Prometheus, GKE's collectors), not by the operator.
TARGET_LABELS = {"namespace", "instance", "pod", "job", "cluster", "container", "le"}
IAM_LATENCY_S = 0.3


@pytest_asyncio.fixture(loop_scope="module")
async def metrics_port(cluster) -> AsyncIterator[int]:
    port = _free_port()
    runner = await cluster.sandbox.in_operator(serve_metrics(cluster.sandbox.reconciler, port, "127.0.0.1"))
    yield port
    await cluster.sandbox.in_operator(runner.cleanup())


async def exposed(port: int) -> dict[str, set[str] | None]:
    """Every sample name /metrics declares -> the label names its samples carry (None: no sample).
    Counters are exposed as NAME_total, histograms as NAME_bucket, NAME_count and NAME_sum."""
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "summary": ("_count", "_sum"),
    }
    found: dict[str, set[str] | None] = {}
    for family in text_string_to_metric_families(text):
        for suffix in suffixes.get(family.type, ("",)):
            found.setdefault(family.name + suffix, None)
        for sample in family.samples:
            found[sample.name] = (found.get(sample.name) or set()) | set(sample.labels)
    return found


def value(scraped: Scrape, name: str, **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


def grew(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_every_metric_the_alerts_and_the_dashboard_query_is_exposed(cluster, metrics_port):
    before = await scrape(metrics_port)
    project = cluster.project()
    await cluster.grant("watched", project)
    cluster.emulator.configure({"latency_ms": IAM_LATENCY_S * 1000})  # Google on a slow day
    try:
        await cluster.request("watched-alice", "watched", roles=["roles/compute.admin"])
        await cluster.wait_phase("watched-alice", "Active")
    finally:
        cluster.emulator.configure({"latency_ms": 0})
    slow = await scrape(metrics_port)
    with pytest.raises(ApiException):  # carol is not eligible: refused at admission
        await cluster.request_as("carol@example.com", "watched-carol", "watched")
    cluster.advance(minutes=61)
    await cluster.wait_phase("watched-alice", "Expired")
    after = await scrape(metrics_port)

    # IAM calls are timed as the operator waited for them: each one made while IAM was slow took
    # at least that long, none fell in a faster bucket.
    for method in ("getIamPolicy", "setIamPolicy"):
        calls = grew(before, slow, "jitaccess_iam_call_duration_seconds_count", method=method)
        assert calls >= 1, method
        assert (
            grew(before, slow, "jitaccess_iam_call_duration_seconds_sum", method=method)
            >= calls * IAM_LATENCY_S
        )
        assert grew(before, slow, "jitaccess_iam_call_duration_seconds_bucket", method=method, le="0.25") == 0
    # Every admission answer is timed: allowed and refused alike.
    assert grew(before, after, "jitaccess_webhook_duration_seconds_count", webhook="stamp-requester") >= 2
    assert grew(before, after, "jitaccess_webhook_duration_seconds_count", webhook="validate-request") >= 1
    inf = value(after, "jitaccess_webhook_duration_seconds_bucket", webhook="stamp-requester", le="+Inf")
    assert inf == value(after, "jitaccess_webhook_duration_seconds_count", webhook="stamp-requester")
    for kind in ("request", "grant", "orphan"):  # from 0, so that rate() has a series to start from
        assert ("jitaccess_reconcile_errors_total", (("kind", kind),)) in after

    missing = _not_exposed(await exposed(metrics_port))
    assert not missing, "\n".join(missing)


def _not_exposed(declared: dict[str, set[str] | None]) -> list[str]:
    """What the alerts and the dashboard name that /metrics does not have: metric names, the labels
    their selectors match on and the labels their queries group by (where there are samples)."""
    labels = {name: found for name, found in declared.items() if found is not None}
    missing = [
        f"{name} (in {', '.join(sorted(where))})"
        for name, where in queried_metrics().items()
        if name not in declared
    ]
    queries = [
        (f"alert {r['alert']}", r["expr"]) for r in alert_rules(PROMETHEUS_OPERATOR / "prometheusrule.yaml")
    ]
    for where, expr in [*queries, *dashboard_queries()]:
        for name, matched in matcher_labels(expr).items():
            if name not in labels:
                continue  # no samples to read labels from
            missing += [
                f"{name}{{{label}}} (in {where})"
                for label in matched - TARGET_LABELS - labels.get(name, set())
            ]
        grouped = {
            label.strip() for group in re.findall(r"\bby\s*\(([^()]*)\)", expr) for label in group.split(",")
        }
        if not all(name in labels for name in metric_names(expr) if name.startswith("jitaccess_")):
            continue
        offered = set().union(*(labels.get(name, set()) for name in metric_names(expr)))
        missing += [f"by ({label}) (in {where})" for label in grouped - TARGET_LABELS - offered]
    return missing


@pytest.mark.sandbox_api
async def test_a_reconcile_that_raises_is_counted_by_kind(cluster, metrics_port):
    """A request deleted without the finalizer while IAM refuses the operator: removing its bindings
    raises (and is retried), which jitaccess_reconcile_errors_total{kind="orphan"} and
    jitaccess_revocations_failing show until IAM lets the removal through."""
    reconciler = cluster.sandbox.reconciler
    project = cluster.project()
    await cluster.grant("unremovable", project)
    await cluster.request("unremovable-alice", "unremovable", roles=["roles/compute.admin"])
    await cluster.wait_phase("unremovable-alice", "Active")
    before = await scrape(metrics_port)
    cluster.emulator.configure(
        {"fail_next": [{"method": "setIamPolicy", "status": 403, "count": 1000, "resource": project}]}
    )
    try:
        # Someone past admission strips the finalizer and deletes, while the operator looks away
        # (as a standby would): it must not put its finalizer back before the deletion lands.
        await cluster.sandbox.in_operator(_call(reconciler.scheduler.pause))
        cluster.sandbox.api.admission.enabled = False
        try:
            await cluster.patch_metadata("unremovable-alice", {"finalizers": []})
            await cluster.delete("unremovable-alice")
            await cluster.wait_gone("unremovable-alice")
        finally:
            cluster.sandbox.api.admission.enabled = True
            await cluster.sandbox.in_operator(_call(reconciler.scheduler.resume, reconciler.resync))
            # A pause that outlasted a tick ended the scheduler's loop, as a lost lease does: start
            # it again as a new term would (else /healthz says, rightly, that it stopped).
            await cluster.sandbox.in_operator(_restart_scheduler(reconciler))

        async def counted() -> bool:
            now = await scrape(metrics_port)
            return grew(before, now, "jitaccess_reconcile_errors_total", kind="orphan") >= 1

        await until(counted, "the failed orphan removal counted", timeout_s=20, every_s=0.1)
        assert value(await scrape(metrics_port), "jitaccess_revocations_failing") >= 1
    finally:
        cluster.emulator.configure({"fail_next": []})
    cluster.advance(minutes=6)  # past the retry's backoff

    async def removed() -> bool:
        gone = not cluster.bindings(project)
        return gone and value(await scrape(metrics_port), "jitaccess_revocations_failing") == 0

    await until(removed, "the orphan's binding removed once IAM allows it", timeout_s=20, every_s=0.1)


async def _restart_scheduler(reconciler: Any) -> None:
    running = reconciler.health.scheduler
    if running is not None and running.done():
        reconciler.health.scheduler = asyncio.create_task(
            reconciler.scheduler.run(), name="jitaccess-scheduler"
        )


async def _call(*functions: Callable[[], object]) -> None:
    """Call `functions` on the operator's event loop (where the scheduler lives)."""
    for function in functions:
        function()
