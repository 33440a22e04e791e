"""Admission: who is asking, and may they create or change this object? (Issue #3; pure.)

The webhooks will call these functions with the caller's `userInfo`; the reconciler calls
`attestation_valid` on every request, so an object that bypassed admission (webhook missing,
`failurePolicy: Ignore`, restored from a backup) never gets access. Identity comes from
Kubernetes authentication, as for a CertificateSigningRequest: the caller's username becomes
`spec.requester` (or `spec.approver`), the caller's groups `spec.requesterGroups`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jitaccess.api.durations import format_duration
from jitaccess.api.errors import join_errors
from jitaccess.api.names import EMAIL, GOOGLE_SERVICE_ACCOUNT_SUFFIX
from jitaccess.api.objects import MAX_COMMENT, Grant, is_kubernetes_name, parse_request_spec, text_error
from jitaccess.policy.eligibility import check_request

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


@dataclass(frozen=True)
class Admission:
    allowed: bool
    message: str = ""
    stamp: dict[str, Any] = field(default_factory=dict)  # spec fields the mutating webhook sets
    warnings: tuple[str, ...] = ()


def principal_of(caller: Caller, settings: IdentitySettings) -> tuple[str | None, str]:
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
        return f"{kind}:{name}", ""
    return None, (
        f"the Kubernetes user {name!r} is not an e-mail address, so it cannot be mapped to a Google identity; "
        "sign in to the cluster with your Google account (on GKE) or ask a trusted submitter to file the request"
    )


def group_members(groups: tuple[str, ...]) -> tuple[str, ...]:
    """Groups that are e-mail addresses become `group:` members; others (system:…) mean nothing to IAM."""
    return tuple(sorted({f"group:{group}" for group in groups if EMAIL.fullmatch(group)}))


def admit_request(
    operation: str,
    new: Mapping[str, Any],
    old: Mapping[str, Any] | None,
    caller: Caller,
    settings: IdentitySettings,
    grant: Grant | None,
    grant_ready: bool,
    now: datetime,
) -> Admission:
    """The admission decision for an ActivationRequest (CREATE stamps identity and validates)."""
    if operation == "UPDATE":
        return _admit_update(new, old or {})
    if operation != "CREATE":
        return Admission(True)
    raw = new.get("spec")
    if not isinstance(raw, Mapping):
        return Admission(False, "spec: must be an object with at least spec.grant")
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
    if terms is None:
        return Admission(False, join_errors(errors))
    warnings = []
    if not grant_ready:
        warnings.append(f"EligibleGrant {grant.name} is not Ready; see kubectl describe eg {grant.name}")
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
) -> Admission:
    """Stamp `spec.approver`/`approverGroups` on CREATE; an approval is never edited."""
    if operation == "UPDATE":
        if (new.get("spec") or {}) != ((old or {}).get("spec") or {}):
            return Admission(False, "spec: an approval cannot be edited; delete it and create a new one")
        return Admission(True)
    if operation != "CREATE":
        return Admission(True)
    spec = new.get("spec")
    if not isinstance(spec, Mapping):
        return Admission(False, "spec: must be an object with request and decision")
    stamp, refusal = _identity(dict(spec), caller, settings, "approver", "approverGroups")
    return Admission(False, refusal) if refusal else Admission(True, stamp=stamp)


def _identity(
    spec: dict[str, Any], caller: Caller, settings: IdentitySettings, who: str, groups_field: str
) -> tuple[dict[str, Any], str]:
    """The identity fields to stamp, or a refusal. Trusted submitters may speak for others."""
    if caller.username in settings.trusted_submitters:
        if not spec.get(who):
            return (
                {},
                f"spec.{who}: {caller.username} is a trusted submitter and must name who the object is for",
            )
        return {}, ""
    member, why = principal_of(caller, settings)
    if member is None:
        return {}, f"spec.{who}: {why}"
    groups = list(group_members(caller.groups))
    if spec.get(who) not in (None, member):
        return {}, (
            f"spec.{who}: you are authenticated as {member} and cannot act as {spec[who]}; "
            f"leave spec.{who} out and it is filled in for you"
        )
    if spec.get(groups_field) not in (None, groups):
        return {}, f"spec.{groups_field}: is filled in from your authenticated groups; leave it out"
    return {who: member, groups_field: groups}, ""


def _admit_update(new: Mapping[str, Any], old: Mapping[str, Any]) -> Admission:
    before, after = dict(old.get("spec") or {}), dict(new.get("spec") or {})
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
    metadata = new.get("metadata") or {}
    spec = {k: v for k, v in (new.get("spec") or {}).items() if k != "revoke"}
    message = json.dumps(
        [metadata.get("namespace"), metadata.get("name"), spec], sort_keys=True, separators=(",", ":")
    ).encode()
    return "v1:" + hmac.new(key, message, hashlib.sha256).hexdigest()


def attestation_valid(body: Mapping[str, Any], key: bytes) -> bool:
    seal = ((body.get("metadata") or {}).get("annotations") or {}).get(ATTESTATION, "")
    return bool(seal) and hmac.compare_digest(seal, attestation(body, key))


def approval_spec_error(spec: Mapping[str, Any]) -> str | None:
    """What is wrong with the approval's own fields, before anything is looked up, or None."""
    request = spec.get("request")
    if not isinstance(request, str) or not is_kubernetes_name(request):
        return "spec.request: must name an ActivationRequest in this namespace (a lowercase Kubernetes name)"
    decision = spec.get("decision")
    if decision not in ("Approve", "Deny"):
        return f"spec.decision: must be Approve or Deny, not {str(decision)[:40]!r}"
    comment = spec.get("comment", "")
    if not isinstance(comment, str):
        return "spec.comment: must be a string"
    if (message := text_error(comment, MAX_COMMENT)) is not None:
        return f"spec.comment: {message}"
    return None


def admit_approval(
    spec: Mapping[str, Any], request: Mapping[str, Any] | None, grant: Grant | None
) -> Admission:
    """May this (already stamped) approval be given? The tally's own rules, refused early with a reason."""
    from jitaccess.policy.approvals import Decision, why_not_counted

    if (mistake := approval_spec_error(spec)) is not None:
        return Admission(False, mistake)
    name = spec.get("request")
    if request is None:
        return Admission(False, f"spec.request: there is no ActivationRequest {name} in this namespace")
    phase = (request.get("status") or {}).get("phase")
    if phase != "AwaitingApproval":
        return Admission(
            False,
            f"spec.request: {name} is {phase or 'not yet validated'}, not AwaitingApproval; "
            "there is nothing to approve",
        )
    if grant is None or grant.approval is None:
        return Admission(False, f"spec.request: the grant of {name} does not ask for approval")
    requester = str((request.get("spec") or {}).get("requester") or "")
    decision = Decision(
        "",
        str(spec.get("approver") or ""),
        tuple(spec.get("approverGroups") or ()),
        str(spec.get("decision") or ""),
        "",
        "",
        attested=True,
    )
    reason = why_not_counted(decision, requester, grant.approval)
    return Admission(False, f"spec.approver: {reason}") if reason else Admission(True)
