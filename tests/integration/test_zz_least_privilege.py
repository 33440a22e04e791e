"""Least privilege: the operator's ClusterRole in manifests/ allows exactly what the
operator calls. The sandbox API records every call by user; the operator runs there as the
service account the ClusterRole is bound to. This module drives every kind of work the operator
does (and runs last, so it also sees the calls of every integration module before it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from jitaccess_sandbox.runner import OPERATOR_NAMESPACE, OPERATOR_USER
from tests.integration.conftest import OPERATOR_CALLS

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
# Allowed, and needed, but not called on every run; each with the reason it is in the role.
RARELY_CALLED: dict[tuple[str, str, str], str] = {
    ("get", "eligiblegrants.jitaccess.dev", ""): "admission reads a grant the watch has not delivered yet "
    "(test_webhooks provokes it)",
    (
        "get",
        "activationrequests.jitaccess.dev",
        "",
    ): "admission of an approval and the sweeper read a request "
    "afresh before they act (test_approvals, test_drift)",
    ("create", "activationapprovals.jitaccess.dev", ""): "an Approve or Deny clicked in Slack, filed as the "
    "person Slack verified (test_chat_notifications)",
}


def allowed_by_rbac() -> set[tuple[str, str, str]]:
    """What the ClusterRole allows everywhere and the leader-election Role in the operator's own
    namespace, both bound to the operator's service account."""
    documents = [d for d in yaml.safe_load_all((MANIFESTS / "rbac.yaml").read_text()) if d]
    (role,) = [
        d for d in documents if d["kind"] == "ClusterRole" and d["metadata"]["name"] == "jitaccess-operator"
    ]
    (lease_role,) = [d for d in documents if d["kind"] == "Role"]
    bindings = [d for d in documents if d["kind"] in ("ClusterRoleBinding", "RoleBinding")]
    assert {(b["kind"], b["roleRef"]["name"]) for b in bindings} == {
        ("ClusterRoleBinding", role["metadata"]["name"]),
        ("RoleBinding", lease_role["metadata"]["name"]),
    }
    for binding in bindings:
        (subject,) = binding["subjects"]
        assert f"system:serviceaccount:{subject['namespace']}:{subject['name']}" == OPERATOR_USER
    allowed = set()
    for rule in [*role["rules"], *lease_role["rules"]]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                plural, _, subresource = resource.partition("/")
                name = f"{plural}.{group}" if group else plural
                allowed.update((verb, name, subresource) for verb in rule["verbs"])
    return allowed


@pytest.mark.sandbox_api
async def test_the_operator_calls_exactly_what_its_cluster_role_allows(cluster):
    project = cluster.project()
    await cluster.grant("rbac-self", project)
    await cluster.grant("rbac-approved", project, approval={"approvers": ["user:bob@example.com"]})
    for name in ("rbac-self", "rbac-approved"):
        await cluster.wait_grant_ready(name)
    await cluster.request("rbac-revoked", "rbac-self", roles=["roles/compute.admin"])
    await cluster.request("rbac-deleted", "rbac-self", roles=["roles/storage.admin"])
    await cluster.request_as(
        "alice@example.com", "rbac-approval", "rbac-approved", roles=["roles/compute.admin"]
    )
    await cluster.wait_phase("rbac-approval", "AwaitingApproval")
    await cluster.decide("bob@example.com", "rbac-approval")
    for name in ("rbac-revoked", "rbac-deleted", "rbac-approval"):
        await cluster.wait_phase(name, "Active")
    await cluster.patch("rbac-revoked", {"revoke": True})
    await cluster.wait_phase("rbac-revoked", "Revoked")
    await cluster.delete("rbac-deleted")
    await cluster.wait_gone("rbac-deleted")
    cluster.advance(hours=2)
    await cluster.wait_phase("rbac-approval", "Expired")
    cluster.advance(days=31)  # past the retention: terminal requests are deleted
    await cluster.wait_gone("rbac-revoked")
    reconciler = cluster.sandbox.reconciler
    await cluster.sandbox.in_operator(reconciler.sweeper.sweep())

    called = set(OPERATOR_CALLS) | {
        (verb, resource, subresource)
        for (user, verb, resource, subresource) in cluster.sandbox.api.served
        if user == OPERATOR_USER
    }
    allowed = allowed_by_rbac()
    # The Role allows leases in the operator's namespace only, and get/patch on one name only.
    leases = [key for key in cluster.sandbox.api.store if key[0].plural == "leases"]
    assert [(namespace, name) for _, namespace, name in leases] == [(OPERATOR_NAMESPACE, "jitaccess")]
    assert called - allowed == set(), "the operator calls what its ClusterRole does not allow"
    unused = allowed - called
    assert unused <= set(RARELY_CALLED), (
        f"allowed but never called (remove, or explain why): {sorted(unused)}"
    )
    assert set(RARELY_CALLED) <= allowed
