from datetime import UTC, datetime, timedelta

from jitaccess.api.objects import parse_grant
from jitaccess.iam.bindings import render
from jitaccess.policy.approvals import Decision, tally
from jitaccess.policy.lifecycle import decide, read_state
from tests.unit.factories import grant_body, request_body

NOW = datetime(2026, 11, 24, 9, 10, tzinfo=UTC)
GRANT, _ = parse_grant(
    grant_body(
        approval={
            "approvers": ["group:leads@example.com", "user:dan@example.com"],
            "minApprovals": 2,
            "timeout": "1h",
        }
    )
)
ALICE = "user:alice@example.com"


def vote(approver, decision="Approve", groups=(), attested=True, name=None, time="2026-11-24T09:05:00Z"):
    return Decision(name or f"{approver}-{decision}", approver, tuple(groups), decision, "ok", time, attested)


BOB = vote("user:bob@example.com", groups=("group:leads@example.com",))
DAN = vote("user:dan@example.com", time="2026-11-24T09:06:00Z")


def test_two_of_n_by_user_and_by_group():
    assert tally([BOB, DAN], ALICE, GRANT.approval).met
    assert not tally([BOB], ALICE, GRANT.approval).met


def test_duplicates_count_once_and_outsiders_self_and_unsealed_do_not_count():
    counted = tally(
        [
            BOB,
            vote("user:bob@example.com", groups=("group:leads@example.com",), name="again"),
            vote("user:carol@example.com"),
            vote(ALICE, groups=("group:leads@example.com",)),
            vote("user:dan@example.com", attested=False),
        ],
        ALICE,
        GRANT.approval,
    )
    assert counted.approved_by == ("user:bob@example.com",) and not counted.met
    reasons = dict(counted.ignored)
    assert "not among the approvers" in reasons["user:carol@example.com-Approve"]
    assert "cannot approve their own request" in reasons[f"{ALICE}-Approve"]
    assert "admission" in reasons["user:dan@example.com-Approve"]


def test_one_eligible_deny_denies():
    assert (
        tally([BOB, vote("user:dan@example.com", "Deny")], ALICE, GRANT.approval).denied_by
        == "user:dan@example.com"
    )
    assert tally([vote("user:carol@example.com", "Deny")], ALICE, GRANT.approval).denied_by is None


def step(decisions, now=NOW, status=None):
    body = request_body(status=status or {"phase": "AwaitingApproval"}, created="2026-11-24T09:00:00Z")
    return decide(read_state(body), GRANT, now, timedelta(days=30), tuple(decisions))


def test_approved_request_activates_naming_its_approvers():
    approved = step([BOB, DAN])
    assert approved.status["phase"] == "Activating"
    assert approved.activation.approvers == ("user:bob@example.com", "user:dan@example.com")
    assert render(approved.activation)[0].description.startswith(
        "Approved by user:bob@example.com, user:dan@example.com, justification: "
    )
    condition = next(c for c in approved.status["conditions"] if c["type"] == "Approved")
    assert condition["status"] == "True" and condition["message"].startswith("2 of 2 approval(s)")
    assert [a["approver"] for a in approved.status["approvals"]] == [
        "user:bob@example.com",
        "user:dan@example.com",
    ]


def test_partial_approval_is_recorded_once_then_waits():
    partial = step([BOB])
    assert partial.status["phase"] == "AwaitingApproval"
    assert next(c for c in partial.status["conditions"] if c["type"] == "Approved")["message"].startswith(
        "1 of 2"
    )
    recorded = step([BOB], status={"phase": "AwaitingApproval", "approvals": partial.status["approvals"]})
    assert not recorded.changes_anything and recorded.requeue_at == datetime(2026, 11, 24, 10, tzinfo=UTC)


def test_denied_and_timed_out():
    assert step([BOB, vote("user:dan@example.com", "Deny")]).status["phase"] == "Denied"
    late = step([BOB], now=NOW + timedelta(hours=1))
    assert late.status["phase"] == "Expired" and "1 of 2" in late.status["conditions"][0]["message"]


def test_approved_condition_survives_later_transitions():
    approved = step([BOB, DAN])
    status = {
        **approved.status,
        "phase": "Activating",
        "bindings": [b.to_status() for b in render(approved.activation)],
    }
    active = decide(read_state(request_body(status=status)), GRANT, NOW, timedelta(days=30)).on_success
    assert {c["type"] for c in active.status["conditions"]} == {"Ready", "Approved"}
