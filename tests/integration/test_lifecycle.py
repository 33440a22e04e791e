"""The operator end to end: sandbox Kubernetes API + IAM emulator over HTTP, real clients, injected clock."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta

import pytest
from kubernetes.client import ApiException

from jitaccess.api.bindings import reference_of
from jitaccess.api.times import format_time
from jitaccess.policy.records import ACTIVATION

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
FOREIGN = {"role": "roles/compute.viewer", "members": ["group:ops@example.com"]}


def jit_bindings(cluster, resource):
    return [b for b in cluster.bindings(resource) if reference_of(b.get("condition"))]


async def test_activation_writes_exactly_the_binding_and_leaves_foreign_ones(cluster):
    project = cluster.project()
    cluster.emulator.seed(project, [FOREIGN])
    await cluster.grant("activation", project)
    await cluster.request("activation-alice", "activation", roles=["roles/compute.admin"], duration="30m")
    body = await cluster.wait_phase("activation-alice", "Active")
    status = body["status"]
    start = datetime.fromisoformat(status["activatedAt"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(status["expiresAt"].replace("Z", "+00:00"))
    assert expires - start <= timedelta(minutes=30) and expires - start > timedelta(minutes=29)
    (binding,) = status["bindings"]
    assert binding["condition"]["title"] == "JIT access activation"
    assert re.fullmatch(
        re.escape(
            "Self-approved, justification: INC-4711: open port 443 on the edge firewall "
            f"[jitaccess.dev/request=team-sre/activation-alice uid={body['metadata']['uid']} mac="
        )
        + "[0-9a-f]{24}]",
        binding["condition"]["description"],
    )
    start_text = binding["condition"]["expression"].split('"')[1]
    assert binding["condition"]["expression"] == (
        f'(request.time >= timestamp("{start_text}") && request.time < timestamp("{status["expiresAt"]}"))'
    )
    assert cluster.bindings(project) == [
        FOREIGN,
        {
            "role": "roles/compute.admin",
            "members": ["user:alice@example.com"],
            "condition": binding["condition"],
        },
    ]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["reason"] == "Activated"
    await cluster.wait_event("activation-alice", "Activated")
    # Activating is in the audit log; as an Event it would only repeat Activated.
    assert [e[1] for e in await cluster.events("activation-alice")] == ["Activated"]


async def test_expiry_removes_the_binding_at_expires_at(cluster):
    project = cluster.project()
    cluster.emulator.seed(project, [FOREIGN])
    await cluster.grant("expiry", project)
    await cluster.request("expiry-alice", "expiry", duration="30m")
    await cluster.wait_phase("expiry-alice", "Active")
    assert len(jit_bindings(cluster, project)) == 2
    cluster.advance(minutes=31)
    body = await cluster.wait_phase("expiry-alice", "Expired")
    assert cluster.bindings(project) == [FOREIGN]
    assert body["status"]["conditions"][0]["reason"] == "Expired"
    assert body["status"]["bindings"], "the record of what was written stays"
    assert (await cluster.wait_event("expiry-alice", "Expired"))[0] == "Normal"


@pytest.mark.sandbox_api
async def test_an_activation_costs_two_writes_and_no_rework(cluster):
    """The hot path: the sealed window (before IAM hears of it), then Active; and the grant's count.
    Activating is told (the audit log) but not written over a status that shows no phase yet."""
    project = cluster.project()
    await cluster.grant("cheap", project)
    await cluster.wait_grant_ready("cheap")
    decisions = cluster.sandbox.reconciler.metrics.webhook_decisions
    judged = ("stamp-requester", "validate-request")
    before = {hook: decisions[hook, "allowed"] + decisions[hook, "denied"] for hook in judged}
    await cluster.request("cheap-alice", "cheap")
    await cluster.wait_phase("cheap-alice", "Active")
    await asyncio.sleep(1.5)  # past the grant's coalesced count update
    # Admission judged the create; the operator's own update (the seal) was not sent to it.
    sent = {hook: decisions[hook, "allowed"] + decisions[hook, "denied"] - before[hook] for hook in judged}
    assert sent == {"stamp-requester": 1, "validate-request": 1}
    request = cluster.sandbox.api.objects[
        "jitaccess.dev/v1alpha1/activationrequests", "team-sre", "cheap-alice"
    ]
    grant = cluster.sandbox.api.objects["jitaccess.dev/v1alpha1/eligiblegrants", None, "cheap"]
    # Created with its finalizer (admission), then the sealed window, then Active.
    history = request.history
    assert [(v.get("status") or {}).get("phase") for v in history] == [None, None, "Active"]
    assert ACTIVATION not in history[0]["metadata"].get("annotations", {})
    assert ACTIVATION in history[1]["metadata"]["annotations"]
    # Created, Ready, then activeRequests 0 -> 1.
    assert [(v.get("status") or {}).get("activeRequests") for v in grant.history] == [None, 0, 1]


async def test_revoke_ends_access_early(cluster):
    project = cluster.project()
    await cluster.grant("revoke", project)
    await cluster.request("revoke-alice", "revoke")
    await cluster.wait_phase("revoke-alice", "Active")
    await cluster.patch("revoke-alice", {"revoke": True}, user="alice@example.com")
    body = await cluster.wait_phase("revoke-alice", "Revoked")
    assert body["status"]["conditions"][0]["reason"] == "RevokedByRequester"
    assert body["status"]["endedBy"] == "alice@example.com"
    assert jit_bindings(cluster, project) == []


async def test_withdraw_before_activation_writes_nothing(cluster):
    project = cluster.project()
    await cluster.grant("withdraw", project)
    start = format_time(cluster.sandbox.clock.now() + timedelta(hours=1))
    await cluster.request("withdraw-alice", "withdraw", startTime=start)
    await cluster.wait_phase("withdraw-alice", "Scheduled")
    await cluster.patch("withdraw-alice", {"revoke": True})
    await cluster.wait_phase("withdraw-alice", "Withdrawn")
    assert cluster.sets(project) == 0


async def test_delete_revokes_first_then_the_object_goes(cluster):
    project = cluster.project()
    await cluster.grant("delete", project)
    await cluster.request("delete-alice", "delete")
    await cluster.wait_phase("delete-alice", "Active")
    assert jit_bindings(cluster, project)
    await cluster.delete("delete-alice")
    await cluster.wait_gone("delete-alice")
    assert jit_bindings(cluster, project) == []


async def test_grant_removal_revokes_active_requests(cluster):
    project = cluster.project()
    await cluster.grant("removed", project)
    await cluster.request("removed-alice", "removed")
    await cluster.wait_phase("removed-alice", "Active")
    await cluster.delete_grant("removed")
    body = await cluster.wait_phase("removed-alice", "Revoked")
    assert body["status"]["conditions"][0]["reason"] == "EligibilityRemoved"
    assert jit_bindings(cluster, project) == []


@pytest.mark.parametrize(
    ("name", "fields", "words"),
    [
        (
            "not-eligible",
            {"requester": "user:mallory@example.net"},
            "spec.requester: user:mallory@example.net is not eligible for grant",
        ),
        (
            "wrong-role",
            {"roles": ["roles/iam.securityAdmin"]},
            "spec.roles[0]: roles/iam.securityAdmin is not one of grant",
        ),
        ("too-long", {"duration": "3h"}, "spec.duration: 3h exceeds the grant's maxDuration 2h"),
        ("no-reason", {"justification": None}, "spec.justification: is required"),
        ("bad-reason", {"justification": "because I want to"}, "spec.justification: does not match grant"),
    ],
)
async def test_invalid_requests_are_refused_at_admission_naming_the_field(cluster, name, fields, words):
    project = cluster.project()
    await cluster.grant(f"reject-{name}", project, justification={"pattern": "^(INC|CHG)-[0-9]+: .{10,}"})
    with pytest.raises(ApiException) as refused:
        await cluster.request(name, f"reject-{name}", **fields)
    assert refused.value.status == 403 and words in json.loads(refused.value.body)["message"]
    assert await cluster.get(name) is None and cluster.sets(project) == 0


@pytest.mark.sandbox_api
async def test_a_request_that_bypassed_admission_never_gets_access(cluster):
    project = cluster.project()
    await cluster.grant("bypass", project)
    cluster.sandbox.api.admission.enabled = False  # as if the webhook were missing or failing open
    try:
        await cluster.request("bypass-alice", "bypass")
    finally:
        cluster.sandbox.api.admission.enabled = True
    body = await cluster.wait_phase("bypass-alice", "Rejected")
    assert body["status"]["conditions"][0]["reason"] == "AdmissionBypassed"
    assert cluster.sets(project) == 0


async def test_grant_narrowed_after_admission_rejects_a_waiting_request(cluster):
    project = cluster.project()
    await cluster.grant("narrowed", project)
    start = format_time(cluster.sandbox.clock.now() + timedelta(hours=1))
    await cluster.request("narrowed-alice", "narrowed", startTime=start)
    await cluster.wait_phase("narrowed-alice", "Scheduled")
    await asyncio.to_thread(
        cluster.custom.patch_cluster_custom_object,
        "jitaccess.dev",
        "v1alpha1",
        "eligiblegrants",
        "narrowed",
        {"spec": {"principals": ["user:bob@example.com"]}},
    )
    body = await cluster.wait_phase("narrowed-alice", "Rejected")
    assert body["status"]["conditions"][0]["reason"] == "EligibilityChanged"
    assert cluster.sets(project) == 0


async def test_scheduled_start_writes_nothing_before_its_time(cluster):
    project = cluster.project()
    await cluster.grant("scheduled", project)
    start = (cluster.sandbox.clock.now() + timedelta(minutes=10)).replace(microsecond=0)
    await cluster.request("scheduled-alice", "scheduled", startTime=format_time(start), duration="30m")
    await cluster.wait_phase("scheduled-alice", "Scheduled")
    assert cluster.sets(project) == 0
    cluster.advance(minutes=11)
    body = await cluster.wait_phase("scheduled-alice", "Active")
    assert body["status"]["expiresAt"] == format_time(start + timedelta(minutes=30))
    (binding, _) = body["status"]["bindings"]
    assert f'timestamp("{format_time(start)}")' in binding["condition"]["expression"]


async def test_multi_role_requests_are_all_or_nothing(cluster):
    project = cluster.project()
    cluster.emulator.seed(project, [FOREIGN])
    cluster.emulator.configure({"unknown_roles": ["roles/storage.admin"]})
    try:
        await cluster.grant("all-or-nothing", project)
        await cluster.request("both-roles", "all-or-nothing")
        body = await cluster.wait_phase("both-roles", "ActivationFailed")
    finally:
        cluster.emulator.configure({"unknown_roles": []})
    message = body["status"]["conditions"][0]["message"]
    assert (
        "Role roles/storage.admin is not supported for this resource" in message
        and "nothing was granted" in message
    )
    assert cluster.bindings(project) == [FOREIGN]


async def test_stale_etag_race_is_resolved_by_retrying_the_whole_cycle(cluster):
    project = cluster.project()
    cluster.emulator.seed(project, [FOREIGN])
    await cluster.grant("etag-race", project)
    cluster.emulator.configure({"etag_races": 3})
    await cluster.request("etag-alice", "etag-race", roles=["roles/compute.admin"])
    await cluster.wait_phase("etag-alice", "Active")
    statuses = [
        call.status
        for call in cluster.emulator.calls
        if call.resource == project and call.method == "setIamPolicy"
    ]
    assert statuses == [409, 409, 409, 200]
    assert len(jit_bindings(cluster, project)) == 1 and FOREIGN in cluster.bindings(project)


async def test_transient_iam_errors_are_retried(cluster):
    project = cluster.project()
    await cluster.grant("flaky", project)
    cluster.emulator.configure(
        {"fail_next": [{"method": "setIamPolicy", "status": 503, "count": 2, "resource": project}]}
    )
    await cluster.request("flaky-alice", "flaky", roles=["roles/compute.admin"])
    await cluster.wait_phase("flaky-alice", "Active")
    assert len(jit_bindings(cluster, project)) == 1


async def test_restart_with_nothing_to_do_writes_nothing(cluster):
    project = cluster.project()
    await cluster.grant("restart", project)
    await cluster.request("restart-alice", "restart")
    await cluster.wait_phase("restart-alice", "Active")
    writes = len([c for c in cluster.emulator.calls if c.method == "setIamPolicy"])
    await cluster.sandbox.stop_operator()
    reconciler = await cluster.sandbox.start_operator()
    for _ in range(100):
        if ("team-sre", "restart-alice") in reconciler.cache.requests and reconciler.scheduler.pending >= 1:
            break
        await __import__("asyncio").sleep(0.05)
    await __import__("asyncio").sleep(0.5)
    after = [c for c in cluster.emulator.calls if c.method == "setIamPolicy"]
    assert len(after) == writes, [(c.resource, c.status, c.body) for c in after[writes:]]
    assert (await cluster.get("restart-alice"))["status"]["phase"] == "Active"


async def test_grant_status_reports_ready_and_active_count(cluster):
    project = cluster.project()
    await cluster.grant("counted", project, approval=None)
    await cluster.request("counted-alice", "counted")
    await cluster.wait_phase("counted-alice", "Active")
    for _ in range(100):
        grant = await asyncio.to_thread(
            cluster.custom.get_cluster_custom_object, "jitaccess.dev", "v1alpha1", "eligiblegrants", "counted"
        )
        if (grant.get("status") or {}).get("activeRequests") == 1:
            break
        await asyncio.sleep(0.05)
    assert grant["status"]["approval"] == "Self" and grant["status"]["conditions"][0]["status"] == "True"
    assert grant["status"]["activeRequests"] == 1
