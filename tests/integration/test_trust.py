"""What an insider or a careless admin cannot make jitaccess do, tried through the real API.

Each test takes one way to hold a role nobody approved (or to end someone's access and blame
another) and checks the outcome a person would see: the phase and reason, the Event, the audit
line, and above all the exact bindings in the IAM emulator.
"""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import timedelta

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from jitaccess.api.bindings import Activation, Reference, parse_reference, render
from jitaccess.api.times import format_time
from jitaccess.controller.operator import kubernetes_configuration
from tests.integration.conftest import GROUP, VERSION, until
from tests.integration.test_lifecycle import FOREIGN, jit_bindings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"
APPROVAL = {"approvers": [f"user:{BOB}"]}


async def patch_grant(cluster, name: str, spec: dict) -> None:
    await asyncio.to_thread(
        cluster.custom.patch_cluster_custom_object, GROUP, VERSION, "eligiblegrants", name, {"spec": spec}
    )


async def patch_status(cluster, name: str, status: dict) -> None:
    """A write to the status subresource, as a too-broad ClusterRole or a buggy controller could."""
    await asyncio.to_thread(
        cluster.custom.patch_namespaced_custom_object_status,
        GROUP,
        VERSION,
        "team-sre",
        "activationrequests",
        name,
        {"status": status},
    )


async def patch_as(cluster, user: str, name: str, patch: dict) -> None:
    await asyncio.to_thread(
        cluster.as_user(user).patch_namespaced_custom_object,
        GROUP,
        VERSION,
        "team-sre",
        "activationrequests",
        name,
        patch,
    )


async def approval(cluster, name: str) -> dict:
    return await asyncio.to_thread(
        cluster.custom.get_namespaced_custom_object, GROUP, VERSION, "team-sre", "activationapprovals", name
    )


async def wait_counted(cluster, name: str, counted: bool, timeout_s: float = 20) -> dict:
    body: dict = {}

    async def reported() -> bool:
        nonlocal body
        body = await approval(cluster, name)
        return (body.get("status") or {}).get("counted") is counted

    await until(reported, f"approval {name} reported counted={counted}", timeout_s=timeout_s, every_s=0.05)
    return body


def ready(body: dict) -> dict:
    return next(c for c in body["status"]["conditions"] if c["type"] == "Ready")


def audit_lines(cluster, name: str) -> list[dict]:
    lines = [json.loads(line) for line in cluster.sandbox.audit_log.read_text().splitlines()]
    return [line for line in lines if line["request"]["name"] == name]


async def active_with_approval(cluster, grant: str, name: str, **spec) -> dict:
    await cluster.request_as(ALICE, name, grant, **spec)
    await cluster.wait_phase(name, "AwaitingApproval")
    await cluster.decide(BOB, name)
    return await cluster.wait_phase(name, "Active")


# -- 1. stale judgement: the grant as it is now decides ---------------------------------------


async def test_a_role_removed_from_the_grant_ends_a_request_that_asked_for_all_roles(cluster):
    project = cluster.project()
    cluster.emulator.seed(project, [FOREIGN])
    await cluster.grant("shrinks", project)
    await cluster.request("shrinks-alice", "shrinks")  # no spec.roles: all of the grant's roles
    await cluster.wait_phase("shrinks-alice", "Active")
    assert len(jit_bindings(cluster, project)) == 2
    await patch_grant(cluster, "shrinks", {"roles": ["roles/compute.admin"]})
    body = await cluster.wait_phase("shrinks-alice", "Revoked")
    assert ready(body)["reason"] == "EligibilityChanged"
    assert "roles/storage.admin" in ready(body)["message"]
    assert cluster.bindings(project) == [FOREIGN]
    await cluster.wait_event("shrinks-alice", "EligibilityChanged")


async def test_a_lowered_max_duration_ends_an_active_request_that_is_longer(cluster):
    project = cluster.project()
    await cluster.grant("shorter", project)
    await cluster.request("shorter-alice", "shorter", duration="90m")
    await cluster.wait_phase("shorter-alice", "Active")
    await patch_grant(cluster, "shorter", {"maxDuration": "1h"})
    body = await cluster.wait_phase("shorter-alice", "Revoked")
    assert ready(body)["reason"] == "EligibilityChanged" and "1h" in ready(body)["message"]
    assert jit_bindings(cluster, project) == []


