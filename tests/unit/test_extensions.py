"""Extension: continuing Active access without a gap, judged by the pure core."""

from datetime import UTC, datetime, timedelta

from jitaccess.api.bindings import parse_reference
from jitaccess.api.objects import parse_grant
from jitaccess.policy.admission import Caller, IdentitySettings, admit_request
from jitaccess.policy.extensions import Related
from jitaccess.policy.lifecycle import decide
from jitaccess.policy.steps import read_state
from tests.unit.factories import KEY, admitted, carry_out, grant_body, request_body

NOW = datetime(2026, 11, 24, 9, 0, 5, tzinfo=UTC)
GRANT, _ = parse_grant(grant_body(maxDuration="1h", maxContinuousDuration="2h"))


NONE = Related()


def step_for(body, now=NOW, grant=GRANT, related=NONE, decisions=()):
    return decide(read_state(body, KEY), grant, now, timedelta(days=30), tuple(decisions), "", related)


def settle(body, iam, now=NOW, grant=GRANT, related=NONE):
    for _ in range(12):
        step = step_for(body, now, grant, related)
        if not step.changes_anything:
            return body
        body = carry_out(body, step, iam)
    raise AssertionError("did not settle")


def request(name, uid, **spec):
    body = request_body(name, **spec)
    body["metadata"]["uid"] = uid
    return admitted(body)


def roles_held(iam):
    found = {}
    for binding in iam.get("projects/my-sandbox", []):
        found.setdefault(binding.role, []).append(parse_reference(binding.condition()).name)
    return found


def test_an_extension_replaces_the_binding_in_one_write_from_the_original_start():
    iam: dict = {}
    first = settle(request("first", "0f0e-1", duration="1h"), iam)
    assert first["status"]["phase"] == "Active"
    later = NOW + timedelta(minutes=50)
    extension = request("more", "0f0e-2", duration="30m", extends="first")
    related = Related(extends=read_state(first, KEY))
    intent = step_for(extension, later, related=related)
    held = intent.record_held
    assert held.start == NOW and held.end == NOW + timedelta(hours=1, minutes=30)
    assert held.continues == ("first", "0f0e-1")
    written = step_for(carry_out(extension, intent, iam), later, related=related)
    (change,) = written.iam
    # the first request's bindings are replaced in the same read-modify-write: one binding per role
    assert {o.name for o in change.owners} == {"first", "more"}
    extended = carry_out(carry_out(extension, intent, {}), written, iam)
    assert roles_held(iam) == {"roles/compute.admin": ["more"], "roles/storage.admin": ["more"]}
    assert (
        extended["status"]["phase"] == "Active" and extended["status"]["expiresAt"] == "2026-11-24T10:30:05Z"
    )
    # the first request now ends Extended, without touching IAM
    ended = step_for(first, later, related=Related(continued_by="more"))
    assert not ended.iam and ended.ending.phase == "Extended" and ended.ending.reason == "Extended"
    assert ended.status["conditions"][0]["message"] == "continued by more"


def test_continuous_access_is_capped_by_the_grant():
    tight, _ = parse_grant(grant_body(maxDuration="1h", maxContinuousDuration="90m"))
    iam: dict = {}
    first = settle(request("first", "0f0e-1", duration="1h"), iam, grant=tight)
    extension = request("too-long", "0f0e-2", duration="1h", extends="first")
    related = Related(extends=read_state(first, KEY))
    refused = step_for(extension, NOW + timedelta(minutes=10), grant=tight, related=related)
    assert refused.ending.phase == "Rejected" and refused.ending.reason == "ContinuousLimit"
    assert "longer than grant g's maxContinuousDuration 1h30m" in refused.status["conditions"][0]["message"]
    fits = request("fits", "0f0e-3", duration="30m", extends="first")
    assert step_for(fits, NOW + timedelta(minutes=10), grant=tight, related=related).record_held is not None


def test_an_extension_of_access_that_ran_out_starts_fresh():
    iam: dict = {}
    first = settle(request("first", "0f0e-1", duration="1h"), iam)
    expired = settle(first, iam, now=NOW + timedelta(hours=1))
    assert expired["status"]["phase"] == "Expired"
    late = NOW + timedelta(hours=1, minutes=5)
    intent = step_for(
        request("more", "0f0e-2", duration="30m", extends="first"),
        late,
        related=Related(read_state(expired, KEY)),
    )
    assert intent.record_held.start == late and intent.record_held.continues is None


