"""Metrics: /metrics on a real port, scraped over HTTP after real work."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from kubernetes.client import ApiException
from prometheus_client.parser import text_string_to_metric_families

from jitaccess.controller.metrics import serve_metrics
from jitaccess_sandbox.runner import _free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            text = await response.text()
        async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
            assert response.status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_what_happened(cluster):
    reconciler = cluster.sandbox.reconciler
    port = _free_port()
    runner = await cluster.sandbox.in_operator(serve_metrics(reconciler, port, "127.0.0.1"))
    try:
        before = await scrape(port)
        project = cluster.project()
        await cluster.grant("metered", project)
        await cluster.request("metered-alice", "metered", roles=["roles/compute.admin"])
        await cluster.wait_phase("metered-alice", "Active")
        with pytest.raises(ApiException):  # carol is not eligible: refused at admission
            await cluster.request_as("carol@example.com", "metered-carol", "metered")
        during = await scrape(port)
        cluster.advance(minutes=61)
        await cluster.wait_phase("metered-alice", "Expired")
        after = await scrape(port)
    finally:
        await cluster.sandbox.in_operator(runner.cleanup())

    def grew(name: str, labels: dict[str, str] | None = None, by: float = 1) -> bool:
        key = (name, tuple(sorted((labels or {}).items())))
        return after.get(key, 0) - before.get(key, 0) >= by

    assert during[("jitaccess_active_activations", ())] >= 1
    assert grew("jitaccess_activation_latency_seconds_count")
    assert grew("jitaccess_expiry_lag_seconds_count")
    assert grew("jitaccess_iam_batch_size_count", by=2)  # the grant, then the removal
    assert grew("jitaccess_iam_call_outcomes_total", {"method": "setIamPolicy", "outcome": "ok"}, by=2)
    assert grew("jitaccess_webhook_decisions_total", {"webhook": "stamp-requester", "decision": "allowed"})
    assert grew("jitaccess_webhook_decisions_total", {"webhook": "stamp-requester", "decision": "denied"})
    assert grew("jitaccess_webhook_decisions_total", {"webhook": "validate-request", "decision": "allowed"})
    # A histogram's buckets are cumulative and end in +Inf, which equals its count.
    inf = after[("jitaccess_activation_latency_seconds_bucket", (("le", "+Inf"),))]
    assert inf == after[("jitaccess_activation_latency_seconds_count", ())]


async def test_activation_latency_does_not_count_the_wait_for_approvers(cluster):
    """Measured from when the request could start: 50 minutes waiting for bob is not the
    operator's latency (the SlowActivations alert would fire for every approved request)."""
    distribution = cluster.sandbox.reconciler.metrics.activation_latency
    await cluster.grant(
        "metered-approved", cluster.project(), approval={"approvers": ["user:bob@example.com"]}
    )
    await cluster.wait_grant_ready("metered-approved")
    await cluster.request_as("alice@example.com", "metered-waits", "metered-approved", duration="30m")
    await cluster.wait_phase("metered-waits", "AwaitingApproval")
    cluster.advance(minutes=50)
    count, total = distribution.count, distribution.total
    await cluster.decide("bob@example.com", "metered-waits")
    await cluster.wait_phase("metered-waits", "Active")
    # Observed by the operator right after its status write returns: wait for that, not a time.
    for _ in range(400):
        if distribution.count > count:
            break
        await asyncio.sleep(0.05)
    assert distribution.count == count + 1
    assert distribution.total - total < 60  # seconds, not the 3,000 of the wait
