from datetime import UTC, datetime, timedelta

from jitaccess.api.bindings import parse_reference
from jitaccess.api.objects import parse_grant
from jitaccess.api.phases import Phase
from jitaccess.policy.lifecycle import decide
from jitaccess.policy.records import ACTIVATION, ENDED, FINALIZER
from jitaccess.policy.steps import read_state
from tests.unit.factories import KEY, admitted, carry_out, grant_body, request_body

NOW = datetime(2026, 11, 24, 9, 0, 5, tzinfo=UTC)
RETENTION = timedelta(days=30)
GRANT, _ = parse_grant(grant_body())


def step_for(body, grant=GRANT, now=NOW, decisions=()):
    return decide(read_state(body, KEY), grant, now, RETENTION, tuple(decisions))


def settle(body, iam, grant=GRANT, now=NOW, decisions=()):
    """Step until nothing changes; returns the body as the API would hold it."""
    for _ in range(12):
        step = step_for(body, grant, now, decisions)
        if not step.changes_anything:
            return body
        body = carry_out(body, step, iam)
    raise AssertionError("did not settle")


def fresh(**spec):
    return admitted(request_body(**spec))


def test_a_new_request_is_judged_its_window_sealed_then_written():
    body = fresh(duration="30m")
    intent = step_for(body)
    # The window is sealed before IAM hears of it. Activating, naming the bindings, is told (an
    # audit line, no Event) but not written over a status that shows no phase yet: a write fewer.
    assert not intent.iam and intent.record_held.end == datetime(2026, 11, 24, 9, 30, 5, tzinfo=UTC)
    assert intent.status["phase"] == "Activating" and intent.event.reason == "Activating"
    assert intent.status_told_only and not intent.event.posted
    assert [b["role"] for b in intent.status["bindings"]] == ["roles/compute.admin", "roles/storage.admin"]
    written = step_for(carry_out(body, intent, {}))
    (change,) = written.iam
    assert change.resource == "projects/my-sandbox"
    assert [b.role for b in change.hold] == ["roles/compute.admin", "roles/storage.admin"]
    assert all(parse_reference(b.condition()).verified(KEY) for b in change.hold)
    assert written.on_success.status["phase"] == "Active" and written.on_success.event.reason == "Activated"
    assert written.on_failure.ending.phase == "ActivationFailed"
    assert written.on_retry.status["phase"] == "Activating"
    assert written.on_slow.status["phase"] == "Activating"  # shown when IAM keeps it waiting


def test_a_write_retried_later_writes_the_same_window_never_a_later_one():
    body = carry_out(fresh(duration="30m"), step_for(fresh(duration="30m")), {})
    for later in (NOW + timedelta(minutes=5), NOW + timedelta(minutes=29)):
        (change,) = step_for(body, now=later).iam
        assert all('timestamp("2026-11-24T09:30:05Z")' in b.expression for b in change.hold)
    ended = step_for(body, now=NOW + timedelta(minutes=31))
    assert not any(change.hold for change in ended.iam) and ended.ending.phase == "Expired"


def test_active_expires_by_removing_what_carries_its_reference():
    iam: dict = {}
    body = settle(fresh(duration="30m"), iam)
    assert body["status"]["phase"] == "Active" and len(iam["projects/my-sandbox"]) == 2
    assert ACTIVATION in body["metadata"]["annotations"]
    assert step_for(body).requeue_at == datetime(2026, 11, 24, 9, 30, 5, tzinfo=UTC)
    ended = settle(body, iam, now=NOW + timedelta(minutes=31))
    assert ended["status"]["phase"] == "Expired" and iam["projects/my-sandbox"] == []
    assert ENDED in ended["metadata"]["annotations"] and FINALIZER not in ended["metadata"]["finalizers"]


def test_a_status_that_lies_changes_nothing():
    iam: dict = {}
    body = settle(fresh(duration="30m"), iam)
    written = list(iam["projects/my-sandbox"])
    forged = dict(
        body,
        status={**body["status"], "phase": "Activating", "bindings": [], "expiresAt": "2030-01-01T00:00:00Z"},
    )
    again = settle(forged, iam)  # the sealed window is written again (the same), and shown
    assert again["status"]["phase"] == "Active" and again["status"]["expiresAt"] == "2026-11-24T09:30:05Z"
    assert iam["projects/my-sandbox"] == written
    # An ended request whose status is made to say Active again starts nothing.
    ended = settle(body, iam, now=NOW + timedelta(minutes=31))
    revived = dict(ended, status={**ended["status"], "phase": "Active"})
    step = step_for(revived, now=NOW + timedelta(minutes=32))
    assert not step.iam and step.status["phase"] == "Expired" and step.event is None