@pytest.mark.parametrize(
    "change",
    [
        {"justification": {"pattern": "^CHG-[0-9]+: .+"}},
        {"approval": APPROVAL},
        {"maxDuration": "30m"},
        {"principals": [f"user:{BOB}"]},
    ],
    ids=["pattern-added", "approval-added", "max-duration-lowered", "principal-removed"],
)
async def test_a_scheduled_request_is_held_to_the_grant_as_it_is_at_its_start(cluster, change):
    project = cluster.project()
    grant = f"scheduled-{next(iter(change)).lower()}-{len(json.dumps(change))}"
    await cluster.grant(grant, project)
    start = format_time(cluster.sandbox.clock.now() + timedelta(hours=1))
    await cluster.request(f"{grant}-alice", grant, startTime=start, duration="1h")
    await cluster.wait_phase(f"{grant}-alice", "Scheduled")
    await patch_grant(cluster, grant, change)
    body = await cluster.wait_phase(f"{grant}-alice", "Rejected")
    assert ready(body)["reason"] == "EligibilityChanged", ready(body)
    cluster.advance(hours=1, minutes=1)
    await asyncio.sleep(0.5)  # a few ticks past the booked start: nothing may start now
    assert (await cluster.get(f"{grant}-alice"))["status"]["phase"] == "Rejected"
    assert cluster.sets(project) == 0


async def test_an_approver_taken_off_the_grant_no_longer_holds_up_the_access(cluster):
    project = cluster.project()
    await cluster.grant("approver-gone", project, approval=APPROVAL)
    await cluster.wait_grant_ready("approver-gone")
    await active_with_approval(cluster, "approver-gone", "approver-gone-alice", roles=["roles/compute.admin"])
    await wait_counted(cluster, "bob-approve-approver-gone-alice", True)
    await patch_grant(cluster, "approver-gone", {"approval": {"approvers": [f"user:{CAROL}"]}})
    body = await cluster.wait_phase("approver-gone-alice", "Revoked")
    assert ready(body)["reason"] == "EligibilityChanged" and "approval" in ready(body)["message"]
    assert jit_bindings(cluster, project) == []
    said = await wait_counted(cluster, "bob-approve-approver-gone-alice", False)
    assert "not among the approvers" in said["status"]["message"]


async def test_roles_added_to_a_grant_after_approval_are_not_granted_under_it(cluster):
    project = cluster.project()
    await cluster.grant("grows", project, roles=["roles/compute.admin"], approval=APPROVAL)
    await cluster.wait_grant_ready("grows")
    # An Active request keeps exactly what was approved.
    await active_with_approval(cluster, "grows", "grows-active", duration="2h")
    # A Scheduled one was approved for fewer roles than it would now resolve to.
    start = format_time(cluster.sandbox.clock.now() + timedelta(hours=1))
    await cluster.request_as(ALICE, "grows-scheduled", "grows", startTime=start)
    await cluster.wait_phase("grows-scheduled", "AwaitingApproval")
    await cluster.decide(BOB, "grows-scheduled")
    await cluster.wait_phase("grows-scheduled", "Scheduled")
    await patch_grant(cluster, "grows", {"roles": ["roles/compute.admin", "roles/storage.admin"]})
    body = await cluster.wait_phase("grows-scheduled", "Rejected")
    assert ready(body)["reason"] == "EligibilityChanged"
    cluster.advance(hours=1, minutes=1)
    await asyncio.sleep(0.5)
    assert [b["role"] for b in jit_bindings(cluster, project)] == ["roles/compute.admin"]
    active = await cluster.get("grows-active")
    assert active["status"]["phase"] == "Active"
    assert [b["role"] for b in active["status"]["bindings"]] == ["roles/compute.admin"]


# -- 2. status is never evidence --------------------------------------------------------------


