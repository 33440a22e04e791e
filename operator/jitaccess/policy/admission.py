"""Admission: who is asking, and may they create, change or delete this object? (Pure.)

The webhooks call these functions with the caller's `userInfo`; the reconciler calls
`attestation_valid` on every request and approval, so an object that bypassed admission
(webhook missing, `failurePolicy: Ignore`, written around the API server) never gets access.
Identity comes from Kubernetes authentication, as for a CertificateSigningRequest: the caller's
username becomes `spec.requester` (or `spec.approver`), the caller's groups `spec.requesterGroups`.

Who may end a request (revoke, delete) is `policy.ending_access`. `jitaccess.dev/` annotations,
labels and finalizers are the operator's: nobody else may change them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jitaccess.api.bodies import metadata_of, spec_of, status_of
from jitaccess.api.durations import format_duration
from jitaccess.api.errors import join_errors
from jitaccess.api.limits import MAX_COMMENT
from jitaccess.api.names import EMAIL, GOOGLE_SERVICE_ACCOUNT_SUFFIX, normal_member
from jitaccess.api.objects import (
    CHAT_IDENTITY,
    Decision,
    Grant,
    RequestSpec,
    is_kubernetes_name,
    parse_request_spec,
    text_error,
)
from jitaccess.api.phases import Phase
from jitaccess.api.times import format_time, parse_time
from jitaccess.policy.approvals import eligibility_problem, spec_digest, terms_digest
from jitaccess.policy.break_glass import REVIEW_DECISIONS, reviewer_problem
from jitaccess.policy.break_glass import request_errors as break_glass_errors
from jitaccess.policy.eligibility import Terms, check_request, window_errors
from jitaccess.policy.extensions import admission_problem as extension_problem
from jitaccess.policy.records import FINALIZER, Actor, Held, metadata_problem, owner_changes, reserved_changes

if TYPE_CHECKING:  # steps reads admission's seal
    from jitaccess.policy.steps import RequestState

ATTESTATION = "jitaccess.dev/admitted"
_SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class Caller:
    """The authenticated caller, as the API server's AdmissionReview `userInfo` names them."""

    username: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class IdentitySettings:
    trusted_submitters: frozenset[str] = frozenset()
    workload_identity_pool: str | None = None  # PROJECT_ID.svc.id.goog
    workload_identity_project_number: str | None = None
    # The operator files approvals for people Slack verified (its interactivity endpoint is on).
    chat_approvals: bool = False
    # The web console's Kubernetes usernames: each files requests, approvals and revocations for
    # the one person Identity-Aware Proxy verified, named in the object, judged as that user alone.
    console_submitters: frozenset[str] = frozenset()

    def files_for_others(self, username: str) -> bool:
        """May `username` name who a request is for (a trusted submitter, or the console)?"""
        return username in self.trusted_submitters or username in self.console_submitters


@dataclass(frozen=True)
class Admission:
    allowed: bool
    message: str = ""
    stamp: dict[str, Any] = field(default_factory=dict)  # spec fields the mutating webhook sets
    warnings: tuple[str, ...] = ()
    # A verb the caller must also hold on this object (a SubjectAccessReview decides), e.g. revoke.
    needs: str | None = None
    # Who is ending the request's access (revoke or delete), to be sealed into it.
    actor: Actor | None = None


def member_of(caller: Caller, settings: IdentitySettings) -> tuple[str | None, str]:
    """The IAM member for a Kubernetes username, or None and why there is none."""
    name = caller.username
    if name.startswith(_SERVICE_ACCOUNT_PREFIX):
        namespace, _, account = name.removeprefix(_SERVICE_ACCOUNT_PREFIX).partition(":")
        pool, number = settings.workload_identity_pool, settings.workload_identity_project_number
        if not pool or not number:
            return None, (
                f"{name} is a Kubernetes service account, which has no Google identity here; start the operator "
                "with --workload-identity-pool PROJECT_ID.svc.id.goog --workload-identity-project-number N "
                "to map service accounts to their GKE Workload Identity principal"
            )
        return (
            f"principal://iam.googleapis.com/projects/{number}/locations/global/workloadIdentityPools/{pool}"
            f"/subject/ns/{namespace}/sa/{account}"
        ), ""
    if EMAIL.fullmatch(name):
        kind = "serviceAccount" if name.lower().endswith(GOOGLE_SERVICE_ACCOUNT_SUFFIX) else "user"
        return normal_member(f"{kind}:{name}"), ""
    return None, (
        f"the Kubernetes user {name!r} is not an e-mail address, so it cannot be mapped to a Google identity; "
        "sign in to the cluster with your Google account (on GKE) or ask a trusted submitter to file the request"
    )


