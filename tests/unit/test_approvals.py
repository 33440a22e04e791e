from datetime import UTC, datetime, timedelta

from jitaccess.api.objects import Decision, parse_grant
from jitaccess.policy.approvals import Subject, tally
from jitaccess.policy.lifecycle import decide
from jitaccess.policy.steps import read_state
from tests.unit.factories import KEY, admitted, carry_out, grant_body, request_body

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
SUBJECT = Subject("uid-1", "sha256:x", datetime(2026, 11, 24, 9, tzinfo=UTC))  # opened at 9, 1h to approve


def vote(
    approver,
    decision="Approve",
    groups=(),
    attested=True,
    name=None,
    time="2026-11-24T09:05:00Z",
    uid="uid-1",
    digest="sha256:x",
):
    return Decision(
        name or f"{approver}-{decision}", approver, tuple(groups), decision, "ok", time, attested, uid, digest
    )


BOB = vote("user:bob@example.com", groups=("group:leads@example.com",))
DAN = vote("user:dan@example.com", time="2026-11-24T09:06:00Z")


def test_two_of_n_by_user_and_by_group():
    assert tally([BOB, DAN], ALICE, GRANT.approval, SUBJECT).met
    assert not tally([BOB], ALICE, GRANT.approval, SUBJECT).met


def test_one_person_counts_once_however_they_spell_their_address():
    counted = tally(
        [
            BOB,
            vote(
                "user:Bob@Example.com",
                groups=("group:LEADS@example.com",),
                name="again",
                time="2026-11-24T09:07:00Z",
            ),
        ],
        ALICE,
        GRANT.approval,
        SUBJECT,
    )
    assert counted.approved_by == ("user:bob@example.com",) and not counted.met
    assert "one person counts once" in dict(counted.ignored)["again"]
    assert (
        "cannot approve their own"
        in dict(tally([vote("user:ALICE@example.com")], ALICE, GRANT.approval, SUBJECT).ignored)[
            "user:ALICE@example.com-Approve"
        ]
    )


def test_outsiders_unsealed_other_objects_changed_terms_and_late_ones_do_not_count():
    counted = tally(
        [
            vote("user:carol@example.com"),
            vote("user:dan@example.com", attested=False, name="unsealed"),
            vote("user:dan@example.com", uid="uid-0", name="old-object"),
            vote("user:dan@example.com", digest="sha256:y", name="other-terms"),
            vote("user:dan@example.com", time="2026-11-24T10:00:01Z", name="late"),
        ],
        ALICE,
        GRANT.approval,
        SUBJECT,
    )
    assert counted.approved_by == ()
    reasons = dict(counted.ignored)
    assert "not among the approvers" in reasons["user:carol@example.com-Approve"]
    assert "admission" in reasons["unsealed"]
    assert "another object of the same name" in reasons["old-object"]
    assert "changed since it was given" in reasons["other-terms"]
    assert "after the approval timeout" in reasons["late"]


def test_one_eligible_deny_denies():
    assert tally([BOB, vote("user:dan@example.com", "Deny")], ALICE, GRANT.approval, SUBJECT).denied_by == (
        "user:dan@example.com"
    )
    assert tally([vote("user:carol@example.com", "Deny")], ALICE, GRANT.approval, SUBJECT).denied_by is None


def pinned(body, decision, grant=GRANT):
    """The decision as admission pins it to this request (its uid and the digest of its terms)."""
    from jitaccess.policy.approvals import terms_digest
    from jitaccess.policy.eligibility import resolve

    state = read_state(body, KEY)
    terms = resolve(state.spec, grant)
    digest = terms_digest(state.uid, state.spec_digest, terms.resource, terms.roles, terms.duration_s)
    return vote(
        decision.approver,
        decision.decision,
        decision.approver_groups,
        name=decision.name,
        time=decision.time,
        uid=state.uid,
        digest=digest,
    )


def waiting():
    return admitted(request_body(created="2026-11-24T09:00:00Z"))


def step(body, decisions, now=NOW, grant=GRANT):
    return decide(read_state(body, KEY), grant, now, timedelta(days=30), tuple(decisions))


def settle(body, decisions, iam, grant=GRANT):
    for _ in range(8):
        next_step = step(body, decisions, grant=grant)
        if not next_step.changes_anything:
            return body
        body = carry_out(body, next_step, iam)
    raise AssertionError("did not settle")