def test_an_approved_access_may_be_extended_without_approval_where_the_grant_says_so():
    grant, errors = parse_grant(
        grant_body(
            maxDuration="1h",
            maxContinuousDuration="2h",
            approval={"approvers": ["user:bob@example.com"], "forExtensions": False},
        )
    )
    assert not errors
    from tests.unit.test_approvals import pinned, vote

    iam: dict = {}
    body = request("first", "0f0e-1", duration="1h")
    approved = settle(body, iam, grant=grant, related=Related())
    assert approved["status"]["phase"] == "AwaitingApproval"
    bob = pinned(approved, vote("user:bob@example.com", time="2026-11-24T09:01:00Z"), grant)
    for _ in range(6):
        step = decide(read_state(approved, KEY), grant, NOW, timedelta(days=30), (bob,), "", Related())
        if not step.changes_anything:
            break
        approved = carry_out(approved, step, iam)
    assert approved["status"]["phase"] == "Active"
    extension = request("more", "0f0e-2", duration="30m", extends="first")
    carried = Related(read_state(approved, KEY), extends_decisions=(bob,))
    intent = step_for(extension, NOW + timedelta(minutes=30), grant=grant, related=carried)
    assert intent.record_held is not None and intent.record_held.approvers == ("user:bob@example.com",)


def test_admission_refuses_an_extension_by_someone_else_or_of_something_not_active():
    iam: dict = {}
    first = settle(request("first", "0f0e-1", duration="1h"), iam)
    bob = Caller("bob@example.com", ())
    by_bob = request_body("bobs", grant="g", extends="first", requester=None, duration="30m")
    grant, _ = parse_grant(
        grant_body(maxDuration="1h", maxContinuousDuration="2h", principals=["domain:example.com"])
    )
    refused = admit_request(
        "CREATE", by_bob, None, bob, IdentitySettings(), grant, True, NOW, read_state(first, KEY)
    )
    assert not refused.allowed and "only they may extend it" in refused.message
    alice = Caller("alice@example.com", ("sre@example.com",))
    missing = admit_request(
        "CREATE",
        request_body("x", extends="gone", requester=None),
        None,
        alice,
        IdentitySettings(),
        GRANT,
        True,
        NOW,
        None,
    )
    assert not missing.allowed and "there is no ActivationRequest gone" in missing.message


def test_a_carried_approval_counts_only_while_it_counts_and_only_for_what_it_approved():
    from tests.unit.test_approvals import pinned, vote

    grant, _ = parse_grant(
        grant_body(maxDuration="1h", approval={"approvers": ["user:bob@example.com"], "forExtensions": False})
    )
    iam: dict = {}
    approved = request("first", "0f0e-1", duration="30m")
    bob = pinned(approved, vote("user:bob@example.com", time="2026-11-24T09:01:00Z"), grant)
    for _ in range(8):
        step = decide(read_state(approved, KEY), grant, NOW, timedelta(days=30), (bob,), "", Related())
        if not step.changes_anything:
            break
        approved = carry_out(approved, step, iam)
    assert approved["status"]["phase"] == "Active"
    later = NOW + timedelta(minutes=20)
    extension = request("more", "0f0e-2", duration="30m", extends="first")
    carried = Related(read_state(approved, KEY), extends_decisions=(bob,))
    # the grant's approvers changed: bob's approval no longer counts, so the extension must be approved
    stricter, _ = parse_grant(
        grant_body(maxDuration="1h", approval={"approvers": ["user:dan@example.com"], "forExtensions": False})
    )
    assert step_for(extension, later, grant=stricter, related=carried).status["phase"] == "AwaitingApproval"
    # the grant grew a role: an extension asking for all its roles now is refused
    grown, _ = parse_grant(
        grant_body(
            maxDuration="1h",
            roles=["roles/compute.admin", "roles/storage.admin", "roles/iam.securityAdmin"],
            approval={"approvers": ["user:bob@example.com"], "forExtensions": False},
        )
    )
    refused = step_for(extension, later, grant=grown, related=carried)
    assert refused.ending.phase == "Rejected"
    assert "same grant and roles as first holds" in refused.status["conditions"][0]["message"]


def test_break_glass_is_not_extended_and_one_extension_at_a_time():
    glass, _ = parse_grant(
        grant_body(maxDuration="1h", breakGlass={"allowed": True, "reviewers": ["user:bob@example.com"]})
    )
    iam: dict = {}
    first = settle(request("first", "0f0e-1", duration="30m", breakGlass=True), iam, grant=glass)
    assert first["status"]["phase"] == "Active"
    extension = request("more", "0f0e-2", duration="30m", extends="first")
    refused = step_for(
        extension, NOW + timedelta(minutes=5), grant=glass, related=Related(read_state(first, KEY))
    )
    assert refused.ending.phase == "Rejected"
    assert "break-glass access, which is not extended" in refused.status["conditions"][0]["message"]
    plain = settle(request("plain", "0f0e-3", duration="30m"), iam)
    second = request("again", "0f0e-4", duration="30m", extends="plain")
    taken = Related(read_state(plain, KEY), extends_taken_by="more")
    stopped = step_for(second, NOW + timedelta(minutes=5), related=taken)
    assert stopped.ending.phase == "Rejected"
    assert "already being extended by more" in stopped.status["conditions"][0]["message"]