def group_members(groups: tuple[str, ...]) -> tuple[str, ...]:
    """Groups that are e-mail addresses become `group:` members; others (system:…) mean nothing to IAM."""
    return tuple(sorted({normal_member(f"group:{group}") for group in groups if EMAIL.fullmatch(group)}))


def admit_request(
    operation: str,
    new: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    caller: Caller,
    settings: IdentitySettings,
    grant: Grant | None,
    grant_ready: bool,
    now: datetime,
    extends: RequestState | None = None,
) -> Admission:
    """The admission decision for an ActivationRequest on CREATE (stamps identity, validates);
    `extends` is the request its spec.extends names, as the API holds it now."""
    if operation == "UPDATE":
        return admit_spec_update(new, old or {})
    if operation != "CREATE":
        return Admission(True)
    raw = new.get("spec")
    if not isinstance(raw, Mapping):
        return Admission(False, "spec: must be an object with at least spec.grant")
    # The seal (made afresh, and checked on the validating pass) and our finalizer are stamped here.
    stamped = {f"metadata.annotations[{ATTESTATION}]", f"metadata.finalizers[{FINALIZER}]"}
    if reserved := [change for change in reserved_changes({}, new) if change not in stamped]:
        return Admission(False, f"{reserved[0]}: is set by the jitaccess operator; leave it out")
    if problem := metadata_problem({}, new):
        return Admission(False, problem)
    spec = dict(raw)
    stamp, refusal = _identity(spec, caller, settings, "requester", "requesterGroups")
    if refusal:
        return Admission(False, refusal)
    parsed, errors = parse_request_spec({**new, "spec": {**spec, **stamp}})
    if parsed is None:
        return Admission(False, join_errors(errors))
    if grant is None:
        return Admission(
            False, f"spec.grant: EligibleGrant {parsed.grant} does not exist (kubectl get eg lists them)"
        )
    terms, errors = check_request(parsed, str(parsed.requester), grant, now)
    errors += window_errors(grant, now, parsed.start_time)
    if terms is not None:
        errors += break_glass_errors(parsed, grant, terms.duration)
    if terms is None or errors:
        return Admission(False, join_errors(errors))
    if (problem := extension_problem(parsed, extends, grant, now)) is not None:
        return Admission(False, problem)
    warnings = []
    if not grant_ready:
        warnings.append(f"EligibleGrant {grant.name} is not Ready; see kubectl describe eg {grant.name}")
    ends = (parsed.start_time or now) + terms.duration
    if grant.not_after is not None and ends > grant.not_after:
        warnings.append(
            f"grant {grant.name} ends at {format_time(grant.not_after)}: access will end then, before "
            f"the {format_duration(terms.duration)} asked for"
        )
    if terms.duration > grant.default_duration:
        warnings.append(
            f"spec.duration {format_duration(terms.duration)} is longer than the grant's default "
            f"{format_duration(grant.default_duration)}; ask for no more than you need"
        )
    return Admission(True, stamp=stamp, warnings=tuple(warnings))


def admit_approval_identity(
    operation: str,
    new: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    caller: Caller,
    settings: IdentitySettings,
    operator: str = "",
) -> Admission:
    """Stamp `spec.approver`/`approverGroups` on CREATE; an approval is never edited."""
    if operation == "UPDATE":
        if caller.username == operator:
            return Admission(True)
        if spec_of(new) != spec_of(old):
            return Admission(False, "spec: an approval cannot be edited; delete it and create a new one")
        if reserved := reserved_changes(old or {}, new) + owner_changes(old or {}, new):
            return Admission(False, f"{reserved[0]}: only the jitaccess operator may change it")
        return Admission(True)
    if operation != "CREATE":
        return Admission(True)
    spec = new.get("spec")
    if not isinstance(spec, Mapping):
        return Admission(False, "spec: must be an object with request and decision")
    stamped = {f"metadata.annotations[{ATTESTATION}]"}
    from_chat = bool(operator) and caller.username == operator and CHAT_IDENTITY in _annotations(new)
    if from_chat:
        stamped.add(f"metadata.annotations[{CHAT_IDENTITY}]")
    if reserved := [change for change in reserved_changes({}, new) if change not in stamped]:
        return Admission(False, f"{reserved[0]}: is set by the jitaccess operator; leave it out")
    if from_chat:
        if not settings.chat_approvals:
            return Admission(False, "approvals from chat are not enabled on this operator")
        return _vouched_approver(spec, "a chat identity", ("Approve", "Deny"))
    if caller.username in settings.console_submitters:
        return _vouched_approver(
            spec, "an Identity-Aware Proxy identity", ("Approve", "Deny", *REVIEW_DECISIONS)
        )
    # Nobody approves in someone else's name: a decision counts only from the approver's own login.
    stamp, refusal = _identity(dict(spec), caller, IdentitySettings(), "approver", "approverGroups")
    return Admission(False, refusal) if refusal else Admission(True, stamp=stamp)


