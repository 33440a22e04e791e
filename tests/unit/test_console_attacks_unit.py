"""The console's rules that the attacks in tests/integration/test_console_attacks.py found missing,
each on its own: who may see a request (a decision on it, not one anywhere)."""

from __future__ import annotations

from jitaccess.api.objects import parse_grant
from jitaccess.console.views import decisions_of, may_see

ALICE, CAROL = "user:alice@example.com", "user:carol@example.com"


def request(name: str = "alice-db-1", namespace: str = "team-sre") -> dict:
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": "u1"},
        "spec": {"grant": "db", "requester": ALICE, "justification": "INC-1: secret"},
    }


def approval(on: str, namespace: str = "team-sre", approver: str = CAROL) -> dict:
    return {
        "metadata": {"name": f"{on}-deny", "namespace": namespace},
        "spec": {"request": on, "decision": "Deny", "approver": approver},
    }


def grant() -> object:
    parsed, errors = parse_grant(
        {
            "metadata": {"name": "db"},
            "spec": {
                "resource": "projects/my-database",
                "roles": ["roles/cloudsql.admin"],
                "principals": [ALICE],
                "maxDuration": "1h",
            },
        }
    )
    assert parsed is not None, errors
    return parsed


def test_a_decision_shows_its_own_request_to_its_approver_and_no_other():
    body = request()
    elsewhere = [approval("bob-other-1"), approval("alice-db-1", namespace="default")]
    assert not may_see(body, grant(), CAROL, elsewhere)
    assert decisions_of(body, elsewhere) == []
    assert may_see(body, grant(), CAROL, [*elsewhere, approval("alice-db-1")])
    assert may_see(body, grant(), "user:Carol@Example.com", [approval("alice-db-1")])
    assert may_see(body, grant(), ALICE, [])  # the requester
    assert not may_see(body, None, CAROL, elsewhere)  # a grant gone changes nothing for her
