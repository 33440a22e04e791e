"""EligibleGrant and ActivationRequest as typed values, parsed from Kubernetes bodies.

Parsing checks what a single object can say about itself (formats, bounds). What needs two
objects (is this request allowed by that grant?) lives in `policy.eligibility`.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import re2

from jitaccess.api.bodies import generation_of, metadata_of, spec_of
from jitaccess.api.durations import DurationError, format_duration, parse_duration
from jitaccess.api.errors import FieldError
from jitaccess.api.names import REQUESTER_KINDS, member_error, normal_member, resource_error, role_error
from jitaccess.api.reasons import Reason
from jitaccess.api.times import parse_time

GROUP = "jitaccess.dev"
VERSION = "v1alpha1"

SHORTEST_GRANT = timedelta(minutes=5)
LONGEST_GRANT = timedelta(days=7)
DEFAULT_APPROVAL_TIMEOUT = timedelta(hours=1)
DEFAULT_REVIEW_WITHIN = timedelta(hours=24)
MAX_ROLES = 20
MAX_PRINCIPALS = 100
MAX_APPROVAL_STEPS = 5
MAX_JUSTIFICATION = 1024
NOT_PLAIN_TEXT = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
MAX_COMMENT = 1024  # an approval's comment, as the CRD's maxLength
MAX_PATTERN = 512
K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")

Body = Mapping[str, Any]


@dataclass(frozen=True)
class ApprovalStep:
    """One level of approval: how many of whom, within how long of the level opening."""

    approvers: tuple[str, ...]
    min_approvals: int
    timeout: timedelta


@dataclass(frozen=True)
class ApprovalRule:
    """A grant's approval: its steps, satisfied in order (one step is the common case)."""

    steps: tuple[ApprovalStep, ...]
    # False: an extension of access that was approved needs no approval of its own.
    for_extensions: bool = True

    @property
    def approvers(self) -> tuple[str, ...]:
        """Everyone who may decide at some step."""
        return tuple(dict.fromkeys(a for step in self.steps for a in step.approvers))

    @property
    def min_approvals(self) -> int:
        return sum(step.min_approvals for step in self.steps)

    def describe(self) -> str:
        """ "2 approval(s)", or "1+2 approvals in 2 steps"."""
        if len(self.steps) == 1:
            return f"{self.steps[0].min_approvals} approval(s)"
        return (
            "+".join(str(step.min_approvals) for step in self.steps)
            + f" approvals in {len(self.steps)} steps"
        )


@dataclass(frozen=True)
class BreakGlass:
    """Access at once, without approval, reviewed after the fact by `reviewers`."""

    max_duration: timedelta
    reviewers: tuple[str, ...]
    review_within: timedelta


@dataclass(frozen=True)
class Grant:
    """Who may activate which roles on which resource, for how long, under which rules."""

    name: str
    generation: int
    resource: str
    roles: tuple[str, ...]
    principals: tuple[str, ...]
    max_duration: timedelta
    default_duration: timedelta
    justification_required: bool
    justification_pattern: str | None
    justification_hint: str | None
    approval: ApprovalRule | None
    # Eligibility that starts or ends by itself (RFC 3339 in the spec); None: always.
    not_before: datetime | None = None
    not_after: datetime | None = None
    break_glass: BreakGlass | None = None  # None: break-glass requests are refused
    # The longest access may run without a gap, extensions included (default: max_duration).
    max_continuous: timedelta | None = None

    @property
    def continuous_limit(self) -> timedelta:
        return self.max_continuous or self.max_duration


@dataclass(frozen=True)
class RequestSpec:
    """What one ActivationRequest asks for, as the user wrote it (plus the admitted identity)."""

    grant: str
    roles: tuple[str, ...] | None  # None: all of the grant's roles
    duration: timedelta | None  # None: the grant's defaultDuration
    justification: str
    start_time: datetime | None
    revoke: bool
    requester: str | None
    requester_groups: tuple[str, ...]
    break_glass: bool = False
    extends: str | None = None  # the Active request (same namespace) whose access this continues