def test_approved_request_is_written_naming_its_approvers():
    body = carry_out(waiting(), step(waiting(), []), {})
    assert body["status"]["phase"] == "AwaitingApproval"
    votes = [pinned(body, BOB), pinned(body, DAN)]
    intent = step(body, votes)  # the window and its approvers are sealed before IAM hears of it
    assert not intent.iam and intent.record_held.approvers == ("user:bob@example.com", "user:dan@example.com")
    condition = next(c for c in intent.status["conditions"] if c["type"] == "Approved")
    assert condition["status"] == "True" and condition["message"].startswith("2 of 2 approval(s)")
    assert [a["approver"] for a in intent.status["approvals"]] == [
        "user:bob@example.com",
        "user:dan@example.com",
    ]
    assert {r.name: r.counted for r in intent.reports} == {BOB.name: True, DAN.name: True}
    assert not intent.status_told_only  # it showed AwaitingApproval: Activating is written over it
    written = step(carry_out(body, intent, {}), votes)
    (change,) = written.iam
    assert change.hold[0].description.startswith(
        "Approved by user:bob@example.com, user:dan@example.com, justification: "
    )
    assert written.on_success.status["phase"] == "Active"
    assert [a["approver"] for a in written.on_success.status["approvals"]] == [
        "user:bob@example.com",
        "user:dan@example.com",
    ]


def test_the_active_status_shows_the_approvals_counted_even_when_activating_was_not_written():
    """Approvals already there at its first judgement (an operator that was down, or lagging): the
    window is sealed without a status write; whatever writes it next (the write that follows, or
    the one after a crash) shows the approvals as counted then."""
    body = waiting()
    votes = [pinned(body, BOB), pinned(body, DAN)]
    intent = step(body, votes)
    assert intent.status_told_only
    sealed = carry_out(body, intent, {})
    assert "status" not in sealed or not sealed["status"]
    written = step(sealed, votes)
    for shown in (written.on_success.status, written.on_slow.status):
        approved = next(c for c in shown["conditions"] if c["type"] == "Approved")
        assert approved["status"] == "True" and approved["message"].startswith("2 of 2 approval(s)")
        assert [a["approver"] for a in shown["approvals"]] == ["user:bob@example.com", "user:dan@example.com"]
    active = settle(body, votes, {})
    assert active["status"]["phase"] == "Active" and len(active["status"]["approvals"]) == 2


def test_approvals_of_a_request_that_resolves_to_more_roles_now_do_not_count():
    body = waiting()
    votes = [pinned(body, BOB), pinned(body, DAN)]
    grown, _ = parse_grant(
        grant_body(
            roles=["roles/compute.admin", "roles/storage.admin", "roles/iam.securityAdmin"],
            approval={"approvers": ["group:leads@example.com", "user:dan@example.com"], "minApprovals": 2},
        )
    )
    later = step(body, votes, grant=grown)
    assert not later.iam and later.status["phase"] == "AwaitingApproval"
    assert all(not r.counted and "changed since" in r.message for r in later.reports)


def test_partial_approval_is_recorded_once_then_waits():
    body = waiting()
    votes = [pinned(body, BOB)]
    partial = step(body, votes)
    assert partial.status["phase"] == "AwaitingApproval"
    assert next(c for c in partial.status["conditions"] if c["type"] == "Approved")["message"].startswith(
        "1 of 2"
    )
    body = carry_out(body, partial, {})
    recorded = step(body, votes)
    assert not recorded.changes_anything and recorded.requeue_at == datetime(2026, 11, 24, 10, tzinfo=UTC)


def test_denied_and_timed_out():
    body = waiting()
    assert step(body, [pinned(body, BOB), pinned(body, vote("user:dan@example.com", "Deny"))]).status[
        "phase"
    ] == ("Denied")
    late = step(body, [pinned(body, BOB)], now=NOW + timedelta(hours=1))
    assert late.status["phase"] == "Expired" and "1 of 2" in late.status["conditions"][0]["message"]


def test_active_request_is_revoked_when_its_approvals_no_longer_meet_the_rule():
    body = waiting()
    votes = [pinned(body, BOB), pinned(body, DAN)]
    iam: dict = {}
    body = settle(body, votes, iam)
    assert body["status"]["phase"] == "Active"
    assert not step(body, votes).changes_anything
    without_dan, _ = parse_grant(
        grant_body(
            approval={"approvers": ["group:leads@example.com", "user:erin@example.com"], "minApprovals": 2}
        )
    )
    revoked = step(body, votes, grant=without_dan)
    assert revoked.iam and revoked.on_success.status["phase"] == "Revoked"
    assert "approval rule is no longer met" in revoked.on_success.status["conditions"][0]["message"]