def _vouched_approver(spec: Mapping[str, Any], proof: str, decisions: tuple[str, ...]) -> Admission:
    """A decision filed for a person someone we trust verified (Slack for the operator's chat
    endpoint, IAP for the console): judged on that person alone, as a user, since such an identity
    proves an e-mail address and no group membership."""
    if spec.get("decision") not in decisions:
        return Admission(False, f"spec.decision: only {', '.join(decisions)} may come from {proof}")
    if spec.get("approverGroups"):
        return Admission(False, f"spec.approverGroups: {proof} proves no group membership; leave it out")
    approver = spec.get("approver")
    if not isinstance(approver, str) or not approver.startswith("user:") or not EMAIL.fullmatch(approver[5:]):
        return Admission(False, f"spec.approver: must be the user: member of {proof} that was verified")
    return Admission(True, stamp={"approver": normal_member(approver), "approverGroups": []})


def _annotations(body: Mapping[str, Any]) -> Mapping[str, Any]:
    annotations = metadata_of(body).get("annotations")
    return annotations if isinstance(annotations, Mapping) else {}


def _identity(
    spec: dict[str, Any], caller: Caller, settings: IdentitySettings, who: str, groups_field: str
) -> tuple[dict[str, Any], str]:
    """The identity fields to stamp, or a refusal. Trusted submitters may name someone else, but
    cannot vouch for anyone's groups: what they file is judged on the named member alone."""
    if settings.files_for_others(caller.username):
        if not spec.get(who):
            return (
                {},
                f"spec.{who}: {caller.username} is a trusted submitter and must name who the object is for",
            )
        if spec.get(groups_field):
            return {}, (
                f"spec.{groups_field}: group membership is proven only by the member's own login, so a "
                f"trusted submitter cannot claim it; leave spec.{groups_field} out (the request is judged on "
                f"the named member: a user or domain principal of the grant)"
            )
        named = spec[who]
        if isinstance(named, str) and named != normal_member(named):
            return {who: normal_member(named), groups_field: []}, ""
        return {groups_field: []}, ""
    member, why = member_of(caller, settings)
    if member is None:
        return {}, f"spec.{who}: {why}"
    groups = list(group_members(caller.groups))
    written = spec.get(who)
    if written is not None and (not isinstance(written, str) or normal_member(written) != member):
        return {}, (
            f"spec.{who}: you are authenticated as {member} and cannot act as {written}; "
            f"leave spec.{who} out and it is filled in for you"
        )
    if spec.get(groups_field) not in (None, groups):
        return {}, f"spec.{groups_field}: is filled in from your authenticated groups; leave it out"
    return {who: member, groups_field: groups}, ""


def admit_spec_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> Admission:
    before, after = dict(spec_of(old)), dict(spec_of(new))
    was, now_revoked = bool(before.pop("revoke", False)), bool(after.pop("revoke", False))
    if before != after:
        changed = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
        return Admission(
            False,
            f"spec.{changed[0]}: spec is immutable after creation; only spec.revoke may change "
            "(from false to true). Create a new request instead.",
        )
    if was and not now_revoked:
        return Admission(False, "spec.revoke: cannot go back from true to false")
    return Admission(True)


def attestation(new: Mapping[str, Any], key: bytes) -> str:
    """HMAC over what admission vouched for: namespace, name and the spec (revoke aside, it may change)."""
    metadata = metadata_of(new)
    spec = {k: v for k, v in spec_of(new).items() if k != "revoke"}
    message = json.dumps(
        [metadata.get("namespace"), metadata.get("name"), spec], sort_keys=True, separators=(",", ":")
    ).encode()
    return "v1:" + hmac.new(key, message, hashlib.sha256).hexdigest()


def attestation_valid(body: Mapping[str, Any], key: bytes) -> bool:
    seal = (metadata_of(body).get("annotations") or {}).get(ATTESTATION, "")
    return bool(seal) and bool(key) and hmac.compare_digest(str(seal), attestation(body, key))


def approval_spec_error(spec: Mapping[str, Any]) -> str | None:
    """What is wrong with the approval's own fields, before anything is looked up, or None."""
    request = spec.get("request")
    if not isinstance(request, str) or not is_kubernetes_name(request):
        return "spec.request: must name an ActivationRequest in this namespace (a lowercase Kubernetes name)"
    decision = spec.get("decision")
    if decision not in ("Approve", "Deny", *REVIEW_DECISIONS):
        return f"spec.decision: must be Approve, Deny, Review or Revoke, not {str(decision)[:40]!r}"
    comment = spec.get("comment", "")
    if not isinstance(comment, str):
        return "spec.comment: must be a string"
    if (message := text_error(comment, MAX_COMMENT)) is not None:
        return f"spec.comment: {message}"
    return None


