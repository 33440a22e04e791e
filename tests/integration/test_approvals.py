"""Multi-party approval end to end: alice asks, bob (group sre-leads) and carol decide, via their own logins."""

from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes.client import ApiException

from tests.integration.test_kubectl import kubectl
from tests.integration.test_trust import wait_counted

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
LEADS = {"approvers": ["group:sre-leads@example.com"], "minApprovals": 1, "timeout": "1h"}


def approved_condition(body):
    return next(c for c in body["status"]["conditions"] if c["type"] == "Approved")


async def refused(coroutine) -> str:
    with pytest.raises(ApiException) as caught:
        await coroutine
    assert caught.value.status == 403
    return json.loads(caught.value.body)["message"]


@pytest.mark.sandbox_api
async def test_group_approver_approves_and_access_is_granted_naming_them(cluster):
    project = cluster.project()
    await cluster.grant("mpa-approve", project, approval=LEADS)
    await cluster.request_as("alice@example.com", "mpa-alice", "mpa-approve", roles=["roles/compute.admin"])
    await cluster.wait_phase("mpa-alice", "AwaitingApproval")
    wide = await kubectl(cluster, "get", "ar", "-n", "team-sre", "mpa-alice", "-o", "wide")
    assert "APPROVALS" in wide.stdout.split("\n")[0].split(), wide.stdout
    assert "AwaitingApproval" in wide.stdout and "0 of 1 approval(s)" in wide.stdout
    approval = await cluster.decide("bob@example.com", "mpa-alice")
    assert approval["spec"]["approver"] == "user:bob@example.com"  # stamped from bob's login
    body = await cluster.wait_phase("mpa-alice", "Active")
    assert approved_condition(body)["message"] == "1 of 1 approval(s) (user:bob@example.com)"
    assert body["status"]["approvals"][0]["approver"] == "user:bob@example.com"
    description = body["status"]["bindings"][0]["condition"]["description"]
    assert description.startswith("Approved by user:bob@example.com, justification: INC-4711")
    await cluster.wait_event("mpa-alice", "Activated")
    # Approved, it is shown Activating before IAM hears of it: never AwaitingApproval while it holds access.
    stored = cluster.sandbox.api.objects["jitaccess.dev/v1alpha1/activationrequests", "team-sre", "mpa-alice"]
    phases = [(v.get("status") or {}).get("phase") for v in stored.history]
    shown = [phase for n, phase in enumerate(phases) if phase and phase != phases[n - 1]]
    assert shown == ["AwaitingApproval", "Activating", "Active"], phases
    for _ in range(100):  # the operator makes each approval owned by its request
        stored = await asyncio.to_thread(
            cluster.custom.get_namespaced_custom_object,
            "jitaccess.dev",
            "v1alpha1",
            "team-sre",
            "activationapprovals",
            approval["metadata"]["name"],
        )
        if stored["metadata"].get("ownerReferences"):
            break
        await asyncio.sleep(0.05)
    assert stored["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
    await cluster.delete(
        "mpa-alice"
    )  # revokes, then the request and (by garbage collection) its approvals go
    await cluster.wait_gone("mpa-alice")
    for _ in range(100):
        left = cluster.sandbox.api.stored("jitaccess.dev/v1alpha1/activationapprovals")
        if all(a["metadata"]["name"] != approval["metadata"]["name"] for a in left):
            break
        await asyncio.sleep(0.05)
    assert all(a["metadata"]["name"] != approval["metadata"]["name"] for a in left)
    assert cluster.bindings(project) == []


async def test_deny_ends_the_request(cluster):
    project = cluster.project()
    await cluster.grant("mpa-deny", project, approval=LEADS)
    await cluster.request_as("alice@example.com", "mpa-denied", "mpa-deny")
    await cluster.wait_phase("mpa-denied", "AwaitingApproval")
    await cluster.decide("bob@example.com", "mpa-denied", "Deny")
    body = await cluster.wait_phase("mpa-denied", "Denied")
    assert body["status"]["conditions"][0]["message"] == "denied by user:bob@example.com"
    assert cluster.sets(project) == 0


async def test_rbac_refuses_an_approval_from_someone_with_no_approver_role(cluster):
    project = cluster.project()
    await cluster.grant("mpa-rbac", project, approval={**LEADS, "approvers": ["user:carol@example.com"]})
    await cluster.request_as("alice@example.com", "mpa-rbac-alice", "mpa-rbac", namespace="default")
    await cluster.wait_phase("mpa-rbac-alice", "AwaitingApproval", namespace="default")
    # carol is an approver by the grant, but nobody gave her the approver role in "default"
    message = await refused(cluster.decide("carol@example.com", "mpa-rbac-alice", namespace="default"))
    assert message == (
        'activationapprovals.jitaccess.dev is forbidden: User "carol@example.com" cannot create resource '
        '"activationapprovals" in API group "jitaccess.dev" in the namespace "default"'
    )


async def test_unanswered_requests_expire(cluster):
    project = cluster.project()
    await cluster.grant("mpa-timeout", project, approval=LEADS)
    await cluster.request_as("alice@example.com", "mpa-late", "mpa-timeout")
    await cluster.wait_phase("mpa-late", "AwaitingApproval")
    cluster.advance(minutes=61)
    body = await cluster.wait_phase("mpa-late", "Expired")
    assert body["status"]["conditions"][0]["reason"] == "ApprovalTimeout"
    assert "no approval came within 1h" in body["status"]["conditions"][0]["message"]


async def test_self_approval_and_non_approvers_are_refused_at_admission(cluster):
    # RBAC lets alice and carol file approvals (they approve elsewhere); the grant decides here.
    await cluster.bind("jitaccess-approver", "alice@example.com", "carol@example.com")
    project = cluster.project()
    await cluster.grant("mpa-refuse", project, approval={**LEADS, "approvers": ["group:sre@example.com"]})
    await cluster.request_as("alice@example.com", "mpa-self", "mpa-refuse")
    await cluster.wait_phase("mpa-self", "AwaitingApproval")
    own = await refused(cluster.decide("alice@example.com", "mpa-self"))  # alice is in group:sre herself
    assert "cannot approve their own request" in own
    outsider = await refused(cluster.decide("carol@example.com", "mpa-self"))
    assert "user:carol@example.com is not among the approvers (group:sre@example.com)" in outsider
    missing = await refused(cluster.decide("bob@example.com", "no-such-request"))
    assert "there is no ActivationRequest no-such-request" in missing


async def test_two_of_n_and_a_deleted_approval_does_not_count(cluster):
    await cluster.bind("jitaccess-approver", "carol@example.com")
    project = cluster.project()
    two = {
        "approvers": ["group:sre-leads@example.com", "user:carol@example.com", "user:dan@example.com"],
        "minApprovals": 2,
        "timeout": "1h",
    }
    await cluster.grant("mpa-two", project, approval=two)
    await cluster.request_as("alice@example.com", "mpa-two-alice", "mpa-two")
    await cluster.wait_phase("mpa-two-alice", "AwaitingApproval")
    bob = await cluster.decide("bob@example.com", "mpa-two-alice")
    for _ in range(100):
        body = await cluster.get("mpa-two-alice")
        if (approved_condition_or_none(body) or {}).get("message", "").startswith("1 of 2"):
            break
        await asyncio.sleep(0.05)
    assert approved_condition(body)["message"].startswith("1 of 2 approval(s)")
    await asyncio.to_thread(
        cluster.custom.delete_namespaced_custom_object,
        "jitaccess.dev",
        "v1alpha1",
        "team-sre",
        "activationapprovals",
        bob["metadata"]["name"],
    )
    await cluster.decide("carol@example.com", "mpa-two-alice")
    await asyncio.sleep(0.5)
    body = await cluster.get("mpa-two-alice")
    assert body["status"]["phase"] == "AwaitingApproval"
    assert approved_condition(body)["message"] == "1 of 2 approval(s) (user:carol@example.com)"
    await cluster.decide("bob@example.com", "mpa-two-alice", name="bob-again")
    body = await cluster.wait_phase("mpa-two-alice", "Active")
    assert approved_condition(body)["message"].startswith("2 of 2 approval(s)")


async def test_approval_after_withdrawal_is_refused_and_changes_nothing(cluster):
    project = cluster.project()
    await cluster.grant("mpa-withdrawn", project, approval=LEADS)
    await cluster.request_as("alice@example.com", "mpa-gone", "mpa-withdrawn")
    await cluster.wait_phase("mpa-gone", "AwaitingApproval")
    await cluster.patch("mpa-gone", {"revoke": True})
    await cluster.wait_phase("mpa-gone", "Withdrawn")
    late = await refused(cluster.decide("bob@example.com", "mpa-gone"))
    assert "is Withdrawn, not AwaitingApproval" in late
    assert (await cluster.get("mpa-gone"))["status"]["phase"] == "Withdrawn" and cluster.sets(project) == 0


def approved_condition_or_none(body):
    return next(
        (c for c in (body.get("status") or {}).get("conditions", []) if c["type"] == "Approved"), None
    )


TWO_STEPS = {
    "steps": [
        {"approvers": ["group:sre-leads@example.com"], "timeout": "1h"},
        {"approvers": ["user:carol@example.com"], "timeout": "30m"},
    ]
}


async def approved_message(cluster, name: str, start: str) -> dict:
    for _ in range(200):
        body = await cluster.get(name)
        if (approved_condition_or_none(body) or {}).get("message", "").startswith(start):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name}: Approved never said {start!r}: {approved_condition_or_none(body)}")