def test_a_tampered_record_ends_the_request_and_removes_what_it_may_hold():
    iam: dict = {}
    body = settle(fresh(duration="30m"), iam)
    body["metadata"]["annotations"][ACTIVATION] = body["metadata"]["annotations"][ACTIVATION].replace(
        "09:30:05", "23:30:05"
    )
    ended = settle(body, iam)
    assert (
        ended["status"]["phase"] == "Revoked"
        and ended["status"]["conditions"][0]["reason"] == "RecordTampered"
    )
    assert iam["projects/my-sandbox"] == []


def test_revoke_before_and_after_activation():
    assert step_for(fresh(revoke=True)).status["phase"] == "Withdrawn"
    iam: dict = {}
    body = settle(fresh(), iam)
    body["spec"]["revoke"] = True
    ended = settle(body, iam)
    assert ended["status"]["phase"] == "Revoked" and iam["projects/my-sandbox"] == []
    assert ended["status"]["conditions"][0]["reason"] == "Revoked"  # no actor recorded by admission here


def test_grant_changes_revoke_active_and_reject_waiting():
    iam: dict = {}
    body = settle(fresh(), iam)
    assert step_for(body, grant=None).iam  # deleted grant: removal first
    narrowed, _ = parse_grant(grant_body(roles=["roles/compute.admin"]))
    ended = settle(body, iam, grant=narrowed)
    reason = ended["status"]["conditions"][0]
    assert ended["status"]["phase"] == "Revoked" and reason["reason"] == "EligibilityChanged"
    assert "roles/storage.admin is not one of grant g's roles" in reason["message"]
    scheduled = settle(fresh(startTime="2026-11-24T10:00:00Z", duration="1h"), {})
    assert scheduled["status"]["phase"] == "Scheduled"
    shorter, _ = parse_grant(grant_body(maxDuration="30m"))
    rejected = settle(scheduled, {}, grant=shorter)
    assert rejected["status"]["phase"] == "Rejected"
    assert rejected["status"]["conditions"][0]["reason"] == "EligibilityChanged"


def test_scheduled_request_writes_nothing_until_its_start_and_ends_when_booked():
    body = fresh(startTime="2026-11-24T10:00:00Z", duration="30m")
    step = step_for(body)
    assert step.status["phase"] == "Scheduled" and not step.iam
    body = carry_out(body, step, {})
    waiting = step_for(body)
    assert not waiting.changes_anything and waiting.requeue_at == datetime(2026, 11, 24, 10, tzinfo=UTC)
    iam: dict = {}
    started = settle(body, iam, now=datetime(2026, 11, 24, 10, 0, 7, tzinfo=UTC))
    assert started["status"]["phase"] == "Active" and started["status"]["expiresAt"] == "2026-11-24T10:30:00Z"


def test_rejections_say_why():
    missing = step_for(fresh(), grant=None)
    assert missing.status["phase"] == "Rejected"
    assert missing.status["conditions"][0]["reason"] == "GrantNotFound"
    bad = step_for(fresh(duration="3h"))
    assert bad.status["phase"] == "Rejected"
    assert "exceeds the grant's maxDuration" in bad.status["conditions"][0]["message"]
    assert bad.event.type == "Warning"
    unsealed = step_for(request_body())
    assert unsealed.status["conditions"][0]["reason"] == "AdmissionBypassed"


def test_deletion_revokes_first_then_releases_the_finalizer():
    iam: dict = {}
    body = settle(fresh(), iam)
    body["metadata"]["deletionTimestamp"] = "2026-11-24T09:01:00Z"
    step = step_for(body)
    assert step.iam and step.on_success.remove_finalizer and step.on_success.status["phase"] == "Revoked"
    assert step.on_success.status["conditions"][0]["reason"] == "Deleted"
    assert step_for(fresh(deleting=True)).remove_finalizer


def test_terminal_requests_are_collected_after_retention():
    body = settle(fresh(duration="3h"), {})
    assert body["status"]["phase"] == "Rejected" and FINALIZER not in body["metadata"]["finalizers"]
    kept = step_for(body)
    assert not kept.changes_anything and kept.requeue_at == datetime(2026, 12, 24, 9, 0, 5, tzinfo=UTC)
    assert step_for(body, now=NOW + timedelta(days=31)).delete