async def test_a_forged_status_writes_nothing_to_iam(cluster):
    project = cluster.project()
    cluster.emulator.seed(project, [FOREIGN])
    await cluster.grant("forged", project, approval=APPROVAL)
    await cluster.wait_grant_ready("forged")
    await cluster.request_as(ALICE, "forged-waiting", "forged", roles=["roles/compute.admin"])
    await cluster.wait_phase("forged-waiting", "AwaitingApproval")
    mallory = {
        "resource": project,
        "role": "roles/compute.admin",
        "member": "user:mallory@example.com",
        "condition": {"title": "JIT access activation", "description": "x", "expression": "true"},
    }
    approved = {
        "type": "Approved",
        "status": "True",
        "reason": "Approved",
        "message": "1 of 1",
        "lastTransitionTime": format_time(cluster.sandbox.clock.now()),
    }
    forged_approval = [{"approver": f"user:{BOB}", "decision": "Approve", "comment": "", "time": ""}]
    await patch_status(
        cluster,
        "forged-waiting",
        {"phase": "Active", "bindings": [mallory], "conditions": [approved], "approvals": forged_approval},
    )
    # The operator shows the truth again, and IAM never hears of it.
    await cluster.wait_phase("forged-waiting", "AwaitingApproval")
    assert cluster.bindings(project) == [FOREIGN] and cluster.sets(project) == 0
    # A status claiming the write is under way can only make the operator clean up and refuse: it
    # ends the request (it can no longer tell what was approved), and still grants nothing.
    await cluster.request_as(ALICE, "forged-activating", "forged", roles=["roles/compute.admin"])
    await cluster.wait_phase("forged-activating", "AwaitingApproval")
    await patch_status(cluster, "forged-activating", {"phase": "Activating", "conditions": [approved]})
    await cluster.wait_phase("forged-activating", "Rejected")
    assert cluster.bindings(project) == [FOREIGN]

    # An Active request whose status is rewritten to list other bindings and a later end.
    await cluster.grant("forged-self", project)
    await cluster.request("forged-active", "forged-self", roles=["roles/compute.admin"], duration="30m")
    body = await cluster.wait_phase("forged-active", "Active")
    written = copy.deepcopy(cluster.bindings(project))
    later = format_time(cluster.sandbox.clock.now() + timedelta(days=7))
    ceo = [{"approver": "user:ceo@example.com", "decision": "Approve", "comment": "", "time": ""}]
    await patch_status(
        cluster,
        "forged-active",
        {"phase": "Scheduled", "expiresAt": later, "bindings": [mallory], "approvals": ceo, "endedBy": CAROL},
    )

    async def shown_again() -> bool:
        now = await cluster.get("forged-active")
        return now["status"]["phase"] == "Active" and now["status"]["bindings"] == body["status"]["bindings"]

    await until(shown_again, "the Active status shown again from the operator's record", timeout_s=20)
    assert cluster.bindings(project) == written
    cluster.advance(minutes=31)  # it still ends when it was granted to end, not at the forged time
    await cluster.wait_phase("forged-active", "Expired")
    assert cluster.bindings(project) == [FOREIGN]
    # The record of it says what the operator knows, not what the status was made to say.
    for line in audit_lines(cluster, "forged-active"):
        assert line["approvers"] == [] and line["actor"] is None, line
    assert audit_lines(cluster, "forged-active")[-1]["end"] == body["status"]["expiresAt"]


# -- 3. approvals bind to one object and to what was seen --------------------------------------


async def test_an_approval_counts_only_for_the_request_it_was_given_for(cluster):
    project = cluster.project()
    await cluster.grant("swap", project, approval=APPROVAL)
    await cluster.wait_grant_ready("swap")
    await cluster.request_as(ALICE, "swap-alice", "swap", roles=["roles/compute.admin"], duration="30m")
    reviewed = await cluster.wait_phase("swap-alice", "AwaitingApproval")
    # Deleted and filed again under the same name, asking for more, before bob's decision lands.
    await cluster.delete("swap-alice", user=ALICE)
    await cluster.wait_gone("swap-alice")
    await cluster.request_as(ALICE, "swap-alice", "swap", duration="2h")
    await cluster.wait_phase("swap-alice", "AwaitingApproval")
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ActivationApproval",
        "metadata": {"name": "bob-reviewed-swap", "namespace": "team-sre"},
        "spec": {"request": "swap-alice", "decision": "Approve", "requestUID": reviewed["metadata"]["uid"]},
    }
    with pytest.raises(ApiException) as refused:
        await asyncio.to_thread(
            cluster.as_user(BOB).create_namespaced_custom_object,
            GROUP,
            VERSION,
            "team-sre",
            "activationapprovals",
            body,
        )
    assert refused.value.status == 403 and "deleted and created again" in refused.value.body
    assert (await cluster.get("swap-alice"))["status"]["phase"] == "AwaitingApproval"