def parse_grant(body: Body) -> tuple[Grant | None, list[FieldError]]:
    """The grant in `body`, or None with every reason it is invalid."""
    spec = spec_of(body)
    errors: list[FieldError] = []
    resource = spec.get("resource")
    if (message := resource_error(resource)) is not None:
        errors.append(FieldError("spec.resource", message))
    roles = _string_list(spec, "roles", "spec.roles", errors, required=True, limit=MAX_ROLES)
    for index, role in enumerate(roles):
        if (message := role_error(role)) is not None:
            errors.append(FieldError(f"spec.roles[{index}]", message))
    principals = _string_list(
        spec, "principals", "spec.principals", errors, required=True, limit=MAX_PRINCIPALS
    )
    for index, principal in enumerate(principals):
        if (message := member_error(principal)) is not None:
            errors.append(FieldError(f"spec.principals[{index}]", message))
    max_duration, default_duration, max_continuous = _durations(spec, errors)
    justification = _mapping(spec.get("justification"))
    required = justification.get("required", True)
    if not isinstance(required, bool):
        errors.append(FieldError("spec.justification.required", "must be true or false"))
    pattern = justification.get("pattern")
    if pattern is not None and (message := pattern_error(pattern)) is not None:
        errors.append(FieldError("spec.justification.pattern", message))
    hint = justification.get("hint")
    approval = _approval(spec, errors)
    break_glass = _break_glass(spec, approval, max_duration, errors)
    not_before = _time(spec, "notBefore", errors)
    not_after = _time(spec, "notAfter", errors)
    if not_before is not None and not_after is not None and not_before >= not_after:
        errors.append(FieldError("spec.notAfter", "must be later than spec.notBefore"))
    if isinstance(resource, str) and not errors:
        errors += _grantable_errors(resource, roles, approval)
    if errors or max_duration is None or not isinstance(resource, str):
        return None, errors
    return Grant(
        name=str(metadata_of(body).get("name", "")),
        generation=generation_of(body, 0),
        resource=resource,
        roles=tuple(roles),
        principals=tuple(principals),
        max_duration=max_duration,
        default_duration=default_duration or min(timedelta(hours=1), max_duration),
        justification_required=bool(required),
        justification_pattern=pattern,
        justification_hint=hint if isinstance(hint, str) else None,
        approval=approval,
        not_before=not_before,
        not_after=not_after,
        break_glass=break_glass,
        max_continuous=max_continuous,
    ), []


RESERVED_MARKER = "jitaccess.dev/"


def parse_request_spec(body: Body) -> tuple[RequestSpec | None, list[FieldError]]:
    """The request's spec, or None with every reason it is malformed (grant-independent checks)."""
    spec = spec_of(body)
    errors: list[FieldError] = []
    grant = spec.get("grant")
    if not isinstance(grant, str) or K8S_NAME.fullmatch(grant) is None:
        errors.append(FieldError("spec.grant", "must name an EligibleGrant (a lowercase Kubernetes name)"))
    roles: list[str] | None = None
    if spec.get("roles") is not None:
        roles = _string_list(spec, "roles", "spec.roles", errors, required=True, limit=MAX_ROLES)
        for index, role in enumerate(roles):
            if (message := role_error(role)) is not None:
                errors.append(FieldError(f"spec.roles[{index}]", message))
        if len(set(roles)) != len(roles):
            errors.append(FieldError("spec.roles", "lists a role more than once"))
    duration = _duration(spec, "duration", "spec.duration", errors, required=False)
    justification = _justification(spec, errors)
    start_time = None
    if spec.get("startTime") is not None:
        try:
            start_time = parse_time(spec["startTime"])
        except ValueError as error:
            errors.append(FieldError("spec.startTime", str(error)))
    revoke = spec.get("revoke", False)
    if not isinstance(revoke, bool):
        errors.append(FieldError("spec.revoke", "must be true or false"))
    extends, break_glass = _special_kinds(spec, start_time, errors)
    requester = spec.get("requester")
    if requester is not None and (message := member_error(requester, REQUESTER_KINDS)) is not None:
        errors.append(FieldError("spec.requester", message))
    groups = _string_list(spec, "requesterGroups", "spec.requesterGroups", errors, required=False, limit=500)
    for index, group in enumerate(groups):
        if (message := member_error(group, ("group",))) is not None:
            errors.append(FieldError(f"spec.requesterGroups[{index}]", message))
    if errors:
        return None, errors
    return RequestSpec(
        grant=str(grant),
        roles=tuple(roles) if roles is not None else None,
        duration=duration,
        justification=justification,
        start_time=start_time,
        revoke=bool(revoke),
        requester=requester,
        requester_groups=tuple(groups),
        break_glass=break_glass,
        extends=extends,
    ), []