def test_ready_moves_its_transition_time_only_when_its_status_changes():
    needs, _ = parse_grant(grant_body(approval={"approvers": ["group:leads@example.com"], "timeout": "1h"}))
    body = settle(fresh(), {}, grant=needs)
    first = body["status"]["conditions"][0]
    assert (
        body["status"]["phase"] == "AwaitingApproval"
        and first["lastTransitionTime"] == "2026-11-24T09:00:05Z"
    )
    late = settle(body, {}, grant=needs, now=NOW + timedelta(hours=2))
    ready = late["status"]["conditions"][0]
    assert late["status"]["phase"] == "Expired" and ready["reason"] == "ApprovalTimeout"
    assert ready["status"] == "False" and ready["lastTransitionTime"] == "2026-11-24T09:00:05Z"


def test_finalizer_name_is_ours():
    assert read_state(request_body(), KEY).has_finalizer and FINALIZER.startswith("jitaccess.dev/")
    assert Phase("Active") is Phase.ACTIVE


# -- eligibility that starts and ends by itself ---------------------------------------------


def windowed(not_before=None, not_after=None):
    spec = {}
    if not_before:
        spec["notBefore"] = not_before
    if not_after:
        spec["notAfter"] = not_after
    grant, errors = parse_grant(grant_body(**spec))
    assert not errors, errors
    return grant


def test_a_grant_outside_its_window_starts_nothing():
    early = step_for(fresh(), grant=windowed(not_before="2026-11-24T10:00:00Z"))
    assert early.ending.phase == "Rejected" and early.ending.reason == "NotYetEligible"
    assert "only from 2026-11-24T10:00:00Z" in early.status["conditions"][0]["message"]
    late = step_for(fresh(), grant=windowed(not_after="2026-11-24T09:00:00Z"))
    assert late.ending.phase == "Rejected" and late.ending.reason == "EligibilityExpired"
    assert not late.iam and late.record_held is None


def test_no_binding_outlives_the_grant_and_access_is_revoked_at_not_after():
    grant = windowed(not_after="2026-11-24T09:20:00Z")
    iam: dict = {}
    body = settle(fresh(duration="1h"), iam, grant=grant)
    assert body["status"]["phase"] == "Active"
    assert body["status"]["expiresAt"] == "2026-11-24T09:20:00Z"  # capped by the grant, not 10:00:05
    (binding,) = [b for b in iam["projects/my-sandbox"] if b.role == "roles/compute.admin"]
    assert 'timestamp("2026-11-24T09:20:00Z")' in binding.expression
    assert step_for(body, grant=grant).requeue_at == datetime(2026, 11, 24, 9, 20, tzinfo=UTC)
    # the grant's end moved earlier while the access is held: revoked then, not at its own end
    sooner = windowed(not_after="2026-11-24T09:10:00Z")
    assert step_for(body, grant=sooner).requeue_at == datetime(2026, 11, 24, 9, 10, tzinfo=UTC)
    ended = step_for(body, grant=sooner, now=datetime(2026, 11, 24, 9, 10, tzinfo=UTC))
    assert ended.ending.phase == "Revoked" and ended.ending.reason == "EligibilityExpired"
    assert not any(change.hold for change in ended.iam)


def test_a_request_waiting_for_approval_is_looked_at_again_when_the_grant_ends():
    grant, errors = parse_grant(
        grant_body(
            notAfter="2026-11-24T09:30:00Z", approval={"approvers": ["user:bob@example.com"], "timeout": "2h"}
        )
    )
    assert not errors
    waiting = step_for(fresh(), grant=grant)
    assert waiting.status["phase"] == "AwaitingApproval"
    assert waiting.requeue_at == datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
    body = carry_out(fresh(), waiting, {})
    rejected = step_for(body, grant=grant, now=datetime(2026, 11, 24, 9, 30, tzinfo=UTC))
    assert rejected.ending.phase == "Rejected" and rejected.ending.reason == "EligibilityExpired"


def test_a_grant_window_must_be_a_window():
    _, errors = parse_grant(grant_body(notBefore="2026-12-01T00:00:00Z", notAfter="2026-11-01T00:00:00Z"))
    assert [e.path for e in errors] == ["spec.notAfter"]
    _, errors = parse_grant(grant_body(notAfter="next tuesday"))
    assert [e.path for e in errors] == ["spec.notAfter"] and "RFC 3339" in errors[0].message