@pytest.mark.sandbox_api
async def test_a_sealed_approval_replayed_for_a_new_request_of_that_name_does_not_count(cluster):
    project = cluster.project()
    await cluster.grant("replay", project, approval=APPROVAL)
    await cluster.wait_grant_ready("replay")
    await active_with_approval(cluster, "replay", "replay-alice", roles=["roles/compute.admin"])
    old = await approval(cluster, "bob-approve-replay-alice")
    await cluster.delete("replay-alice", user=ALICE)
    await cluster.wait_gone("replay-alice")
    await cluster.request_as(ALICE, "replay-alice", "replay", duration="2h")
    await cluster.wait_phase("replay-alice", "AwaitingApproval")
    # Restored around admission (a backup, or a write straight to storage), seal and all.
    replayed = copy.deepcopy(old)
    replayed["metadata"] = {
        "name": "bob-approve-replay-alice",
        "namespace": "team-sre",
        "annotations": old["metadata"]["annotations"],
    }
    replayed.pop("status", None)
    cluster.sandbox.api.admission.enabled = False
    try:
        await asyncio.to_thread(
            cluster.custom.create_namespaced_custom_object,
            GROUP,
            VERSION,
            "team-sre",
            "activationapprovals",
            replayed,
        )
    finally:
        cluster.sandbox.api.admission.enabled = True
    said = await wait_counted(cluster, "bob-approve-replay-alice", False)
    assert "another object of the same name" in said["status"]["message"]
    assert (await cluster.get("replay-alice"))["status"]["phase"] == "AwaitingApproval"
    assert jit_bindings(cluster, project) == []


# -- 4. one person counts once ----------------------------------------------------------------


async def test_one_approver_counts_once_however_the_address_is_spelled(cluster):
    project = cluster.project()
    grant_approval = {"approvers": [f"user:{BOB}", f"user:{CAROL}"], "minApprovals": 2}
    await cluster.grant("spelling", project, approval=grant_approval)
    await cluster.wait_grant_ready("spelling")
    await cluster.request_as(ALICE, "spelling-alice", "spelling", roles=["roles/compute.admin"])
    await cluster.wait_phase("spelling-alice", "AwaitingApproval")
    # The identity provider spells bob's login one way, then another.
    shouting = cluster.as_user(BOB)
    shouting.api_client.configuration.api_key = {"authorization": "Bearer sandbox:Bob@Example.COM"}
    for name, api in (("bob-upper", shouting), ("bob-lower", cluster.as_user(BOB))):
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ActivationApproval",
            "metadata": {"name": name, "namespace": "team-sre"},
            "spec": {"request": "spelling-alice", "decision": "Approve"},
        }
        await asyncio.to_thread(
            api.create_namespaced_custom_object, GROUP, VERSION, "team-sre", "activationapprovals", body
        )
        await wait_counted(cluster, name, name == "bob-upper")
        cluster.advance(seconds=1)  # the second comes later: the first given is the one that counts
    upper, lower = [await approval(cluster, name) for name in ("bob-upper", "bob-lower")]
    assert upper["spec"]["approver"] == lower["spec"]["approver"] == f"user:{BOB}"  # IAM's lower-case form
    assert upper["status"]["counted"] and not lower["status"]["counted"]
    assert "one person counts once" in lower["status"]["message"]
    body = await cluster.get("spelling-alice")
    assert body["status"]["phase"] == "AwaitingApproval"
    assert next(c for c in body["status"]["conditions"] if c["type"] == "Approved")["message"].startswith(
        "1 of 2"
    )
    assert jit_bindings(cluster, project) == []


