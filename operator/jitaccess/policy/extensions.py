"""Extension: more time for Active access, without a gap and without two bindings per role.

An ActivationRequest with `spec.extends: NAME` asks to continue NAME's access (same namespace,
same requester, same grant and roles). It is judged like any request against the grant as it is
now (eligibility, justification, approval — a grant whose `approval.forExtensions` is false lets
an extension of approved access through without approval of its own), and its continuous access,
from the extended request's start to the new end, may not exceed the grant's
`maxContinuousDuration` (default: `maxDuration`). When it activates, its one IAM write replaces
the extended request's bindings with its own, whose window runs from that start to its own end
(the old end plus its duration); the extended request then ends `Extended`. If the extended
request no longer holds access when the extension may start (it expired, was revoked or
deleted), the extension starts fresh, as a request of its own. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from jitaccess.api.durations import format_duration
from jitaccess.api.errors import FieldError
from jitaccess.api.names import normal_member
from jitaccess.api.objects import Decision, Grant, RequestSpec
from jitaccess.api.phases import Phase
from jitaccess.api.reasons import Reason
from jitaccess.api.times import format_time
from jitaccess.policy.approvals import Subject, tally, terms_digest
from jitaccess.policy.eligibility import resolve

if TYPE_CHECKING:  # steps imports admission, which judges extensions with this module
    from jitaccess.policy.steps import RequestState


@dataclass(frozen=True)
class Related:
    """The requests one request's judgement depends on, as the API holds them now."""

    extends: RequestState | None = None  # what spec.extends names (None: none, or gone)
    continued_by: str | None = None  # an extension that now holds this request's access
    extends_decisions: tuple[Decision, ...] = ()  # the approvals filed for what it extends
    extends_taken_by: str | None = None  # another extension already continues what it extends


def continuing_window(
    predecessor: RequestState | None, now: datetime, duration: timedelta
) -> tuple[datetime, datetime] | None:
    """The window of an extension that continues `predecessor`'s access: its start to its end
    plus `duration`; None when it holds nothing now (the extension then starts fresh)."""
    if predecessor is None or predecessor.records.ended is not None:
        return None
    held = predecessor.records.held
    if held is None or now >= held.end:
        return None
    return held.start, held.end + duration


def extension_errors(
    spec: RequestSpec,
    predecessor: RequestState | None,
    grant: Grant,
    now: datetime,
    taken_by: str | None = None,
) -> list[FieldError]:
    """Why this extension cannot continue `predecessor` under `grant` now (empty: it may, or
    there is nothing to continue and it is judged as a request of its own)."""
    if spec.extends is None or predecessor is None or predecessor.spec is None:
        return []
    before, held = predecessor.spec, predecessor.records.held
    errors = []
    if normal_member(before.requester or "") != normal_member(spec.requester or ""):
        errors.append(
            FieldError(
                "spec.extends", f"{spec.extends} is {before.requester}'s access; only they may extend it"
            )
        )
    if before.break_glass:
        errors.append(
            FieldError(
                "spec.extends", f"{spec.extends} is break-glass access, which is not extended; file a request"
            )
        )
    # The same roles as what it holds (not as the grant resolves them now: the grant may have grown).
    roles = held.roles if held is not None else resolve(before, grant).roles
    if before.grant != spec.grant or tuple(sorted(resolve(spec, grant).roles)) != tuple(sorted(roles)):
        errors.append(
            FieldError(
                "spec.extends", f"an extension asks for the same grant and roles as {spec.extends} holds"
            )
        )
    if taken_by is not None and continuing_window(predecessor, now, timedelta()) is not None:
        errors.append(
            FieldError(
                "spec.extends", f"{spec.extends} is already being extended by {taken_by}; extend that instead"
            )
        )
    window = continuing_window(predecessor, now, resolve(spec, grant).duration)
    if window is not None and window[1] - window[0] > grant.continuous_limit:
        start, end = window
        errors.append(
            FieldError(
                "spec.duration",
                f"access would run without a break from {format_time(start)} to {format_time(end)}, "
                f"longer than grant {grant.name}'s maxContinuousDuration {format_duration(grant.continuous_limit)}",
                reason=Reason.CONTINUOUS_LIMIT,
            )
        )
    return errors


def approval_carried(predecessor: RequestState | None, decisions: tuple[Decision, ...], grant: Grant) -> bool:
    """Does the approval of what is extended count now, under the grant's rule as it is now? Only
    its own approvals count: an extension of an extension carries nothing."""
    if predecessor is None or predecessor.spec is None or grant.approval is None:
        return False
    held = predecessor.records.held
    if held is None or not held.approvers or held.continues is not None:
        return False
    seconds = int(held.asked_duration.total_seconds())
    subject = Subject(
        predecessor.uid,
        terms_digest(predecessor.uid, predecessor.spec_digest, held.resource, held.roles, seconds),
        predecessor.created,
    )
    return tally(decisions, normal_member(predecessor.spec.requester or ""), grant.approval, subject).met


def needs_no_approval(spec: RequestSpec, related: Related, grant: Grant) -> bool:
    """An extension of approved access that continues it, where the grant's approval rule spares
    extensions and that approval still counts."""
    if spec.extends is None or grant.approval is None or grant.approval.for_extensions:
        return False
    predecessor = related.extends
    if predecessor is None or predecessor.records.ended is not None:
        return False
    return approval_carried(predecessor, related.extends_decisions, grant)


def admission_problem(
    spec: RequestSpec, predecessor: RequestState | None, grant: Grant, now: datetime
) -> str | None:
    """Admission's view: the extended request must exist and be Active when the extension is filed."""
    if spec.extends is None:
        return None
    if predecessor is None:
        return f"spec.extends: there is no ActivationRequest {spec.extends} in this namespace"
    if predecessor.shown.phase is not Phase.ACTIVE:
        return f"spec.extends: {spec.extends} is {predecessor.shown.phase or 'not yet active'}, not Active; file a new request"
    errors = extension_errors(spec, predecessor, grant, now)
    return "; ".join(str(e) for e in errors) or None