def _justification(spec: Body, errors: list[FieldError]) -> str:
    justification = spec.get("justification", "")
    if not isinstance(justification, str):
        errors.append(FieldError("spec.justification", "must be a string"))
        return ""
    if (message := text_error(justification, MAX_JUSTIFICATION)) is not None:
        errors.append(FieldError("spec.justification", message))
    elif RESERVED_MARKER in justification.lower():
        # Our reference always ends the binding's description, so it cannot be forged; but text
        # that imitates it would mislead whoever reads the policy in the console.
        errors.append(
            FieldError(
                "spec.justification",
                f"must not contain {RESERVED_MARKER!r}: it marks jitaccess's own bindings",
            )
        )
    return justification


def _special_kinds(
    spec: Body, start_time: datetime | None, errors: list[FieldError]
) -> tuple[str | None, bool]:
    """spec.extends and spec.breakGlass: neither is scheduled, and they do not mix."""
    extends = spec.get("extends")
    if extends is not None and not is_kubernetes_name(extends):
        errors.append(FieldError("spec.extends", "must name an ActivationRequest in this namespace"))
    elif extends is not None and start_time is not None:
        errors.append(FieldError("spec.startTime", "an extension continues access now; leave startTime out"))
    break_glass = spec.get("breakGlass", False)
    if not isinstance(break_glass, bool):
        errors.append(FieldError("spec.breakGlass", "must be true or false"))
    elif break_glass and start_time is not None:
        errors.append(FieldError("spec.startTime", "a break-glass request starts now; leave startTime out"))
    if extends is not None and break_glass is True:
        errors.append(
            FieldError("spec.extends", "a break-glass request cannot extend another; file it on its own")
        )
    return (extends if isinstance(extends, str) else None), break_glass is True


def is_kubernetes_name(name: object) -> bool:
    """A lowercase RFC 1123 subdomain-like name, as metadata.name of our objects (at most 253)."""
    return isinstance(name, str) and K8S_NAME.fullmatch(name) is not None


def pattern_error(pattern: object) -> str | None:
    """Why a justification pattern cannot be used, or None. RE2 syntax: matching is linear-time."""
    if not isinstance(pattern, str):
        return "must be a string"
    if len(pattern) > MAX_PATTERN:
        return f"is {len(pattern)} characters long; the limit is {MAX_PATTERN}"
    try:
        compile_pattern(pattern)
    except re2.error as error:
        reason = error.args[0].decode(errors="replace") if isinstance(error.args[0], bytes) else error
        return f"is not a valid RE2 regular expression ({reason}); lookarounds and backreferences are not supported"
    return None


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re2._Regexp:
    """Compile a justification pattern with RE2 (linear-time: no pattern can stall the operator).

    Cached: each request is judged three times (two webhooks, the reconciler) against few grants.
    """
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


def text_error(text: str, limit: int) -> str | None:
    """Why free text (a justification) is unacceptable: too long, or carrying control characters."""
    if len(text) > limit:
        return f"is {len(text)} characters long; the limit is {limit}"
    # Control, format (bidi overrides, zero-width), surrogate, private-use and unassigned code
    # points, and line or paragraph separators: none belongs in one line of plain text.
    bad = sorted({f"U+{ord(ch):04X}" for ch in text if unicodedata.category(ch) in NOT_PLAIN_TEXT})
    if bad:
        return f"contains control, invisible or unassigned characters ({', '.join(bad[:5])}); write plain text on one line"
    return None


