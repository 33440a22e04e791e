"""policy.drift: which bindings of ours are leftovers, which Active requests lost theirs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jitaccess.iam.bindings import render
from jitaccess.policy.drift import KnownRequest, audit, leftover_reason
from jitaccess.policy.lifecycle import Activation, Phase

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
PROJECT = "projects/p"


def binding(name: str, uid: str, role: str = "roles/compute.admin"):
    start = datetime(2026, 11, 24, 9, tzinfo=UTC)
    (made,) = render(
        Activation(PROJECT, (role,), "user:alice@example.com", start, start + timedelta(hours=1), "INC-1: x", (),
                   "team", name, uid)
    )  # fmt: skip
    return made


def as_iam(made) -> dict:
    return {"role": made.role, "members": [made.member], "condition": made.condition()}


@pytest.mark.parametrize(
    ("phase", "uid", "stays"),
    [
        (Phase.ACTIVE, "a1", True),
        (Phase.ACTIVATING, "a1", True),  # may be being written right now
        (Phase.EXPIRED, "a1", False),
        (Phase.REVOKED, "a1", False),
        (Phase.SCHEDULED, "a1", False),
        (None, "a1", False),
        (Phase.ACTIVE, "ffff-0000", False),  # same name, another object
    ],
)
def test_leftover_reason(phase, uid, stays):
    request = KnownRequest("team", "r", uid, phase)
    assert (leftover_reason(request, "a1") is None) is stays
    assert leftover_reason(None, "a1") == "its ActivationRequest no longer exists"


def test_audit_finds_leftovers_and_missing_and_ignores_what_is_not_ours():
    kept, gone, orphaned = binding("active", "a1"), binding("lost", "b2"), binding("deleted", "c3")
    foreign = {"role": "roles/viewer", "members": ["group:ops@example.com"]}
    requests = {
        ("team", "active"): KnownRequest("team", "active", "a1", Phase.ACTIVE, (kept,)),
        ("team", "lost"): KnownRequest("team", "lost", "b2", Phase.ACTIVE, (gone,)),
        ("team", "ending"): KnownRequest(
            "team", "ending", "d4", Phase.ACTIVE, (binding("ending", "d4"),), expires_at=NOW
        ),
    }
    found = audit(PROJECT, [foreign, as_iam(kept), as_iam(orphaned)], requests, NOW)
    assert [(item.key, item.why) for item in found.leftovers] == [
        (("team", "deleted"), "its ActivationRequest no longer exists")
    ]
    assert found.missing == {("team", "lost"): [gone]}  # "ending" expires on its own