async def test_a_trusted_submitter_cannot_approve_nor_claim_groups(cluster):
    """A GitOps controller may file requests naming someone, but cannot vouch for their groups or
    give approvals in someone's name (that would make multi-party approval one party)."""
    project = cluster.project()
    await cluster.grant("relayed", project, principals=["group:sre@example.com"], approval=APPROVAL)
    await cluster.wait_grant_ready("relayed")
    with pytest.raises(ApiException) as refused:
        await cluster.request(
            "relayed-mallory",
            "relayed",
            requester="user:mallory@example.com",
            requesterGroups=["group:sre@example.com"],
        )
    assert refused.value.status == 403 and "spec.requesterGroups" in refused.value.body
    await cluster.request_as(ALICE, "relayed-alice", "relayed", roles=["roles/compute.admin"])
    await cluster.wait_phase("relayed-alice", "AwaitingApproval")
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ActivationApproval",
        "metadata": {"name": "relayed-approval", "namespace": "team-sre"},
        "spec": {"request": "relayed-alice", "decision": "Approve", "approver": f"user:{BOB}"},
    }
    with pytest.raises(ApiException) as refused:
        await asyncio.to_thread(
            cluster.custom.create_namespaced_custom_object,
            GROUP,
            VERSION,
            "team-sre",
            "activationapprovals",
            body,
        )
    assert refused.value.status == 403
    assert (await cluster.get("relayed-alice"))["status"]["phase"] == "AwaitingApproval"


# -- 5. who may end someone else's access, and who did ----------------------------------------


async def test_ending_someone_elses_access_needs_the_revoke_verb_and_names_who_did_it(cluster):
    project = cluster.project()
    await cluster.grant("ending", project)
    for name in ("ending-revoked", "ending-deleted"):
        await cluster.request_as(ALICE, name, "ending", roles=["roles/compute.admin"])
        await cluster.wait_phase(name, "Active")
    # carol may file requests in team-sre (jitaccess-requester) but not end alice's.
    with pytest.raises(ApiException) as refused:
        await patch_as(cluster, CAROL, "ending-revoked", {"spec": {"revoke": True}})
    assert refused.value.status == 403 and "verb revoke" in refused.value.body
    with pytest.raises(ApiException) as refused:
        await cluster.delete("ending-deleted", user=CAROL)
    assert refused.value.status == 403
    assert {b["members"][0] for b in jit_bindings(cluster, project)} == {f"user:{ALICE}"}
    assert len(jit_bindings(cluster, project)) == 2

    rbac = client.RbacAuthorizationV1Api(
        client.ApiClient(kubernetes_configuration(cluster.sandbox.kubeconfig, "admin"))
    )
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "carol-revokes", "namespace": "team-sre"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "jitaccess-revoker",
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": CAROL}],
    }
    await asyncio.to_thread(rbac.create_namespaced_role_binding, "team-sre", binding)
    try:
        await patch_as(cluster, CAROL, "ending-revoked", {"spec": {"revoke": True}})
        revoked = await cluster.wait_phase("ending-revoked", "Revoked")
        await cluster.delete("ending-deleted", user=CAROL)
        await cluster.wait_gone("ending-deleted")
    finally:
        await asyncio.to_thread(rbac.delete_namespaced_role_binding, "carol-revokes", "team-sre")
    assert ready(revoked)["reason"] == "RevokedByAdmin" and CAROL in ready(revoked)["message"]
    assert revoked["status"]["endedBy"] == CAROL
    _, _, said = await cluster.wait_event("ending-revoked", "RevokedByAdmin")
    assert CAROL in said
    _, _, said = await cluster.wait_event("ending-deleted", "Deleted")
    assert CAROL in said
    assert jit_bindings(cluster, project) == []
    assert audit_lines(cluster, "ending-revoked")[-1]["actor"] == CAROL
    deleted = audit_lines(cluster, "ending-deleted")[-1]
    assert deleted["event"] == "Deleted" and deleted["actor"] == CAROL