async def test_two_steps_in_order_one_person_one_step(cluster):
    await cluster.bind("jitaccess-approver", "carol@example.com")
    project = cluster.project()
    await cluster.grant("mpa-steps", project, approval=TWO_STEPS)
    await cluster.request_as("alice@example.com", "mpa-steps-alice", "mpa-steps")
    await cluster.wait_phase("mpa-steps-alice", "AwaitingApproval")
    early = await cluster.decide("carol@example.com", "mpa-steps-alice", name="carol-too-early")
    cluster.advance(minutes=1)
    await cluster.decide("bob@example.com", "mpa-steps-alice")
    body = await approved_message(cluster, "mpa-steps-alice", "step 2 of 2 waits for 1 more approval(s)")
    assert body["status"]["phase"] == "AwaitingApproval" and cluster.sets(project) == 0
    report = (await wait_counted(cluster, early["metadata"]["name"], False))["status"]
    assert "came before step 2 opened" in report["message"]
    cluster.advance(minutes=1)
    await cluster.decide("carol@example.com", "mpa-steps-alice", name="carol-in-turn")
    body = await cluster.wait_phase("mpa-steps-alice", "Active")
    assert [a["approver"] for a in body["status"]["approvals"]] == [
        "user:bob@example.com",
        "user:carol@example.com",
    ]


