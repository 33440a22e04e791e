"""Break-glass through the API: at once, alerted, flagged, reviewed (or revoked) by a reviewer only,
and an alarm when the review is overdue. The sandbox clock is moved by the test."""

from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes.client import ApiException

from jitaccess.controller.metrics import ReconcilerCollector
from tests.integration.conftest import until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
GLASS = {
    "allowed": True,
    "maxDuration": "1h",
    "reviewers": ["group:sre-leads@example.com"],
    "reviewWithin": "24h",
}


async def refused(coroutine) -> str:
    with pytest.raises(ApiException) as caught:
        await coroutine
    assert caught.value.status == 403
    return json.loads(caught.value.body)["message"]


def reviewed(body: dict) -> dict:
    return next((c for c in body["status"].get("conditions", []) if c["type"] == "Reviewed"), {})


async def review(cluster, user: str, request: str, decision: str = "Review", name: str | None = None) -> dict:
    return await cluster.decide(
        user, request, decision, name=name or f"{user.split('@')[0]}-{decision.lower()}-{request}"
    )


async def test_break_glass_is_at_once_alerted_flagged_and_reviewed_by_a_reviewer_only(cluster):
    project = cluster.project()
    leads = {"approvers": ["group:sre-leads@example.com"], "timeout": "1h"}
    await cluster.grant("glass", project, approval=leads, breakGlass=GLASS, roles=["roles/compute.admin"])
    await cluster.wait_grant_ready("glass")
    await cluster.request_as("alice@example.com", "glass-alice", "glass", breakGlass=True, duration="30m")
    body = await cluster.wait_phase("glass-alice", "Active")  # no approval asked for
    assert reviewed(body)["status"] == "False" and reviewed(body)["reason"] == "ReviewRequired"
    kind, _, message = await cluster.wait_event("glass-alice", "BreakGlassActivated")
    assert kind == "Warning" and "group:sre-leads@example.com must review it by" in message
    alerts = [
        json.loads(line)
        for line in cluster.sandbox.audit_log.read_text().splitlines()
        if "glass-alice" in line
    ]
    assert any(a["event"] == "BreakGlassActivated" and a["severity"] == "ALERT" for a in alerts)

    # alice cannot review herself (RBAC lets her approve here, the grant does not)
    await cluster.bind("jitaccess-approver", "alice@example.com", namespace="default")
    await cluster.request_as("alice@example.com", "glass-own", "glass", namespace="default", breakGlass=True)
    await cluster.wait_phase("glass-own", "Active", namespace="default")
    own = await refused(
        cluster.decide(
            "alice@example.com", "glass-own", "Review", namespace="default", name="alice-reviews-herself"
        )
    )
    assert "requester, who cannot review their own break-glass access" in own
    approve = await refused(
        cluster.decide("bob@example.com", "glass-alice", "Approve", name="bob-approves-glass")
    )
    assert "reviewed, not approved" in approve

    await review(cluster, "bob@example.com", "glass-alice")
    await until(
        lambda: _reviewed_status(cluster, "glass-alice", "True"),
        "glass-alice reviewed",
        timeout_s=20,
        every_s=0.05,
    )
    body = await cluster.get("glass-alice")
    assert reviewed(body)["message"] == "reviewed by user:bob@example.com: Review by bob@example.com"
    assert body["status"]["phase"] == "Active"


async def test_a_reviewers_revoke_ends_access_now(cluster):
    project = cluster.project()
    await cluster.grant("glass-revoke", project, breakGlass=GLASS, roles=["roles/compute.admin"])
    await cluster.wait_grant_ready("glass-revoke")
    await cluster.request_as("alice@example.com", "glass-revoked", "glass-revoke", breakGlass=True)
    await cluster.wait_phase("glass-revoked", "Active")
    assert len(cluster.bindings(project)) == 1
    await review(cluster, "bob@example.com", "glass-revoked", "Revoke")
    body = await cluster.wait_phase("glass-revoked", "Revoked")
    ready = body["status"]["conditions"][0]
    assert (
        ready["reason"] == "RevokedByReviewer"
        and "revoked by reviewer user:bob@example.com" in ready["message"]
    )
    assert cluster.bindings(project) == []


async def test_a_grant_without_break_glass_refuses_it_and_an_overdue_review_alarms(cluster):
    project = cluster.project()
    await cluster.grant("glass-none", project, roles=["roles/compute.admin"])
    await cluster.wait_grant_ready("glass-none")
    message = await refused(
        cluster.request_as("alice@example.com", "glass-no", "glass-none", breakGlass=True)
    )
    assert "grant glass-none does not allow break-glass access" in message

    await cluster.grant("glass-late", project, breakGlass=GLASS, roles=["roles/compute.admin"])
    await cluster.wait_grant_ready("glass-late")
    await cluster.request_as(
        "alice@example.com", "glass-unreviewed", "glass-late", breakGlass=True, duration="10m"
    )
    await cluster.wait_phase("glass-unreviewed", "Active")
    cluster.advance(hours=25)
    await cluster.wait_phase("glass-unreviewed", "Expired")
    kind, _, message = await cluster.wait_event("glass-unreviewed", "ReviewOverdue", timeout_s=20)
    assert kind == "Warning" and "not reviewed by" in message
    reasons = {}
    for family in ReconcilerCollector(cluster.sandbox.reconciler).collect():
        if family.name == "jitaccess_unreviewed_break_glass":
            reasons = {sample.labels["reason"]: sample.value for sample in family.samples}
    assert reasons["ReviewOverdue"] >= 1


async def _reviewed_status(cluster, name: str, status: str) -> bool:
    body = await cluster.get(name)
    return bool(body) and reviewed(body).get("status") == status


async def test_kubectl_get_ar_shows_the_review(cluster):
    from tests.integration.test_kubectl import kubectl

    await asyncio.sleep(0)
    listed = await kubectl(cluster, "get", "ar", "-n", "team-sre", "glass-alice")
    header, row = listed.stdout.splitlines()
    assert "REVIEW" in header.split() and "Reviewed" in row.split()


async def test_unreviewed_break_glass_cannot_be_deleted_to_escape_review(cluster):
    project = cluster.project()
    await cluster.grant("glass-keep", project, breakGlass=GLASS, roles=["roles/compute.admin"])
    await cluster.wait_grant_ready("glass-keep")
    await cluster.request_as("alice@example.com", "glass-kept", "glass-keep", breakGlass=True)
    await cluster.wait_phase("glass-kept", "Active")
    for user in ("alice@example.com", "carol@example.com", "admin"):
        message = await refused(cluster.delete("glass-kept", user=user))
        assert "break-glass access not yet reviewed" in message
    await review(cluster, "bob@example.com", "glass-kept")
    await until(
        lambda: _reviewed_status(cluster, "glass-kept", "True"), "reviewed", timeout_s=20, every_s=0.05
    )
    await cluster.delete("glass-kept", user="alice@example.com")  # reviewed: her own, she may
    await cluster.wait_gone("glass-kept")
