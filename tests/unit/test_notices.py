"""Who is told what: the notices a step gives, their audience and words, and how each channel
shows hostile text; the Slack click's signature and the chat approver's admission."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from jitaccess.api.objects import parse_grant
from jitaccess.api.times import parse_time
from jitaccess.controller.channels.email import EmailChannel, SmtpSettings
from jitaccess.controller.channels.google_chat import card
from jitaccess.controller.channels.render import inert, text
from jitaccess.controller.channels.slack import blocks
from jitaccess.policy.admission import CHAT_IDENTITY, Caller, IdentitySettings, admit_approval_identity
from jitaccess.policy.lifecycle import decide
from jitaccess.policy.notices import Notice, notice_from_record, notices_for, told
from jitaccess.policy.steps import read_state
from tests.unit.factories import KEY, admitted, carry_out, grant_body, request_body
from tests.unit.test_approvals import pinned, vote

NOW = datetime(2026, 11, 24, 9, 1, tzinfo=UTC)
TWO_STEPS, _ = parse_grant(
    grant_body(
        approval={
            "steps": [
                {"approvers": ["group:leads@example.com", "user:alice@example.com"]},
                {"approvers": ["user:dan@example.com"]},
            ]
        },
        notify={"slackChannel": "C0SECURITY"},
    )
)
# What admission lets through (control characters it refuses; `inert` removes them anyway).
HOSTILE = "INC-9 <script>alert(1)</script> <!channel> *bold* <https://evil.example|click>"
CONTROLS = "INC-9 \x1b[31mred\x1b[0m\nForged: line\u202e"


def run(body, decisions, now=NOW):
    state = read_state(body, KEY)
    step = decide(state, TWO_STEPS, now, timedelta(days=30), tuple(decisions))
    return state, step


def test_each_approval_step_tells_its_own_approvers_never_the_requester():
    body = admitted(request_body(created="2026-11-24T09:00:00Z", justification=HOSTILE))
    state, step = run(body, [])
    (first,) = notices_for(state, step, NOW)
    assert first.kind == "approval-needed" and first.key == "approval-needed-1"
    body = carry_out(body, step, {})
    account = told(first, read_state(body, KEY), TWO_STEPS)
    # alice approves at step 1 in general, but not her own request
    assert account.to == ("group:leads@example.com",) and account.step == "1 of 2" and account.answerable
    assert account.slack_channel == "C0SECURITY" and account.commands()[0] == "kubectl jit approve r -n team"
    bob = pinned(body, vote("user:bob@example.com", groups=("group:leads@example.com",)), TWO_STEPS)
    state, step = run(body, [bob], NOW + timedelta(minutes=5))
    (second,) = notices_for(state, step, NOW)
    assert second.key == "approval-needed-2" and second.approved_by == ("user:bob@example.com",)
    account = told(second, read_state(carry_out(body, step, {}), KEY), TWO_STEPS)
    assert account.to == ("user:dan@example.com",) and account.step == "2 of 2"


def test_a_notice_survives_its_record_and_the_end_is_told_once():
    notice = Notice("expired", "Expired", "it ended", NOW, approved_by=("user:bob@example.com",))
    assert notice_from_record(json.loads(json.dumps(notice.as_record())), parse_time) == notice
    assert notice.key == Notice("revoked", "Revoked", "", NOW).key == "ended"
    assert notice_from_record({"kind": "x"}, parse_time) is None


def test_unadmitted_requests_tell_nothing():
    body = request_body(created="2026-11-24T09:00:00Z")  # no admission seal
    notice = Notice("activated", "Activated", "", NOW)
    assert told(notice, read_state(body, KEY), TWO_STEPS) is None


def test_hostile_justification_is_inert_in_every_channel():
    body = admitted(request_body(created="2026-11-24T09:00:00Z", justification=HOSTILE))
    account = told(
        Notice("approval-needed", "ApprovalRequired", "wait", NOW, 0), read_state(body, KEY), TWO_STEPS
    )
    assert "\n" not in inert(CONTROLS) and "\x1b" not in inert(CONTROLS) and "\u202e" not in inert(CONTROLS)
    assert "Justification: INC-9 <script>" in text(account)  # plain text is shown as typed
    mail = EmailChannel(SmtpSettings("127.0.0.1", groups={"group:leads@example.com": ("lead@example.com",)}))
    assert mail.addresses(account) == ["lead@example.com"]
    markup = mail.message(account, ["lead@example.com"]).get_body(("html",)).get_content()
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    slack = json.dumps(blocks(account))
    assert all(
        element.get("type") == "plain_text"
        for block in blocks(account)
        for element in [block.get("text") or {}, *block.get("fields", [])]
        if "INC-9" in json.dumps(element)
    ), slack
    assert "&lt;script&gt;" in json.dumps(card(account)) and "<script>" not in json.dumps(card(account))


def test_groups_are_mailed_only_through_the_mapping():
    body = admitted(request_body(created="2026-11-24T09:00:00Z"))
    account = told(
        Notice("approval-needed", "ApprovalRequired", "", NOW, 0), read_state(body, KEY), TWO_STEPS
    )
    assert not EmailChannel(SmtpSettings("127.0.0.1")).wants(account)


OPERATOR = "system:serviceaccount:jitaccess-system:jitaccess"


def chat_approval(**spec):
    return {
        "metadata": {"name": "a", "namespace": "team", "annotations": {CHAT_IDENTITY: "slack:T1/U1"}},
        "spec": {"request": "r", "decision": "Approve", "approver": "user:Bob@Example.com", **spec},
    }


def test_the_operator_names_an_approver_only_for_a_chat_identity_and_only_when_enabled():
    on = IdentitySettings(chat_approvals=True)
    admitted_ = admit_approval_identity("CREATE", chat_approval(), None, Caller(OPERATOR), on, OPERATOR)
    assert admitted_.allowed and admitted_.stamp == {"approver": "user:bob@example.com", "approverGroups": []}
    off = admit_approval_identity(
        "CREATE", chat_approval(), None, Caller(OPERATOR), IdentitySettings(), OPERATOR
    )
    assert not off.allowed and "not enabled" in off.message
    for bad in (
        {"approverGroups": ["group:leads@example.com"]},
        {"decision": "Review"},
        {"approver": "group:x@y.z"},
    ):
        assert not admit_approval_identity(
            "CREATE", chat_approval(**bad), None, Caller(OPERATOR), on, OPERATOR
        ).allowed
    # Anyone else with the annotation is refused (it is the operator's to set), and cannot name bob.
    other = admit_approval_identity(
        "CREATE", chat_approval(), None, Caller("carol@example.com"), on, OPERATOR
    )
    assert not other.allowed and CHAT_IDENTITY in other.message
