from datetime import UTC, datetime, timedelta

from jitaccess.api.objects import parse_grant
from jitaccess.iam.bindings import render
from jitaccess.policy.lifecycle import FINALIZER, Phase, decide, read_state
from tests.unit.factories import grant_body, request_body

NOW = datetime(2026, 11, 24, 9, 0, 5, tzinfo=UTC)
RETENTION = timedelta(days=30)
GRANT, _ = parse_grant(grant_body())


def step_for(grant=GRANT, now=NOW, **request):
    return decide(read_state(request_body(**request)), grant, now, RETENTION)


def active_status(expires="2026-11-24T09:30:05Z"):
    step = step_for(status={"phase": "Pending"})
    bindings = [b.to_status() for b in render(step.activation)]
    return {"phase": "Active", "expiresAt": expires, "bindings": bindings}


def test_new_request_gets_a_finalizer_then_its_verdict_in_one_write():
    assert step_for(finalizers=[]).add_finalizer
    step = step_for()
    assert step.status["phase"] == "Activating" and step.event.reason == "Activating"
    assert step_for(duration="3h").status["phase"] == "Rejected"


def test_valid_pending_request_goes_activating_with_its_window():
    step = step_for(status={"phase": "Pending"}, duration="30m")
    assert step.status["phase"] == "Activating"
    assert step.activation.roles == ("roles/compute.admin", "roles/storage.admin")
    assert step.activation.start == datetime(2026, 11, 24, 9, 0, 5, tzinfo=UTC)
    assert step.status["expiresAt"] == "2026-11-24T09:30:05Z"
    assert step.iam is None  # the plan is persisted before anything is written


def test_activating_writes_then_active_or_failed():
    status = dict(active_status(), phase="Activating")
    step = step_for(status=status)
    assert step.iam.kind == "add" and len(step.iam.bindings) == 2
    assert step.on_success.status["phase"] == "Active"
    assert step.on_success.status["conditions"][0]["status"] == "True"
    assert step.on_failure.status["phase"] == "ActivationFailed"


def test_active_expires_by_removing_exactly_its_bindings():
    status = active_status()
    assert step_for(status=status).requeue_at == datetime(2026, 11, 24, 9, 30, 5, tzinfo=UTC)
    step = step_for(status=status, now=NOW + timedelta(minutes=31))
    assert step.iam.kind == "remove" and list(step.iam.bindings) == status["bindings"]
    assert step.on_success.status["phase"] == "Expired"


def test_revoke_before_and_after_activation():
    assert step_for(status={"phase": "Pending"}, revoke=True).status["phase"] == "Withdrawn"
    step = step_for(status=active_status(), revoke=True)
    assert step.iam.kind == "remove" and step.on_success.status["phase"] == "Revoked"
    assert step.on_success.status["conditions"][0]["reason"] == "RevokedByRequester"


def test_grant_deleted_or_narrowed_revokes_active_and_rejects_waiting():
    step = step_for(grant=None, status=active_status())
    assert step.on_success.status["conditions"][0]["reason"] == "EligibilityRemoved"
    narrowed, _ = parse_grant(grant_body(principals=["user:bob@example.com"]))
    assert step_for(grant=narrowed, status=active_status()).on_success.status["phase"] == "Revoked"
    scheduled = step_for(grant=narrowed, status={"phase": "Scheduled"}, startTime="2026-11-24T10:00:00Z")
    assert scheduled.status["phase"] == "Rejected"
    assert scheduled.status["conditions"][0]["reason"] == "NoLongerEligible"


def test_scheduled_request_writes_nothing_until_its_start():
    step = step_for(status={"phase": "Pending"}, startTime="2026-11-24T10:00:00Z", duration="30m")
    assert step.status["phase"] == "Scheduled" and step.iam is None and step.activation is None
    waiting = step_for(status={"phase": "Scheduled"}, startTime="2026-11-24T10:00:00Z")
    assert not waiting.changes_anything and waiting.requeue_at == datetime(2026, 11, 24, 10, tzinfo=UTC)
    started = step_for(
        status={"phase": "Scheduled"},
        startTime="2026-11-24T10:00:00Z",
        duration="30m",
        now=datetime(2026, 11, 24, 10, 0, 1, tzinfo=UTC),
    )
    assert started.status["phase"] == "Activating"
    assert started.status["expiresAt"] == "2026-11-24T10:30:00Z"


def test_rejections_say_why():
    missing = step_for(grant=None, status={"phase": "Pending"})
    assert missing.status["phase"] == "Rejected"
    assert missing.status["conditions"][0]["reason"] == "GrantNotFound"
    bad = step_for(status={"phase": "Pending"}, duration="3h")
    assert (
        bad.status["phase"] == "Rejected"
        and "exceeds the grant's maxDuration" in bad.status["conditions"][0]["message"]
    )
    assert bad.event.type == "Warning"


def test_deletion_revokes_first_then_releases_the_finalizer():
    step = step_for(status=active_status(), deleting=True)
    assert step.iam.kind == "remove"
    assert step.on_success.remove_finalizer and step.on_success.status["phase"] == "Revoked"
    assert step_for(status={"phase": "Pending"}, deleting=True).remove_finalizer


def test_terminal_requests_release_the_finalizer_and_are_collected_after_retention():
    ended = {"phase": "Expired", "endedAt": "2026-11-24T09:30:05Z"}
    assert step_for(status=ended).remove_finalizer
    kept = step_for(status=ended, finalizers=[])
    assert not kept.changes_anything and kept.requeue_at == datetime(2026, 12, 24, 9, 30, 5, tzinfo=UTC)
    assert step_for(status=ended, finalizers=[], now=NOW + timedelta(days=31)).delete


def test_approval_grant_waits_and_times_out():
    needs, _ = parse_grant(grant_body(approval={"approvers": ["group:leads@example.com"], "timeout": "1h"}))
    assert step_for(grant=needs, status={"phase": "Pending"}).status["phase"] == "AwaitingApproval"
    late = step_for(grant=needs, status={"phase": "AwaitingApproval"}, now=NOW + timedelta(hours=2))
    assert late.status["phase"] == "Expired" and late.status["conditions"][0]["reason"] == "ApprovalTimeout"


def test_finalizer_name_is_ours():
    assert read_state(request_body()).has_finalizer and FINALIZER.startswith("jitaccess.dev/")
    assert Phase("Active") is Phase.ACTIVE