def _grantable_errors(resource: str, roles: list[str], approval: ApprovalRule | None) -> list[FieldError]:
    """What a grant asks that IAM or the approval rule could never do, though each field is valid."""
    errors = []
    for index, role in enumerate(roles):
        if role.startswith("projects/"):
            home = "/".join(role.split("/")[:2])
            if resource != home:
                errors.append(
                    FieldError(
                        f"spec.roles[{index}]",
                        f"{role} is a custom role of {home}, which IAM can only grant on {home} itself, "
                        f"not on {resource}; use a role of the organization or a predefined role",
                        reason=Reason.ROLE_NOT_GRANTABLE,
                    )
                )
    steps = approval.steps if approval is not None else ()
    people_only = all(a.startswith(("user:", "serviceAccount:")) for step in steps for a in step.approvers)
    everyone = {normal_member(a) for step in steps for a in step.approvers}
    if len(steps) > 1 and people_only and len(everyone) < sum(step.min_approvals for step in steps):
        errors.append(
            FieldError(
                "spec.approval.steps",
                f"{sum(step.min_approvals for step in steps)} approvals in all can never be given: one person "
                f"counts in one step only, and only {len(everyone)} approver(s) are listed; list more, or a group",
                reason=Reason.APPROVAL_UNSATISFIABLE,
            )
        )
    for index, step in enumerate(steps):
        if not all(a.startswith(("user:", "serviceAccount:")) for a in step.approvers):
            continue
        people = {normal_member(a) for a in step.approvers}
        if len(people) < step.min_approvals:
            path = "spec.approval" if len(steps) == 1 else f"spec.approval.steps[{index}]"
            errors.append(
                FieldError(
                    f"{path}.minApprovals",
                    f"{step.min_approvals} approvals can never be given: only {len(people)} approver(s) "
                    "are listed (and the requester never counts); list more approvers, or a group",
                    reason=Reason.APPROVAL_UNSATISFIABLE,
                )
            )
    return errors


def _approval(spec: Body, errors: list[FieldError]) -> ApprovalRule | None:
    raw = spec.get("approval")
    if raw is None:
        return None
    approval = _mapping(raw)
    for_extensions = approval.get("forExtensions", True)
    if not isinstance(for_extensions, bool):
        errors.append(FieldError("spec.approval.forExtensions", "must be true or false"))
        for_extensions = True
    if "steps" not in approval:  # the single-step shorthand
        return ApprovalRule((_approval_step(approval, "spec.approval", errors),), for_extensions)
    if "approvers" in approval or "minApprovals" in approval or "timeout" in approval:
        errors.append(
            FieldError("spec.approval", "give either steps or approvers/minApprovals/timeout, not both")
        )
    steps = approval.get("steps")
    if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_APPROVAL_STEPS:
        errors.append(FieldError("spec.approval.steps", f"must list 1 to {MAX_APPROVAL_STEPS} steps"))
        return ApprovalRule(())
    return ApprovalRule(
        tuple(
            _approval_step(_mapping(step), f"spec.approval.steps[{index}]", errors)
            for index, step in enumerate(steps)
        ),
        for_extensions,
    )


def _durations(
    spec: Body, errors: list[FieldError]
) -> tuple[timedelta | None, timedelta | None, timedelta | None]:
    """maxDuration, defaultDuration and maxContinuousDuration, each within its bounds."""
    max_duration = _duration(spec, "maxDuration", "spec.maxDuration", errors, required=True)
    default_duration = _duration(spec, "defaultDuration", "spec.defaultDuration", errors, required=False)
    for path, value in (("spec.maxDuration", max_duration), ("spec.defaultDuration", default_duration)):
        if value is not None and not SHORTEST_GRANT <= value <= LONGEST_GRANT:
            errors.append(FieldError(path, f"{format_duration(value)} must be between 5m and 168h"))
    if max_duration is not None and default_duration is not None and default_duration > max_duration:
        errors.append(
            FieldError(
                "spec.defaultDuration",
                f"{format_duration(default_duration)} exceeds maxDuration {format_duration(max_duration)}",
            )
        )
    max_continuous = _duration(
        spec, "maxContinuousDuration", "spec.maxContinuousDuration", errors, required=False
    )
    if (
        max_continuous is not None
        and max_duration is not None
        and not max_duration <= max_continuous <= LONGEST_GRANT
    ):
        errors.append(
            FieldError(
                "spec.maxContinuousDuration",
                f"{format_duration(max_continuous)} must be between maxDuration and 168h",
            )
        )
    return max_duration, default_duration, max_continuous


