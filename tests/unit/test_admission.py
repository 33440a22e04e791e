from datetime import UTC, datetime

from jitaccess.api.objects import parse_grant
from jitaccess.policy.admission import (
    ATTESTATION,
    Caller,
    IdentitySettings,
    admit_approval_identity,
    admit_request,
    attestation,
    attestation_valid,
    member_of,
)
from tests.unit.factories import grant_body

NOW = datetime(2026, 11, 24, 9, tzinfo=UTC)
GRANT, _ = parse_grant(grant_body(name="g"))
SETTINGS = IdentitySettings(
    trusted_submitters=frozenset({"system:serviceaccount:argocd:argocd-application-controller"})
)
ALICE = Caller("alice@example.com", ("sre@example.com", "system:authenticated"))


def body(**spec):
    fields = {"grant": "g", "justification": "INC-1: restart the stuck load balancer", **spec}
    return {
        "metadata": {"namespace": "team", "name": "r"},
        "spec": {k: v for k, v in fields.items() if v is not None},
    }


def admit(caller=ALICE, operation="CREATE", new=None, old=None, settings=SETTINGS, grant=GRANT):
    return admit_request(operation, new or body(), old, caller, settings, grant, True, NOW)


def test_requester_and_groups_are_stamped_from_the_caller():
    decision = admit()
    assert decision.allowed
    assert decision.stamp == {
        "requester": "user:alice@example.com",
        "requesterGroups": ["group:sre@example.com"],
    }


def test_impersonation_is_refused():
    decision = admit(new=body(requester="user:bob@example.com"))
    assert not decision.allowed
    assert (
        "authenticated as user:alice@example.com and cannot act as user:bob@example.com" in decision.message
    )
    assert not admit(new=body(requesterGroups=["group:admins@example.com"])).allowed
    assert admit(new=body(requester="user:alice@example.com")).allowed  # naming yourself is fine


def test_trusted_submitter_may_file_for_someone_else_but_must_name_them():
    gitops = Caller("system:serviceaccount:argocd:argocd-application-controller")
    assert admit(gitops, new=body(requester="user:alice@example.com")).allowed
    refused = admit(gitops)
    assert not refused.allowed and "must name who" in refused.message
    # It cannot vouch for anyone's groups, nor approve in anyone's name.
    claimed = admit(
        gitops, new=body(requester="user:mallory@example.com", requesterGroups=["group:sre@example.com"])
    )
    assert not claimed.allowed and claimed.message.startswith("spec.requesterGroups: group membership")
    assert admit(gitops, new=body(requester="user:alice@example.com")).stamp["requesterGroups"] == []
    relayed = {"spec": {"request": "r", "decision": "Approve", "approver": "user:bob@example.com"}}
    assert not admit_approval_identity("CREATE", relayed, None, gitops, SETTINGS).allowed


def test_usernames_that_cannot_be_mapped_are_refused_with_a_reason():
    assert "not an e-mail address" in admit(Caller("kubernetes-admin")).message
    robot = admit(Caller("system:serviceaccount:ci:deployer"))
    assert "--workload-identity-pool" in robot.message
    member, _ = member_of(
        Caller("system:serviceaccount:ci:deployer"),
        IdentitySettings(workload_identity_pool="p.svc.id.goog", workload_identity_project_number="123"),
    )
    assert member == (
        "principal://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/"
        "p.svc.id.goog/subject/ns/ci/sa/deployer"
    )
    assert (
        member_of(Caller("ci@p.iam.gserviceaccount.com"), SETTINGS)[0]
        == "serviceAccount:ci@p.iam.gserviceaccount.com"
    )


def test_ineligible_requests_are_refused_at_admission_naming_the_field():
    carol = Caller("carol@example.com", ("developers@example.com",))
    assert admit(carol).message.startswith("spec.requester: user:carol@example.com is not eligible")
    assert "spec.duration: 3h exceeds" in admit(new=body(duration="3h")).message
    assert admit(grant=None).message.startswith("spec.grant: EligibleGrant g does not exist")


def test_warnings_when_allowed_but_worth_knowing():
    decision = admit_request("CREATE", body(duration="90m"), None, ALICE, SETTINGS, GRANT, False, NOW)
    assert decision.allowed and len(decision.warnings) == 2


def test_updates_only_revoke_false_to_true():
    old = body(requester="user:alice@example.com")
    assert admit(
        operation="UPDATE", new=body(requester="user:alice@example.com", revoke=True), old=old
    ).allowed
    changed = admit(operation="UPDATE", new=body(requester="user:bob@example.com"), old=old)
    assert not changed.allowed and changed.message.startswith("spec.requester: spec is immutable")
    back = admit(operation="UPDATE", new=old, old=body(requester="user:alice@example.com", revoke=True))
    assert not back.allowed and "cannot go back" in back.message


def test_approvals_get_the_approver_stamped_and_cannot_be_edited():
    bob = Caller("bob@example.com", ("sre-leads@example.com",))
    new = {"spec": {"request": "r", "decision": "Approve"}}
    assert (
        admit_approval_identity("CREATE", new, None, bob, SETTINGS).stamp["approver"]
        == "user:bob@example.com"
    )
    forged = {"spec": {"request": "r", "decision": "Approve", "approver": "user:carol@example.com"}}
    assert not admit_approval_identity("CREATE", forged, None, bob, SETTINGS).allowed
    edited = {"spec": {"request": "r", "decision": "Deny"}}
    assert not admit_approval_identity("UPDATE", edited, new, bob, SETTINGS).allowed