def admit_approval(
    spec: Mapping[str, Any],
    request: Mapping[str, Any] | None,
    grant: Grant | None,
    held: Held | None = None,
    via_chat: bool = False,
) -> Admission:
    """May this (already stamped) approval be given? The tally's own rules, refused early with a
    reason; and the request it is about, pinned: its uid and the digest of what is being approved.
    An approver who names `requestUID` or `requestDigest` (what they reviewed) is refused if the
    request is no longer that."""
    if (mistake := approval_spec_error(spec)) is not None:
        return Admission(False, mistake)
    name = spec.get("request")
    if request is None:
        return Admission(False, f"spec.request: there is no ActivationRequest {name} in this namespace")
    parsed, _ = parse_request_spec(request)
    if spec.get("decision") in REVIEW_DECISIONS or (parsed is not None and parsed.break_glass):
        return _admit_review(spec, request, parsed, held)
    phase = status_of(request).get("phase")
    if phase != Phase.AWAITING_APPROVAL:
        return Admission(
            False,
            f"spec.request: {name} is {phase or 'not yet validated'}, not AwaitingApproval; "
            "there is nothing to approve",
        )
    if grant is None or grant.approval is None:
        return Admission(False, f"spec.request: the grant of {name} does not ask for approval")
    metadata = metadata_of(request)
    uid = str(metadata.get("uid") or "")
    created = _created(metadata)
    terms, errors = (
        check_request(parsed, str(parsed.requester or ""), grant, created) if parsed else (None, [])
    )
    if parsed is None or terms is None:
        return Admission(False, f"spec.request: {name} is not eligible any more ({join_errors(errors)})")
    requester = str(parsed.requester or "")
    decision = replace(_as_decision(spec), via_chat=via_chat)
    if (reason := eligibility_problem(decision, requester, grant.approval)) is not None:
        return Admission(False, f"spec.approver: {reason}")
    return _pinned(spec, str(name), uid, _subject_digest(request, uid, terms))


def _admit_review(
    spec: Mapping[str, Any], request: Mapping[str, Any], parsed: RequestSpec | None, held: Held | None
) -> Admission:
    """A Review or Revoke of break-glass access: from one of the reviewers sealed when it was
    activated (never the requester), pinned to the object and the access it was given."""
    name = spec.get("request")
    if parsed is None or not parsed.break_glass:
        return Admission(False, f"spec.decision: {name} is not a break-glass request; Approve or Deny it")
    if held is None or held.review_due is None:
        return Admission(
            False, f"spec.request: {name} has not been activated; there is nothing to review yet"
        )
    decision = _as_decision(spec)
    if (reason := reviewer_problem(decision, str(parsed.requester or ""), held.reviewers)) is not None:
        field = "spec.decision" if decision.decision not in REVIEW_DECISIONS else "spec.approver"
        return Admission(False, f"{field}: {reason}")
    uid = str(metadata_of(request).get("uid") or "")
    raw_spec = request.get("spec")
    seconds = int(held.asked_duration.total_seconds())
    subject = terms_digest(
        uid,
        spec_digest(raw_spec if isinstance(raw_spec, Mapping) else {}),
        held.resource,
        held.roles,
        seconds,
    )
    return _pinned(spec, str(name), uid, subject)


def _as_decision(spec: Mapping[str, Any]) -> Decision:
    """The approval being admitted, as the tally will read it once it is stored and sealed."""
    return Decision(
        "",
        str(spec.get("approver") or ""),
        tuple(spec.get("approverGroups") or ()),
        str(spec.get("decision") or ""),
        "",
        "",
        attested=True,
    )


def _subject_digest(request: Mapping[str, Any], uid: str, terms: Terms) -> str:
    raw_spec = request.get("spec")
    return terms_digest(
        uid,
        spec_digest(raw_spec if isinstance(raw_spec, Mapping) else {}),
        terms.resource,
        terms.roles,
        terms.duration_s,
    )


def _pinned(spec: Mapping[str, Any], name: str, uid: str, subject: str) -> Admission:
    """The approval stamped with the object and the terms it is about; refused when the approver
    named another object or other terms than the request has now (it changed since they looked)."""
    if spec.get("requestUID") not in (None, uid):
        return Admission(
            False,
            f"spec.requestUID: {name} is now another object (uid {uid}) than the one you reviewed "
            f"({spec.get('requestUID')}): it was deleted and created again; review it again",
        )
    if spec.get("requestDigest") not in (None, subject):
        return Admission(
            False,
            f"spec.requestDigest: {name} or its grant changed since you reviewed it; review it again",
        )
    return Admission(True, stamp={"requestUID": uid, "requestDigest": subject})


def _created(metadata: Mapping[str, Any]) -> datetime:
    try:
        return parse_time(metadata.get("creationTimestamp"))
    except ValueError:
        return parse_time("1970-01-01T00:00:00Z")