def _break_glass(
    spec: Body, approval: ApprovalRule | None, max_duration: timedelta | None, errors: list[FieldError]
) -> BreakGlass | None:
    raw = spec.get("breakGlass")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        errors.append(
            FieldError("spec.breakGlass", "must be an object (allowed, maxDuration, reviewers, reviewWithin)")
        )
        return None
    settings = raw
    allowed = settings.get("allowed", False)
    if not isinstance(allowed, bool):
        errors.append(FieldError("spec.breakGlass.allowed", "must be true or false"))
    longest = _duration(settings, "maxDuration", "spec.breakGlass.maxDuration", errors, required=False)
    limit = max_duration or LONGEST_GRANT
    if longest is not None and not SHORTEST_GRANT <= longest <= limit:
        errors.append(
            FieldError(
                "spec.breakGlass.maxDuration",
                f"{format_duration(longest)} must be between 5m and maxDuration",
            )
        )
    reviewers = _string_list(
        settings, "reviewers", "spec.breakGlass.reviewers", errors, required=False, limit=MAX_PRINCIPALS
    )
    for index, reviewer in enumerate(reviewers):
        if (message := member_error(reviewer)) is not None:
            errors.append(FieldError(f"spec.breakGlass.reviewers[{index}]", message))
    if not reviewers and approval is not None:
        reviewers = list(approval.approvers)
    if allowed is True and not reviewers:
        errors.append(
            FieldError(
                "spec.breakGlass.reviewers",
                "name who reviews break-glass access (or give the grant an approval rule, whose approvers review)",
            )
        )
    within = _duration(settings, "reviewWithin", "spec.breakGlass.reviewWithin", errors, required=False)
    if allowed is not True:
        return None
    return BreakGlass(
        longest or min(timedelta(hours=1), limit), tuple(reviewers), within or DEFAULT_REVIEW_WITHIN
    )


def _approval_step(approval: Body, path: str, errors: list[FieldError]) -> ApprovalStep:
    approvers = _string_list(
        approval, "approvers", f"{path}.approvers", errors, required=True, limit=MAX_PRINCIPALS
    )
    for index, approver in enumerate(approvers):
        if (message := member_error(approver)) is not None:
            errors.append(FieldError(f"{path}.approvers[{index}]", message))
    min_approvals = approval.get("minApprovals", 1)
    if not isinstance(min_approvals, int) or isinstance(min_approvals, bool) or not 1 <= min_approvals <= 10:
        errors.append(FieldError(f"{path}.minApprovals", "must be a whole number from 1 to 10"))
        min_approvals = 1
    timeout = _duration(approval, "timeout", f"{path}.timeout", errors, required=False)
    return ApprovalStep(tuple(approvers), min_approvals, timeout or DEFAULT_APPROVAL_TIMEOUT)


def _time(spec: Body, key: str, errors: list[FieldError]) -> datetime | None:
    raw = spec.get(key)
    if raw is None:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        errors.append(FieldError(f"spec.{key}", "must be an RFC 3339 time like 2026-12-31T18:00:00Z"))
        return None


def _duration(
    spec: Body, key: str, path: str, errors: list[FieldError], *, required: bool
) -> timedelta | None:
    raw = spec.get(key)
    if raw is None:
        if required:
            errors.append(FieldError(path, "is required (a duration like 2h)"))
        return None
    try:
        return parse_duration(raw)
    except DurationError as error:
        errors.append(FieldError(path, str(error)))
        return None


def _string_list(
    spec: Body, key: str, path: str, errors: list[FieldError], *, required: bool, limit: int
) -> list[str]:
    raw = spec.get(key)
    if raw is None or raw == []:
        if required:
            errors.append(FieldError(path, "must list at least one entry"))
        return []
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        errors.append(FieldError(path, "must be a list of strings"))
        return []
    if len(raw) > limit:
        errors.append(FieldError(path, f"lists {len(raw)} entries; the limit is {limit}"))
        return []
    return list(raw)


def _mapping(value: object) -> Body:
    return value if isinstance(value, Mapping) else {}


# -- ActivationApproval ----------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """One ActivationApproval: who decided what about which request (as admission stamped it)."""

    name: str
    approver: str
    approver_groups: tuple[str, ...]
    decision: str  # Approve | Deny
    comment: str
    time: str
    attested: bool
    request_uid: str = ""
    request_digest: str = ""


def read_decision(body: Mapping[str, Any], attested: bool) -> Decision:
    spec, metadata = spec_of(body), metadata_of(body)
    return Decision(
        name=str(metadata.get("name", "")),
        approver=str(spec.get("approver") or ""),
        approver_groups=tuple(spec.get("approverGroups") or ()),
        decision=str(spec.get("decision", "")),
        comment=str(spec.get("comment") or ""),
        time=str(metadata.get("creationTimestamp") or ""),
        attested=attested,
        request_uid=str(spec.get("requestUID") or ""),
        request_digest=str(spec.get("requestDigest") or ""),
    )
