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
from jitaccess.api.objects import Grant, RequestSpec
from jitaccess.api.phases import Phase
from jitaccess.api.reasons import Reason
from jitaccess.api.times import format_time
from jitaccess.policy.eligibility import resolve

if TYPE_CHECKING:  # steps imports admission, which judges extensions with this module
    from jitaccess.policy.steps import RequestState


@dataclass(frozen=True)
class Related:
    """The requests one request's judgement depends on, as the API holds them now."""

    extends: RequestState | None = None  # what spec.extends names (None: none, or gone)
    continued_by: str | None = None  # an extension that now holds this request's access


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
    spec: RequestSpec, predecessor: RequestState | None, grant: Grant, now: datetime
) -> list[FieldError]:
    """Why this extension cannot continue `predecessor` under `grant` now (empty: it may, or
    there is nothing to continue and it is judged as a request of its own)."""
    if spec.extends is None or predecessor is None or predecessor.spec is None:
        return []
    before = predecessor.spec
    errors = []
    if normal_member(before.requester or "") != normal_member(spec.requester or ""):
        errors.append(
            FieldError(
                "spec.extends", f"{spec.extends} is {before.requester}'s access; only they may extend it"
            )
        )
    if before.grant != spec.grant or resolve(before, grant).roles != resolve(spec, grant).roles:
        errors.append(
            FieldError("spec.extends", f"an extension asks for the same grant and roles as {spec.extends}")
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


def needs_no_approval(spec: RequestSpec, predecessor: RequestState | None, grant: Grant) -> bool:
    """An extension of approved access, where the grant's approval rule spares extensions."""
    if spec.extends is None or grant.approval is None or grant.approval.for_extensions:
        return False
    held = predecessor.records.held if predecessor is not None else None
    return (
        held is not None
        and bool(held.approvers)
        and predecessor is not None
        and predecessor.records.ended is None
    )


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
