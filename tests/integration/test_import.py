"""Coming from Google's Just-In-Time Access 1.x: `jitaccess import` reads a realistic
1.x policy from the emulator over the real REST client, the YAML it writes is applied in the
sandbox, and the same people can activate the same roles; what cannot be carried over is in the
report; JIT Access's own activations are listed and left alone."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import GROUP, VERSION
from tests.integration.test_lifecycle import jit_bindings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
PROJECT = "projects/legacy-jit-1"
SELF = "has({}.jitAccessConstraint)"
MPA = "has({}.multiPartyApprovalConstraint)"


def eligible(role: str, members: list[str], expression: str, title: str = "Eligible for JIT access") -> dict:
    return {"role": role, "members": members, "condition": {"title": title, "expression": expression}}


LEGACY = [
    {"role": "roles/viewer", "members": ["group:everyone@example.com"]},  # unrelated
    eligible("roles/compute.admin", ["group:sre@example.com", "user:dave@example.com"], SELF),
    eligible("roles/storage.admin", ["group:sre@example.com", "user:dave@example.com"], SELF),
    eligible("roles/cloudsql.admin", ["user:alice@example.com", "user:bob@example.com"], MPA),
    eligible(  # narrowed to one bucket: cannot be carried over without widening it
        "roles/storage.objectAdmin",
        ["user:carol@example.com"],
        f'{SELF} && resource.name.startsWith("projects/_/buckets/audit-logs")',
    ),
    eligible("roles/compute.viewer", ["deleted:user:mallory@example.com?uid=123"], SELF),  # gone
    {  # a live activation by JIT Access itself
        "role": "roles/compute.admin",
        "members": ["user:dave@example.com"],
        "condition": {
            "title": "JIT access activation",
            "description": "Self-approved, justification: INC-1 legacy",
            "expression": '(request.time >= timestamp("2026-11-24T08:00:00Z") && request.time < timestamp("2026-11-24T23:00:00Z"))',
        },
    },
    {  # an expired one
        "role": "roles/storage.admin",
        "members": ["user:dave@example.com"],
        "condition": {
            "title": "JIT access activation",
            "description": "Self-approved, justification: INC-0 older",
            "expression": 'request.time < timestamp("2026-11-01T10:00:00Z")',
        },
    },
]


async def test_imported_grants_let_the_same_people_activate_the_same_roles(cluster, tmp_path: Path):
    cluster.emulator.resources.add(PROJECT)
    cluster.emulator.seed(PROJECT, LEGACY)
    before = cluster.bindings(PROJECT)
    reads = len(cluster.emulator.calls)
    command = [
        str(Path(sys.executable).parent / "jitaccess"), "import", "--resource", PROJECT,
        "--iam-endpoint", cluster.sandbox.iam_url, "-o", str(tmp_path), "--max-duration", "2h", "--activations",
    ]  # fmt: skip
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "NOT TRANSLATED" in done.stderr  # the report is also said, not only written
    assert {c.method for c in cluster.emulator.calls[reads:]} == {"getIamPolicy"}  # read-only

    documents = list(yaml.safe_load_all((tmp_path / "grants.yaml").read_text()))
    by_mode = {d["metadata"]["name"]: d["spec"] for d in documents}
    assert by_mode == {
        "project-legacy-jit-1-self": {
            "resource": PROJECT,
            "roles": ["roles/compute.admin", "roles/storage.admin"],
            "principals": ["group:sre@example.com", "user:dave@example.com"],
            "maxDuration": "2h",
        },
        "project-legacy-jit-1-mpa": {
            "resource": PROJECT,
            "roles": ["roles/cloudsql.admin"],
            "principals": ["user:alice@example.com", "user:bob@example.com"],
            "maxDuration": "2h",
            "approval": {"approvers": ["user:alice@example.com", "user:bob@example.com"], "minApprovals": 1},
        },
    }
    report = (tmp_path / "report.txt").read_text()
    assert (
        "NOT TRANSLATED" in report
        and "roles/storage.objectAdmin" in report
        and "resource.name.startsWith" in report
    )
    assert "deleted:user:mallory@example.com?uid=123 cannot request access" in report
    listed = done.stdout
    assert (
        "roles/compute.admin  user:dave@example.com  2026-11-24T08:00:00Z .. 2026-11-24T23:00:00Z" in listed
    )

    for document in documents:  # apply what import wrote, as an admin would
        await asyncio.to_thread(
            cluster.custom.create_cluster_custom_object, GROUP, VERSION, "eligiblegrants", document
        )
        await cluster.wait_grant_ready(document["metadata"]["name"])
    # alice is in group sre: self-approved compute.admin, as with JIT Access.
    await cluster.request_as(
        "alice@example.com", "legacy-alice", "project-legacy-jit-1-self", roles=["roles/compute.admin"]
    )
    await cluster.wait_phase("legacy-alice", "Active")
    # cloudsql.admin needs another eligible person's approval: bob approves alice.
    await cluster.request_as(
        "alice@example.com", "legacy-alice-sql", "project-legacy-jit-1-mpa", roles=["roles/cloudsql.admin"]
    )
    await cluster.wait_phase("legacy-alice-sql", "AwaitingApproval")
    await cluster.decide("bob@example.com", "legacy-alice-sql")
    await cluster.wait_phase("legacy-alice-sql", "Active")
    # carol was only eligible within one bucket: no grant covers her.
    from kubernetes.client import ApiException

    with pytest.raises(ApiException):
        await cluster.request_as("carol@example.com", "legacy-carol", "project-legacy-jit-1-self")

    # Coexistence: everything JIT Access wrote is still there, untouched, next to ours.
    after = cluster.bindings(PROJECT)
    assert all(binding in after for binding in before)
    assert len(jit_bindings(cluster, PROJECT)) == 2
    await cluster.sandbox.in_operator(cluster.sandbox.reconciler.sweeper.sweep())
    assert all(binding in cluster.bindings(PROJECT) for binding in before)