async def test_only_the_operator_touches_its_metadata(cluster):
    project = cluster.project()
    await cluster.grant("metadata", project)
    await cluster.request_as(ALICE, "metadata-alice", "metadata", roles=["roles/compute.admin"])
    body = await cluster.wait_phase("metadata-alice", "Active")
    tampering = [
        (ALICE, {"metadata": {"finalizers": []}}),
        (ALICE, {"metadata": {"annotations": {"jitaccess.dev/admitted": "x"}}}),
        (ALICE, {"metadata": {"annotations": {"jitaccess.dev/activation": None}}}),
        (ALICE, {"metadata": {"labels": {"jitaccess.dev/approved": "true"}}}),
        (CAROL, {"metadata": {"annotations": {"jitaccess.dev/admitted": "blame-alice"}}}),
        # An owner whose deletion would have the garbage collector delete the request.
        (
            CAROL,
            {
                "metadata": {
                    "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "1"}]
                }
            },
        ),
    ]
    for user, patch in tampering:
        with pytest.raises(ApiException) as refused:
            await patch_as(cluster, user, "metadata-alice", patch)
        assert refused.value.status == 403, (user, patch)
        assert "only the jitaccess operator" in refused.value.body, refused.value.body
    await asyncio.sleep(0.3)
    after = await cluster.get("metadata-alice")
    assert after["status"]["phase"] == "Active"
    assert after["metadata"]["annotations"] == body["metadata"]["annotations"]
    assert len(jit_bindings(cluster, project)) == 1


@pytest.mark.sandbox_api
async def test_a_request_deleted_without_the_finalizer_loses_its_access_at_once(cluster):
    """Someone who gets past admission (it is off) strips the finalizer and deletes: the operator
    removes the binding when it sees the deletion, not at the next sweep."""
    project = cluster.project()
    cluster.emulator.seed(project, [FOREIGN])
    await cluster.grant("stripped", project)
    await cluster.request("stripped-alice", "stripped", roles=["roles/compute.admin"])
    await cluster.wait_phase("stripped-alice", "Active")
    cluster.sandbox.api.admission.enabled = False
    try:
        await cluster.patch_metadata("stripped-alice", {"finalizers": []})
        await cluster.delete("stripped-alice")
        await cluster.wait_gone("stripped-alice")
    finally:
        cluster.sandbox.api.admission.enabled = True

    async def removed() -> bool:
        return cluster.bindings(project) == [FOREIGN]

    await until(removed, "the deleted request's binding removed", timeout_s=20, every_s=0.05)


# -- 6. ownership you can prove ---------------------------------------------------------------


async def test_a_binding_that_imitates_our_reference_survives_the_sweeper(cluster):
    project = cluster.project()
    await cluster.grant("imitated", project)
    await cluster.request("imitated-alice", "imitated", roles=["roles/compute.admin"], duration="30m")
    ended = await cluster.wait_phase("imitated-alice", "Active")
    cluster.advance(minutes=31)
    await cluster.wait_phase("imitated-alice", "Expired")
    key = cluster.sandbox.reconciler.config.attestation_key
    start = cluster.sandbox.clock.now()
    forged = []
    for name, uid in (("imitated-alice", ended["metadata"]["uid"]), ("never-existed", "0000-1")):
        real = Reference.sealed("team-sre", name, uid, key)
        (binding,) = render(
            Activation(
                project,
                ("roles/compute.viewer",),
                "group:ops@example.com",
                start,
                start + timedelta(days=30),
                "someone else's",
                (),
                Reference(real.namespace, real.name, real.uid, "0" * 24),  # a MAC not made with our key
            )
        )
        forged.append({"role": binding.role, "members": [binding.member], "condition": binding.condition()})
    cluster.emulator.seed(project, [FOREIGN, *forged])
    report = await cluster.sandbox.in_operator(cluster.sandbox.reconciler.sweeper.sweep())
    assert report.removed == [] and report.unproven == 2
    assert cluster.bindings(project) == [FOREIGN, *forged]
    assert all(parse_reference(b["condition"]) is not None for b in forged)


# -- 7. loud when access cannot be ended ------------------------------------------------------


