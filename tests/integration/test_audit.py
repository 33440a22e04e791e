"""The audit log: one JSON line per lifecycle event, with the documented fields."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
FIELDS = {
    "time", "severity", "message", "event", "phase", "outcome", "request", "grant", "requester",
    "roles", "resource", "justification", "approvers", "start", "end", "endedAt", "actor",
    "logging.googleapis.com/labels",
}  # fmt: skip


def audit_lines(cluster, name: str) -> list[dict]:
    lines = [json.loads(line) for line in cluster.sandbox.audit_log.read_text().splitlines()]
    assert all(set(line) == FIELDS for line in lines)  # stable: exactly the documented fields
    # Told apart from the operator's own log lines on the same stdout by a Cloud Logging label.
    assert all(line["logging.googleapis.com/labels"]["jitaccess.dev/log"] == "audit" for line in lines)
    return [line for line in lines if line["request"]["name"] == name]


async def test_every_lifecycle_event_is_one_json_line_saying_who_what_where_why_and_how_it_ended(cluster):
    project = cluster.project()
    await cluster.grant("audited", project)
    body = await cluster.request("audited-alice", "audited", roles=["roles/compute.admin"], duration="30m")
    active = await cluster.wait_phase("audited-alice", "Active")
    cluster.advance(minutes=31)
    await cluster.wait_phase("audited-alice", "Expired")

    lines = audit_lines(cluster, "audited-alice")
    assert [(line["event"], line["outcome"]) for line in lines] == [
        ("Activating", "granting"),
        ("Activated", "granted"),
        ("Expired", "expired"),
    ]
    activated, expired = lines[1], lines[2]
    assert activated["request"] == {
        "namespace": "team-sre",
        "name": "audited-alice",
        "uid": body["metadata"]["uid"],
    }
    assert activated["requester"] == "user:alice@example.com" and activated["grant"] == "audited"
    assert activated["roles"] == ["roles/compute.admin"] and activated["resource"] == project
    assert activated["justification"] == "INC-4711: open port 443 on the edge firewall"
    assert activated["approvers"] == [] and activated["severity"] == "NOTICE"
    assert (
        activated["start"] == active["status"]["activatedAt"]
        and activated["end"] == active["status"]["expiresAt"]
    )
    assert expired["endedAt"] and expired["phase"] == "Expired"


async def test_approvals_and_denials_name_the_approver(cluster):
    project = cluster.project()
    await cluster.grant("audited-approval", project, approval={"approvers": ["user:bob@example.com"]})
    await cluster.wait_grant_ready("audited-approval")
    await cluster.request_as(
        "alice@example.com", "audited-approved", "audited-approval", roles=["roles/compute.admin"]
    )
    await cluster.request_as(
        "alice@example.com", "audited-denied", "audited-approval", roles=["roles/compute.admin"]
    )
    for name in ("audited-approved", "audited-denied"):
        await cluster.wait_phase(name, "AwaitingApproval")
    await cluster.decide("bob@example.com", "audited-approved")
    await cluster.decide("bob@example.com", "audited-denied", decision="Deny")
    await cluster.wait_phase("audited-approved", "Active")
    await cluster.wait_phase("audited-denied", "Denied")
    await cluster.patch("audited-approved", {"revoke": True}, user="alice@example.com")
    await cluster.wait_phase("audited-approved", "Revoked")

    approved = audit_lines(cluster, "audited-approved")
    assert [line["event"] for line in approved] == [
        "ApprovalRequired",
        "Activating",
        "Activated",
        "RevokedByRequester",
    ]
    assert approved[2]["approvers"] == ["user:bob@example.com"] and approved[2]["resource"] == project
    assert approved[-1]["outcome"] == "revoked" and approved[-1]["actor"] == "alice@example.com"
    denied = audit_lines(cluster, "audited-denied")
    assert [(line["event"], line["outcome"]) for line in denied] == [
        ("ApprovalRequired", "pending"),
        ("Denied", "denied"),
    ]
    assert denied[-1]["resource"] == project and denied[-1]["start"] is None  # never granted
