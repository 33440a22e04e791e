"""The console as a submitter: it files for the one person IAP verified, judged on that person alone,
and revokes only for the requester; nobody else gains anything from the rules that let it."""

from datetime import UTC, datetime

import pytest

from jitaccess.policy.admission import Caller, IdentitySettings, admit_approval_identity, admit_request
from jitaccess.policy.ending_access import (
    ON_BEHALF_OF,
    admit_request_change,
    admit_request_deletion,
    revoked_by_stamp,
)
from jitaccess.policy.records import REVOKED_BY, read_records
from tests.unit.factories import KEY, grant_body

NOW = datetime(2026, 11, 24, 9, tzinfo=UTC)
OPERATOR = "system:serviceaccount:jitaccess-system:jitaccess"
CONSOLE = Caller("system:serviceaccount:jitaccess:jitaccess-console", ("system:serviceaccounts",))
GITOPS = Caller("system:serviceaccount:argocd:argocd-application-controller")
SETTINGS = IdentitySettings(
    trusted_submitters=frozenset({GITOPS.username}), console_submitters=frozenset({CONSOLE.username})
)


def request(revoke=False, annotations=None, requester="user:alice@example.com"):
    spec = {"grant": "g", "justification": "INC-1: restart it", "requester": requester}
    if revoke:
        spec["revoke"] = True
    return {
        "metadata": {
            "namespace": "team",
            "name": "r",
            "uid": "0f0e-1",
            "annotations": dict(annotations or {}),
        },
        "spec": spec,
    }


def on_behalf(member):
    return request(revoke=True, annotations={ON_BEHALF_OF: member})


def change(new, caller, old=None):
    return admit_request_change(new, old or request(), caller, SETTINGS, OPERATOR, KEY, NOW)


def test_the_console_files_requests_for_the_person_it_names_without_groups():
    from jitaccess.api.objects import parse_grant

    grant, _ = parse_grant(grant_body())
    body = {"metadata": {"namespace": "team", "name": "r"}, "spec": {"grant": "g", "justification": "x"}}
    unnamed = admit_request("CREATE", body, None, CONSOLE, SETTINGS, grant, True, NOW)
    assert not unnamed.allowed and "must name who" in unnamed.message
    named = {**body, "spec": {**body["spec"], "requester": "user:Alice@example.com"}}
    allowed = admit_request("CREATE", named, None, CONSOLE, SETTINGS, grant, True, NOW)
    assert allowed.allowed and allowed.stamp == {"requester": "user:alice@example.com", "requesterGroups": []}
    claimed = {**named, "spec": {**named["spec"], "requesterGroups": ["group:sre@example.com"]}}
    assert not admit_request("CREATE", claimed, None, CONSOLE, SETTINGS, grant, True, NOW).allowed


def test_the_console_files_decisions_for_one_verified_user_and_a_gitops_submitter_still_cannot():
    def approval(**spec):
        return {"spec": {"request": "r", "decision": "Approve", **spec}}

    for decision in ("Approve", "Deny", "Review", "Revoke"):
        verdict = admit_approval_identity(
            "CREATE", approval(decision=decision, approver="user:Bob@example.com"), None, CONSOLE, SETTINGS
        )
        assert verdict.allowed and verdict.stamp == {"approver": "user:bob@example.com", "approverGroups": []}
    for refused in (
        approval(),  # names nobody
        approval(approver="group:sre-leads@example.com"),
        approval(approver="domain:example.com"),
        approval(approver="user:bob@example.com", approverGroups=["group:sre-leads@example.com"]),
        approval(approver="user:bob@example.com", decision="Maybe"),
    ):
        assert not admit_approval_identity("CREATE", refused, None, CONSOLE, SETTINGS).allowed, refused
    for other in (GITOPS, Caller("system:serviceaccount:ci:robot"), Caller("carol@example.com")):
        named = approval(approver="user:bob@example.com")
        assert not admit_approval_identity("CREATE", named, None, other, SETTINGS).allowed, other


def test_the_console_revokes_for_the_requester_recorded_as_both():
    verdict = change(on_behalf("user:Alice@example.com"), CONSOLE)
    assert verdict.allowed and verdict.needs is None
    actor = verdict.actor
    assert (actor.user, actor.via, actor.as_requester) == ("user:alice@example.com", CONSOLE.username, True)
    assert actor.shown == f"user:alice@example.com via {CONSOLE.username}"
    # The mutating pass seals it; the validating pass sees that stamp and lets it through.
    name, value = revoked_by_stamp(request(), actor, KEY)
    stamped = on_behalf("user:alice@example.com")
    stamped["metadata"]["annotations"][name] = value
    assert change(stamped, CONSOLE).allowed
    recorded = read_records(stamped["metadata"], KEY).revoked_by
    assert recorded == actor


@pytest.mark.parametrize(
    ("caller", "new", "why"),
    [
        (CONSOLE, on_behalf("user:bob@example.com"), "is not the requester"),
        (CONSOLE, request(revoke=True), "revokes only for the person it names"),
        (CONSOLE, on_behalf("group:sre@example.com"), "revokes only for the person it names"),
        (
            CONSOLE,
            request(annotations={ON_BEHALF_OF: "user:alice@example.com"}),
            "only the jitaccess operator",
        ),
        (Caller("bob@example.com"), on_behalf("user:alice@example.com"), "only the jitaccess operator"),
        (Caller("system:serviceaccount:ci:robot"), on_behalf("user:alice@example.com"), "only the jitaccess"),
        (GITOPS, on_behalf("user:alice@example.com"), "only the jitaccess operator"),
    ],
)
def test_nobody_revokes_through_the_console_rule_but_the_console_for_the_requester(caller, new, why):
    verdict = change(new, caller)
    assert not verdict.allowed and why in verdict.message


def test_a_stamp_for_someone_else_or_not_via_the_console_does_not_pass_validation():
    from jitaccess.policy.records import Actor

    for forged in (
        Actor("user:alice@example.com", NOW, True),  # no via: as if alice revoked it herself
        Actor("user:alice@example.com", NOW, True, via="system:serviceaccount:ci:robot"),
        Actor("user:bob@example.com", NOW, True, via=CONSOLE.username),
    ):
        new = on_behalf("user:alice@example.com")
        new["metadata"]["annotations"][REVOKED_BY] = revoked_by_stamp(request(), forged, KEY)[1]
        verdict = change(new, CONSOLE)
        assert not verdict.allowed and REVOKED_BY in verdict.message, forged


def test_the_console_cannot_revoke_twice_nor_delete():
    done = on_behalf("user:alice@example.com")
    again = request(revoke=True, annotations={ON_BEHALF_OF: "user:bob@example.com"})
    assert not change(again, CONSOLE, old=done).allowed
    deletion = admit_request_deletion(request(), CONSOLE, SETTINGS, OPERATOR, KEY, NOW)
    assert not deletion.allowed and "is the console" in deletion.message