async def test_a_removal_iam_refuses_is_shown_and_retried_until_it_succeeds(cluster):
    project = cluster.project()
    cluster.emulator.seed(project, [FOREIGN])
    await cluster.grant("stuck", project)
    await cluster.request_as(ALICE, "stuck-alice", "stuck", roles=["roles/compute.admin"])
    await cluster.wait_phase("stuck-alice", "Active")
    reconciler = cluster.sandbox.reconciler
    failures_before = reconciler.metrics.revocation_failures
    cluster.emulator.configure(
        {"fail_next": [{"method": "setIamPolicy", "status": 403, "count": 1000, "resource": project}]}
    )
    try:
        await cluster.patch("stuck-alice", {"revoke": True}, user=ALICE)

        async def failing() -> bool:
            body = await cluster.get("stuck-alice")
            shown = {c["type"]: c for c in body["status"]["conditions"]}
            return shown.get("RevocationFailing", {}).get("status") == "True"

        await until(failing, "RevocationFailing shown", timeout_s=20, every_s=0.05)
        for _ in range(3):  # retries, on the injected clock
            cluster.advance(minutes=5)
            await asyncio.sleep(0.3)
        body = await cluster.get("stuck-alice")
        assert body["status"]["phase"] == "Active", "the phase says it still holds access"
        condition = next(c for c in body["status"]["conditions"] if c["type"] == "RevocationFailing")
        assert "permission" in condition["message"], condition
        assert reconciler.metrics.revocation_failures - failures_before >= 2
        assert len(reconciler.metrics.revocations_failing) >= 1
        warnings = [e for e in await cluster.events("stuck-alice") if e[1] == "RevocationFailing"]
        assert len(warnings) == 1 and warnings[0][0] == "Warning"
        assert len(jit_bindings(cluster, project)) == 1
    finally:
        cluster.emulator.configure({"fail_next": []})
    cluster.advance(minutes=5)
    body = await cluster.wait_phase("stuck-alice", "Revoked")
    condition = next(c for c in body["status"]["conditions"] if c["type"] == "RevocationFailing")
    assert condition["status"] == "False"
    assert cluster.bindings(project) == [FOREIGN]
    assert not reconciler.metrics.revocations_failing


# -- 9. grants that cannot work ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "spec", "reason"),
    [
        (
            "projects/unworkable-1",
            {"approval": {"approvers": [f"user:{BOB}"], "minApprovals": 5}},
            "ApprovalUnsatisfiable",
        ),
        ("folders/123456", {"roles": ["projects/other-project/roles/deployer"]}, "RoleNotGrantable"),
    ],
    ids=["too-few-approvers", "project-role-on-a-folder"],
)
async def test_a_grant_that_can_never_work_is_not_ready(cluster, resource, spec, reason):
    name = f"unworkable-{reason.lower()}"
    await cluster.grant(name, resource, **spec)
    body = await cluster.wait_grant_ready(name)
    condition = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
    assert condition["status"] == "False" and condition["reason"] == reason, condition


async def test_a_write_retried_for_a_long_time_grants_the_window_booked_never_a_later_one(cluster):
    """The window is sealed before IAM is written: however long IAM makes the write wait, what it
    finally holds ends when the request was booked to end."""
    project = cluster.project()
    await cluster.grant("patient", project)
    cluster.emulator.configure(
        {"fail_next": [{"method": "setIamPolicy", "status": 503, "count": 1000, "resource": project}]}
    )
    try:
        await cluster.request("patient-alice", "patient", roles=["roles/compute.admin"], duration="30m")
        intent = await cluster.wait_phase("patient-alice", "Activating")
        booked = intent["status"]["expiresAt"]
        cluster.advance(minutes=20)
        await asyncio.sleep(0.5)  # retries on the moved clock, still refused
    finally:
        cluster.emulator.configure({"fail_next": []})
    cluster.advance(minutes=5)  # past the capped backoff
    body = await cluster.wait_phase("patient-alice", "Active")
    assert body["status"]["expiresAt"] == booked
    (binding,) = jit_bindings(cluster, project)
    assert binding["condition"]["expression"].endswith(f'timestamp("{booked}"))')


async def test_padding_a_request_cannot_crowd_out_the_operators_records(cluster):
    project = cluster.project()
    await cluster.grant("padded", project)
    await cluster.request_as(ALICE, "padded-alice", "padded", roles=["roles/compute.admin"])
    await cluster.wait_phase("padded-alice", "Active")
    for user, patch in (
        (CAROL, {"metadata": {"annotations": {"padding": "x" * 40_000}}}),
        (CAROL, {"metadata": {"finalizers": ["example.com/hold"]}}),
        (ALICE, {"metadata": {"annotations": {"padding": "x" * 40_000}}}),
    ):
        with pytest.raises(ApiException) as refused:
            await patch_as(cluster, user, "padded-alice", patch)
        assert refused.value.status == 403 and "metadata." in refused.value.body, refused.value.body
    await cluster.patch("padded-alice", {"revoke": True}, user=ALICE)
    await cluster.wait_phase("padded-alice", "Revoked")
    assert jit_bindings(cluster, project) == []