# -- several steps ----------------------------------------------------------------------------

TWO_STEPS, _ = parse_grant(
    grant_body(
        approval={
            "steps": [
                {"approvers": ["group:leads@example.com"], "timeout": "1h"},
                {"approvers": ["group:security@example.com", "user:dan@example.com"], "timeout": "30m"},
            ]
        }
    )
)
SEC = ("group:security@example.com",)


def test_steps_are_met_in_order_each_opening_when_the_one_before_is_met():
    assert TWO_STEPS is not None and TWO_STEPS.approval.describe() == "1+1 approvals in 2 steps"
    first = tally([BOB], ALICE, TWO_STEPS.approval, SUBJECT)
    assert not first.met and first.waiting.index == 1
    # step 2 opened when bob approved (09:05) and has 30 minutes
    assert first.waiting.deadline == datetime(2026, 11, 24, 9, 35, tzinfo=UTC)
    assert "step 2 of 2 waits for 1 more approval(s) from group:security@example.com" in first.summary()
    both = tally(
        [BOB, vote("user:eve@example.com", groups=SEC, time="2026-11-24T09:20:00Z")],
        ALICE,
        TWO_STEPS.approval,
        SUBJECT,
    )
    assert both.met and both.approved_by == ("user:bob@example.com", "user:eve@example.com")


def test_an_approval_given_before_its_step_opened_does_not_count():
    early = vote("user:eve@example.com", groups=SEC, time="2026-11-24T09:01:00Z")
    counted = tally([early, BOB], ALICE, TWO_STEPS.approval, SUBJECT)
    assert not counted.met and counted.waiting.index == 1
    assert (
        "came before step 2 opened (2026-11-24T09:05:00Z); approve again" in dict(counted.ignored)[early.name]
    )


def test_one_person_counts_in_one_step_only():
    # dan leads and is a step-2 approver: his one approval counts once, at step 1
    dan = vote("user:dan@example.com", groups=("group:leads@example.com",))
    again = vote("user:dan@example.com", name="dan-again", time="2026-11-24T09:10:00Z")
    counted = tally([dan, again], ALICE, TWO_STEPS.approval, SUBJECT)
    assert counted.approved_by == ("user:dan@example.com",) and counted.waiting.index == 1
    assert "already approved at an earlier step; one person counts once" in dict(counted.ignored)["dan-again"]


def test_a_deny_at_the_second_step_denies():
    deny = vote("user:eve@example.com", "Deny", groups=SEC, time="2026-11-24T09:20:00Z")
    assert tally([BOB, deny], ALICE, TWO_STEPS.approval, SUBJECT).denied_by == "user:eve@example.com"


def test_a_step_that_times_out_ends_the_request_naming_the_step():
    body = waiting()
    bob = pinned(body, BOB, TWO_STEPS)
    waits = step(body, [bob], now=datetime(2026, 11, 24, 9, 34, tzinfo=UTC), grant=TWO_STEPS)
    assert waits.requeue_at == datetime(2026, 11, 24, 9, 35, tzinfo=UTC)  # step 2 opened at 09:05, 30m
    ended = step(body, [bob], now=datetime(2026, 11, 24, 9, 35, tzinfo=UTC), grant=TWO_STEPS)
    assert ended.ending.phase == "Expired" and ended.ending.reason == "ApprovalTimeout"
    message = next(c for c in ended.status["conditions"] if c["type"] == "Ready")["message"]
    assert message.startswith(
        "step 2 of 2 (group:security@example.com, user:dan@example.com) got no approval within 30m"
    )


def test_steps_and_the_shorthand_do_not_mix():
    _, errors = parse_grant(
        grant_body(
            approval={
                "approvers": ["user:bob@example.com"],
                "steps": [{"approvers": ["user:dan@example.com"]}],
            }
        )
    )
    assert [e.path for e in errors] == ["spec.approval"]
    _, errors = parse_grant(grant_body(approval={"steps": []}))
    assert [e.path for e in errors] == ["spec.approval.steps"]


def test_steps_that_can_never_be_met_together_make_the_grant_invalid():
    _, errors = parse_grant(
        grant_body(
            approval={
                "steps": [
                    {"approvers": ["user:bob@example.com", "user:dan@example.com"], "minApprovals": 2},
                    {"approvers": ["user:bob@example.com"]},
                ]
            }
        )
    )
    assert [(e.path, e.reason) for e in errors] == [("spec.approval.steps", "ApprovalUnsatisfiable")]
