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

from jitaccess.api.approval_rules import (
    ApprovalRule,
    BreakGlass,
    parse_approval,
    parse_break_glass,
)
from jitaccess.api.bodies import generation_of, metadata_of, spec_of
from jitaccess.api.durations import format_duration
from jitaccess.api.errors import FieldError
from jitaccess.api.fields import Body, duration_field, mapping, string_list, time_field
from jitaccess.api.limits import (
    K8S_NAME,
    LONGEST_GRANT,
    MAX_JUSTIFICATION,
    MAX_PATTERN,
    MAX_PRINCIPALS,
    MAX_ROLES,
    SHORTEST_GRANT,
)
from jitaccess.api.names import REQUESTER_KINDS, member_error, normal_member, resource_error, role_error
from jitaccess.api.reasons import Reason
from jitaccess.api.times import parse_time

GROUP = "jitaccess.dev"
VERSION = "v1alpha1"

NOT_PLAIN_TEXT = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


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
    slack_channel: str | None = None  # where its requests are announced (None: the default channel)

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
    roles = string_list(spec, "roles", "spec.roles", errors, required=True, limit=MAX_ROLES)
    for index, role in enumerate(roles):
        if (message := role_error(role)) is not None:
            errors.append(FieldError(f"spec.roles[{index}]", message))
    principals = string_list(
        spec, "principals", "spec.principals", errors, required=True, limit=MAX_PRINCIPALS
    )
    for index, principal in enumerate(principals):
        if (message := member_error(principal)) is not None:
            errors.append(FieldError(f"spec.principals[{index}]", message))
    max_duration, default_duration, max_continuous = _durations(spec, errors)
    justification = mapping(spec.get("justification"))
    required = justification.get("required", True)
    if not isinstance(required, bool):
        errors.append(FieldError("spec.justification.required", "must be true or false"))
    pattern = justification.get("pattern")
    if pattern is not None and (message := pattern_error(pattern)) is not None:
        errors.append(FieldError("spec.justification.pattern", message))
    hint = justification.get("hint")
    approval = parse_approval(spec, errors)
    break_glass = parse_break_glass(spec, approval, max_duration, errors)
    not_before = time_field(spec, "notBefore", errors)
    not_after = time_field(spec, "notAfter", errors)
    slack_channel = _slack_channel(spec, errors)
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
        slack_channel=slack_channel,
    ), []


# A Slack conversation ID (C…, G…), as `chat.postMessage` takes it: names can be renamed away.
SLACK_CHANNEL = re.compile(r"[CG][A-Z0-9]{2,20}")


def _slack_channel(spec: Body, errors: list[FieldError]) -> str | None:
    notify = spec.get("notify")
    if notify is None:
        return None
    if not isinstance(notify, Mapping):
        errors.append(FieldError("spec.notify", "must be an object, e.g. {slackChannel: C0123456789}"))
        return None
    channel = notify.get("slackChannel")
    if channel is None:
        return None
    if not isinstance(channel, str) or not SLACK_CHANNEL.fullmatch(channel):
        errors.append(
            FieldError(
                "spec.notify.slackChannel",
                "must be a Slack channel ID such as C0123456789 (in Slack: the channel's details, at the "
                "bottom), not a #name, which can be renamed",
            )
        )
        return None
    return channel


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
        roles = string_list(spec, "roles", "spec.roles", errors, required=True, limit=MAX_ROLES)
        for index, role in enumerate(roles):
            if (message := role_error(role)) is not None:
                errors.append(FieldError(f"spec.roles[{index}]", message))
        if len(set(roles)) != len(roles):
            errors.append(FieldError("spec.roles", "lists a role more than once"))
    duration = duration_field(spec, "duration", "spec.duration", errors, required=False)
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
    groups = string_list(spec, "requesterGroups", "spec.requesterGroups", errors, required=False, limit=500)
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


def _durations(
    spec: Body, errors: list[FieldError]
) -> tuple[timedelta | None, timedelta | None, timedelta | None]:
    """maxDuration, defaultDuration and maxContinuousDuration, each within its bounds."""
    max_duration = duration_field(spec, "maxDuration", "spec.maxDuration", errors, required=True)
    default_duration = duration_field(spec, "defaultDuration", "spec.defaultDuration", errors, required=False)
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
    max_continuous = duration_field(
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
    # Filed by the operator for a person a chat service verified (an e-mail address, nothing more).
    via_chat: bool = False


# On an approval the operator filed for a person a chat service verified ("slack:TEAM/USER"):
# only the operator may set it (a jitaccess.dev/ annotation).
CHAT_IDENTITY = "jitaccess.dev/chat-identity"


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
        via_chat=CHAT_IDENTITY in (metadata.get("annotations") or {}),
    )
