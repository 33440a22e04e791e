"""policy.drift: which bindings of ours are leftovers, which active requests lost theirs, and
that nothing is judged ours without a MAC made with our key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jitaccess.api.bindings import Activation, Reference, render
from jitaccess.api.phases import Phase
from jitaccess.policy.drift import KnownRequest, audit, leftover_reason
from jitaccess.policy.records import Ended, Held, Records

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
PROJECT = "projects/p"
KEY = b"d" * 32
ROLE = "roles/compute.admin"


def binding(name: str, uid: str, role: str = ROLE, reference: Reference | None = None):
    start = datetime(2026, 11, 24, 9, tzinfo=UTC)
    (made,) = render(
        Activation(PROJECT, (role,), "user:alice@example.com", start, start + timedelta(hours=1), "INC-1: x", (),
                   reference or Reference.sealed("team", name, uid, KEY))
    )  # fmt: skip
    return made


def as_iam(made) -> dict:
    return {"role": made.role, "members": [made.member], "condition": made.condition()}


def holding(name: str, uid: str, ended: bool = False, expires_at: datetime | None = None) -> KnownRequest:
    """A request whose sealed activation record says it holds ROLE on PROJECT."""
    start = datetime(2026, 11, 24, 9, tzinfo=UTC)
    held = Held(PROJECT, (ROLE,), "user:alice@example.com", start, expires_at or start + timedelta(hours=2))
    end = Ended(Phase.REVOKED, "RevokedByRequester", NOW) if ended else None
    return KnownRequest("team", name, uid, Records(held=held, ended=end))


@pytest.mark.parametrize(
    ("request_", "stays"),
    [
        (holding("r", "a1"), True),
        (holding("r", "a1", ended=True), False),
        (KnownRequest("team", "r", "a1"), False),  # holds nothing by its record: never activated
        (holding("r", "ffff-0000"), False),  # same name, another object
    ],
)
def test_leftover_reason(request_, stays):
    assert (leftover_reason(request_, "a1") is None) is stays
    assert leftover_reason(None, "a1") == "its ActivationRequest no longer exists"


def test_audit_finds_leftovers_and_missing_and_ignores_what_is_not_ours():
    kept, orphaned = binding("active", "a1"), binding("deleted", "c3")
    foreign = {"role": "roles/viewer", "members": ["group:ops@example.com"]}
    forged = binding("deleted", "c3", reference=Reference("team", "deleted", "c3", "0" * 24))
    legacy = binding(
        "deleted", "c3", role="roles/storage.admin", reference=Reference("team", "deleted", "c3")
    )
    requests = {
        ("team", "active"): holding("active", "a1"),
        ("team", "lost"): holding("lost", "b2"),
        ("team", "ending"): holding("ending", "d4", expires_at=NOW),
    }
    policy = [foreign, as_iam(kept), as_iam(orphaned), as_iam(forged), as_iam(legacy)]
    found = audit(PROJECT, policy, requests, NOW, KEY)
    assert [(item.key, item.why) for item in found.leftovers] == [
        (("team", "deleted"), "its ActivationRequest no longer exists")
    ]
    assert found.missing == {("team", "lost"): [(PROJECT, ROLE)]}  # "ending" expires on its own
    assert [f.role for f in found.unproven] == [ROLE, "roles/storage.admin"]  # forged and pre-MAC: left alone
    assert audit(PROJECT, policy, requests, NOW, b"other-key" * 4).leftovers == []