async def test_a_deny_at_step_two_denies_and_a_step_times_out_by_name(cluster):
    await cluster.bind("jitaccess-approver", "carol@example.com")
    project = cluster.project()
    await cluster.grant("mpa-steps-end", project, approval=TWO_STEPS)
    await cluster.request_as("alice@example.com", "mpa-steps-denied", "mpa-steps-end")
    await cluster.request_as("alice@example.com", "mpa-steps-late", "mpa-steps-end")
    await cluster.wait_phase("mpa-steps-late", "AwaitingApproval")
    await cluster.decide("bob@example.com", "mpa-steps-denied")
    await cluster.decide("bob@example.com", "mpa-steps-late")
    await approved_message(cluster, "mpa-steps-denied", "step 2 of 2")
    await approved_message(cluster, "mpa-steps-late", "step 2 of 2")
    await cluster.decide("carol@example.com", "mpa-steps-denied", "Deny")
    body = await cluster.wait_phase("mpa-steps-denied", "Denied")
    assert body["status"]["conditions"][0]["message"] == "denied by user:carol@example.com"
    cluster.advance(minutes=31)
    body = await cluster.wait_phase("mpa-steps-late", "Expired")
    ready = body["status"]["conditions"][0]
    assert ready["reason"] == "ApprovalTimeout"
    assert ready["message"].startswith("step 2 of 2 (user:carol@example.com) got no approval within 30m")
    assert cluster.sets(project) == 0
