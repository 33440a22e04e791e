"""Break-glass access, judged by the pure core with an injected clock."""

from datetime import UTC, datetime, timedelta

from jitaccess.api.objects import parse_grant
from jitaccess.policy.admission import Caller, IdentitySettings, admit_approval, admit_request
from jitaccess.policy.lifecycle import decide
from jitaccess.policy.records import read_records
from jitaccess.policy.steps import read_state
from tests.unit.factories import KEY, admitted, carry_out, grant_body, request_body
from tests.unit.test_approvals import pinned, vote

NOW = datetime(2026, 11, 24, 9, 0, 5, tzinfo=UTC)
GRANT, _ = parse_grant(
    grant_body(
        approval={"approvers": ["group:leads@example.com"]},
        breakGlass={"allowed": True, "maxDuration": "1h", "reviewWithin": "24h"},
    )
)
ALICE = "user:alice@example.com"
BOB = vote("user:bob@example.com", "Review", groups=("group:leads@example.com",), time="2026-11-24T09:10:00Z")


def step_for(body, now=NOW, decisions=(), grant=GRANT):
    return decide(read_state(body, KEY), grant, now, timedelta(days=30), tuple(decisions))


def settle(body, iam, now=NOW, decisions=(), grant=GRANT):
    for _ in range(12):
        step = step_for(body, now, decisions, grant)
        if not step.changes_anything:
            return body, step
        body = carry_out(body, step, iam)
    raise AssertionError("did not settle")


def broken(**spec):
    return admitted(request_body(breakGlass=True, duration="30m", **spec))


def condition(body, kind):
    return next((c for c in body["status"].get("conditions", []) if c["type"] == kind), {})


def test_break_glass_activates_at_once_alerts_and_is_flagged():
    assert GRANT is not None and GRANT.break_glass.reviewers == ("group:leads@example.com",)
    iam: dict = {}
    intent = step_for(broken())
    assert intent.record_held is not None  # no approval asked for
    written = step_for(carry_out(broken(), intent, iam))
    active = written.on_success
    assert active.event.type == "Warning" and active.event.reason == "BreakGlassActivated"
    assert "group:leads@example.com must review it by 2026-11-25T09:00:05Z" in active.event.message
    body, _ = settle(broken(), iam)
    assert body["status"]["phase"] == "Active"
    flag = condition(body, "Reviewed")
    assert flag["status"] == "False" and flag["reason"] == "ReviewRequired"


def test_a_review_clears_the_flag_and_a_revoke_ends_access():
    iam: dict = {}
    body, _ = settle(broken(), iam)
    review = pinned(body, BOB, GRANT)
    reviewed, _ = settle(body, iam, now=NOW + timedelta(minutes=15), decisions=[review])
    flag = condition(reviewed, "Reviewed")
    assert flag["status"] == "True" and flag["message"] == "reviewed by user:bob@example.com: ok"
    assert reviewed["status"]["phase"] == "Active"  # reviewed, still held

    revoke = pinned(body, vote("user:bob@example.com", "Revoke", groups=("group:leads@example.com",)), GRANT)
    ended = step_for(body, now=NOW + timedelta(minutes=5), decisions=[revoke])
    assert ended.ending.phase == "Revoked" and ended.ending.reason == "RevokedByReviewer"
    assert not any(change.hold for change in ended.iam)


def test_the_requester_and_outsiders_cannot_review_and_approvals_do_not_count():
    iam: dict = {}
    body, _ = settle(broken(), iam)
    own = pinned(body, vote(ALICE, "Review", groups=("group:leads@example.com",)), GRANT)
    outsider = pinned(body, vote("user:eve@example.com", "Review"), GRANT)
    approve = pinned(body, vote("user:bob@example.com", groups=("group:leads@example.com",)), GRANT)
    step = step_for(body, decisions=[own, outsider, approve])
    reports = {r.name: r for r in step.reports}
    assert "requester, who cannot review" in reports[own.name].message
    assert "not among the reviewers" in reports[outsider.name].message
    assert "reviewed, not approved" in reports[approve.name].message
    assert not any(r.counted for r in reports.values())


def test_an_unreviewed_break_glass_is_overdue_after_its_end_too():
    iam: dict = {}
    body, _ = settle(broken(), iam)
    expired, step = settle(body, iam, now=NOW + timedelta(hours=1))
    assert expired["status"]["phase"] == "Expired"
    assert step.requeue_at == NOW + timedelta(hours=24)  # looked at again when the review falls due
    overdue = step_for(expired, now=NOW + timedelta(hours=24))
    assert overdue.event.type == "Warning" and overdue.event.reason == "ReviewOverdue"
    late, _ = settle(expired, iam, now=NOW + timedelta(hours=24))
    assert condition(late, "Reviewed")["reason"] == "ReviewOverdue"
    # a review after the end still clears it
    cleared, _ = settle(late, iam, now=NOW + timedelta(hours=25), decisions=[pinned(body, BOB, GRANT)])
    assert condition(cleared, "Reviewed")["status"] == "True"


def test_admission_refuses_break_glass_where_the_grant_does_not_allow_it():
    plain, _ = parse_grant(grant_body())
    caller = Caller("alice@example.com", ("sre@example.com",))
    refused = admit_request("CREATE", broken(), None, caller, IdentitySettings(), plain, True, NOW)
    assert not refused.allowed and "does not allow break-glass access" in refused.message
    long = admit_request(
        "CREATE",
        admitted(request_body(breakGlass=True, duration="2h")),
        None,
        caller,
        IdentitySettings(),
        GRANT,
        True,
        NOW,
    )
    assert not long.allowed and "lasts at most 1h" in long.message
    scheduled = admit_request(
        "CREATE", broken(startTime="2026-11-24T10:00:00Z"), None, caller, IdentitySettings(), GRANT, True, NOW
    )
    assert not scheduled.allowed and "starts now" in scheduled.message


def test_admission_lets_only_a_reviewer_review_an_activated_break_glass():
    iam: dict = {}
    body, _ = settle(broken(), iam)
    spec = {
        "request": "r",
        "decision": "Review",
        "approver": "user:bob@example.com",
        "approverGroups": ["group:leads@example.com"],
    }
    held = read_records(body["metadata"], KEY).held
    assert admit_approval(spec, body, GRANT, held).allowed
    own = {**spec, "approver": ALICE}
    assert "requester, who cannot review" in admit_approval(own, body, GRANT, held).message
    approve = {**spec, "decision": "Approve"}
    assert "reviewed, not approved" in admit_approval(approve, body, GRANT, held).message
    # the obligation was sealed at activation: a grant that lost its reviewers changes nothing
    plain, _ = parse_grant(grant_body())
    assert admit_approval(spec, body, plain, held).allowed