def test_attestation_binds_identity_and_spec_but_not_revoke():
    key = b"k" * 32
    admitted = body(requester="user:alice@example.com")
    admitted["metadata"]["annotations"] = {ATTESTATION: attestation(admitted, key)}
    assert attestation_valid(admitted, key)
    revoked = {**admitted, "spec": {**admitted["spec"], "revoke": True}}
    assert attestation_valid(revoked, key)
    forged = {**admitted, "spec": {**admitted["spec"], "requester": "user:mallory@example.com"}}
    assert not attestation_valid(forged, key)
    assert not attestation_valid(admitted, b"another key")
    assert not attestation_valid(body(requester="user:alice@example.com"), key)  # never admitted


OPERATOR = "system:serviceaccount:jitaccess-system:jitaccess"
KEY = b"unit-test-attestation-key-32-bytes!!"


def stored(**spec):
    """A request as the API holds it: with a uid, filed by alice."""
    found = body(requester="user:alice@example.com", **spec)
    found["metadata"]["uid"] = "0f0e-1"
    return found


def test_revoking_or_deleting_someone_elses_request_needs_the_revoke_verb_and_names_the_actor():
    from jitaccess.policy.ending_access import admit_request_change, admit_request_deletion

    bob = Caller("bob@example.com", ())
    for verdict in (
        admit_request_change(stored(revoke=True), stored(), bob, SETTINGS, OPERATOR, KEY, NOW),
        admit_request_deletion(stored(), bob, SETTINGS, OPERATOR, KEY, NOW),
    ):
        assert verdict.allowed and verdict.needs == "revoke"
        assert verdict.actor.user == "bob@example.com" and not verdict.actor.as_requester
    # The requester needs nothing more, however the address is spelled.
    alice = Caller("Alice@Example.com", ())
    own = admit_request_deletion(stored(), alice, SETTINGS, OPERATOR, KEY, NOW)
    assert own.allowed and own.needs is None and own.actor.as_requester
    # The operator, and Kubernetes' namespace controller deleting the namespace, need nothing.
    assert admit_request_deletion(stored(), Caller(OPERATOR, ()), SETTINGS, OPERATOR, KEY, NOW).needs is None
    namespace_controller = Caller("system:serviceaccount:kube-system:namespace-controller", ())
    cleared = admit_request_deletion(stored(), namespace_controller, SETTINGS, OPERATOR, KEY, NOW)
    assert cleared.allowed and cleared.needs is None and cleared.actor.user == namespace_controller.username


def test_only_the_operator_changes_jitaccess_metadata():
    from jitaccess.policy.ending_access import admit_request_change

    old = stored()
    old["metadata"]["finalizers"] = ["jitaccess.dev/revoke-on-delete"]
    for change in (
        {"finalizers": []},
        {"annotations": {"jitaccess.dev/admitted": "x"}},
        {"labels": {"jitaccess.dev/anything": "x"}},
        {"finalizers": ["jitaccess.dev/revoke-on-delete", "jitaccess.dev/mine"]},
    ):
        new = stored()
        new["metadata"] = {**old["metadata"], **change}
        verdict = admit_request_change(new, old, ALICE, SETTINGS, OPERATOR, KEY, NOW)
        assert not verdict.allowed and "only the jitaccess operator" in verdict.message, change
        assert admit_request_change(new, old, Caller(OPERATOR, ()), SETTINGS, OPERATOR, KEY, NOW).allowed
    # Someone else's annotations and finalizers are theirs.
    new = stored()
    new["metadata"] = {**old["metadata"], "annotations": {"team/ticket": "INC-1"}}
    assert admit_request_change(new, old, ALICE, SETTINGS, OPERATOR, KEY, NOW).allowed


def test_nobody_but_the_operator_can_block_a_request_with_metadata():
    """A foreign finalizer would keep a request from ever going; padded annotations would leave no
    room for the operator's records (so it could not be recorded, revoked or ended)."""
    from jitaccess.policy.ending_access import admit_request_change
    from jitaccess.policy.records import MAX_OTHER_ANNOTATIONS

    old = stored()
    for change in (
        {"finalizers": ["example.com/hold"]},
        {"annotations": {"padding": "x" * (MAX_OTHER_ANNOTATIONS + 1)}},
    ):
        new = stored()
        new["metadata"] = {**old["metadata"], **change}
        for caller in (ALICE, Caller("mallory@example.com", ())):
            verdict = admit_request_change(new, old, caller, SETTINGS, OPERATOR, KEY, NOW)
            assert not verdict.allowed, (change, caller)
    padded = body(requester="user:alice@example.com")
    padded["metadata"]["annotations"] = {"padding": "x" * (MAX_OTHER_ANNOTATIONS + 1)}
    gitops = Caller("system:serviceaccount:argocd:argocd-application-controller")
    assert not admit(gitops, new=padded).allowed
    # The garbage collector's own finalizers come and go with a deletion's propagation policy.
    new = stored()
    new["metadata"] = {**old["metadata"], "finalizers": ["foregroundDeletion"]}
    assert admit_request_change(new, old, ALICE, SETTINGS, OPERATOR, KEY, NOW).allowed
