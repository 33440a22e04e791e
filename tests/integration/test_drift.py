"""Drift: bindings someone else removed are reported, never re-granted; leftovers of
ours are swept from IAM; nothing that is not ours is touched. The sweep is run on demand here
(in production every --sweep-interval), on the operator's own event loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jitaccess.api.bindings import Activation, Reference, render
from jitaccess.policy.records import ENDED
from tests.integration.conftest import until
from tests.integration.test_lifecycle import jit_bindings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
FOREIGN = {"role": "roles/compute.viewer", "members": ["group:ops@example.com"]}
# What Google's Just-In-Time Access 1.x writes: our title, but no jitaccess reference.
GOOGLE_JIT = {
    "role": "roles/compute.admin",
    "members": ["user:carol@example.com"],
    "condition": {
        "title": "JIT access activation",
        "description": "Self-approved, justification: legacy",
        "expression": 'request.time < timestamp("2030-01-01T00:00:00Z")',
    },
}


def as_iam(binding) -> dict:
    return {"role": binding.role, "members": [binding.member], "condition": binding.condition()}


def orphan(project: str, key: bytes, mac: str | None = None) -> dict:
    """A binding of ours whose request is gone (left by a crash, or a restored backup); with `mac`,
    one that imitates ours with a MAC not made with the operator's key."""
    start = datetime(2026, 11, 24, 9, tzinfo=UTC)
    reference = Reference.sealed("team-sre", "long-gone", "5f0e6d1c-0000-4000-8000-000000000000", key)
    (binding,) = render(
        Activation(
            project,
            ("roles/storage.admin",),
            "user:mallory@example.com",
            start,
            start + timedelta(hours=1),
            "INC-1: gone",
            (),
            Reference(reference.namespace, reference.name, reference.uid, mac) if mac else reference,
        )
    )
    return as_iam(binding)


async def sweep(cluster):
    reconciler = cluster.sandbox.reconciler
    return await cluster.sandbox.in_operator(reconciler.sweeper.sweep())


async def test_a_binding_removed_by_someone_else_is_reported_and_not_granted_again(cluster):
    project = cluster.project()
    cluster.emulator.seed(project, [FOREIGN])
    await cluster.grant("drift", project)
    await cluster.request("drift-alice", "drift", roles=["roles/compute.admin"])
    await cluster.wait_phase("drift-alice", "Active")
    assert len(jit_bindings(cluster, project)) == 1
    cluster.emulator.seed(project, [FOREIGN])  # another tool (or a person) takes it away
    writes = cluster.sets(project)

    report = await sweep(cluster)
    assert report.reported == [("team-sre", "drift-alice")] and report.removed == []
    body = await cluster.get("drift-alice")
    assert body["status"]["phase"] == "Active"
    (condition,) = [c for c in body["status"]["conditions"] if c["type"] == "BindingsPresent"]
    assert condition["status"] == "False" and condition["reason"] == "BindingRemovedExternally"
    assert "roles/compute.admin on " + project in condition["message"]
    await cluster.wait_event("drift-alice", "BindingRemovedExternally")
    assert cluster.bindings(project) == [FOREIGN] and cluster.sets(project) == writes  # not re-granted

    again = await sweep(cluster)
    assert ("team-sre", "drift-alice") not in again.reported  # reported once
    await cluster.patch("drift-alice", {"revoke": True})
    await cluster.wait_phase("drift-alice", "Revoked")
    assert cluster.bindings(project) == [FOREIGN]


async def test_leftover_bindings_of_ours_are_swept_and_nothing_else_is_touched(cluster):
    project = cluster.project()
    await cluster.grant("sweep", project)
    await cluster.request("sweep-active", "sweep", roles=["roles/compute.admin"])
    await cluster.request("sweep-ended", "sweep", roles=["roles/storage.admin"])
    await cluster.wait_phase("sweep-active", "Active")
    ended = await cluster.wait_phase("sweep-ended", "Active")
    await cluster.patch("sweep-ended", {"revoke": True})
    await cluster.wait_phase("sweep-ended", "Revoked")

    async def sealed_ended() -> bool:  # the end is sealed just after the status shows it
        body = await cluster.get("sweep-ended")
        return ENDED in ((body or {}).get("metadata") or {}).get("annotations", {})

    await until(sealed_ended, "the end of sweep-ended sealed", timeout_s=20, every_s=0.05)
    (active,) = jit_bindings(cluster, project)
    # A crash (or a restore) leaves the revoked request's binding and an orphan behind.
    (leftover,) = [
        {"role": b["role"], "members": [b["member"]], "condition": b["condition"]}
        for b in ended["status"]["bindings"]
    ]
    key = cluster.sandbox.reconciler.config.attestation_key
    cluster.emulator.seed(project, [FOREIGN, GOOGLE_JIT, active, leftover, orphan(project, key)])

    report = await sweep(cluster)
    removed = sorted((item.key, item.found.role) for item in report.removed)
    assert removed == [
        (("team-sre", "long-gone"), "roles/storage.admin"),
        (("team-sre", "sweep-ended"), "roles/storage.admin"),
    ]
    assert cluster.bindings(project) == [FOREIGN, GOOGLE_JIT, active]
    await cluster.wait_event("sweep-ended", "LeftoverBindingRemoved")
    assert (await sweep(cluster)).removed == []  # nothing left to do, nothing written
