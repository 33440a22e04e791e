"""Reading JIT Access 1.x eligibility: what is carried over, and what is reported instead."""

from __future__ import annotations

import pytest

from jitaccess.migrate.translate import MULTI_PARTY, SELF, grants, read_policy


def binding(expression: str, role: str = "roles/compute.admin", members=("user:alice@example.com",)) -> dict:
    return {
        "role": role,
        "members": list(members),
        "condition": {"title": "eligible", "expression": expression},
    }


@pytest.mark.parametrize(
    ("expression", "mode"),
    [
        ("has({}.jitAccessConstraint)", SELF),
        ("  has( {}.jitAccessConstraint )  ", SELF),
        ("(has({}.jitAccessConstraint))", SELF),
        ("has({}.multiPartyApprovalConstraint)", MULTI_PARTY),
    ],
)
def test_eligibility_is_read_in_its_spellings(expression, mode):
    found = read_policy("projects/p-12345", [binding(expression)])
    assert [(e.role, e.mode) for e in found.eligible] == [
        ("roles/compute.admin", mode)
    ] and not found.untranslated


@pytest.mark.parametrize(
    "expression",
    [
        'has({}.jitAccessConstraint) && resource.name == "projects/_/buckets/b"',
        '(resource.type == "storage.googleapis.com/Bucket") && has({}.jitAccessConstraint)',
        "has({}.jitAccessConstraint) || true",
        'has({}.jitAccessConstraint) && request.time < timestamp("2027-01-01T00:00:00Z")',
    ],
)
def test_anything_more_than_the_constraint_is_reported_not_widened(expression):
    found = read_policy("projects/p-12345", [binding(expression)])
    assert found.eligible == [] and len(found.untranslated) == 1


def test_unrelated_and_our_own_bindings_are_not_eligibility():
    ours = {
        "role": "roles/compute.admin",
        "members": ["user:alice@example.com"],
        "condition": {
            "title": "JIT access activation",
            "description": "Self-approved, justification: x [jitaccess.dev/request=ns/r uid=0a1b]",
            "expression": 'request.time < timestamp("2026-11-24T10:00:00Z")',
        },
    }
    found = read_policy(
        "projects/p-12345", [{"role": "roles/viewer", "members": ["group:g@example.com"]}, ours]
    )
    assert found.eligible == [] and found.activations == [] and found.untranslated == []


def test_grants_group_roles_by_principal_set_and_mode_with_unique_names():
    found = read_policy(
        "projects/p-12345",
        [
            binding("has({}.jitAccessConstraint)", "roles/a.admin"),
            binding("has({}.jitAccessConstraint)", "roles/b.admin"),
            binding("has({}.jitAccessConstraint)", "roles/c.admin", ("user:bob@example.com",)),
            binding("has({}.multiPartyApprovalConstraint)", "roles/d.admin"),
        ],
    )
    made = grants(found.eligible, "1h", ["group:leads@example.com"])
    names = [g["metadata"]["name"] for g in made]
    assert len(names) == len(set(names)) == 3
    roles = sorted(tuple(g["spec"]["roles"]) for g in made)
    assert roles == [("roles/a.admin", "roles/b.admin"), ("roles/c.admin",), ("roles/d.admin",)]
    (mpa,) = [g for g in made if "approval" in g["spec"]]
    assert mpa["spec"]["approval"]["approvers"] == ["group:leads@example.com"]
