"""Access already held, judged again: what ends it early (revoked, its grant gone or ended, a
reviewer's Revoke) and what the grant as it is now no longer covers. Used by the lifecycle; pure.
"""

from __future__ import annotations

from datetime import datetime

from jitaccess.api.durations import format_duration
from jitaccess.api.errors import FieldError
from jitaccess.api.names import normal_member
from jitaccess.api.objects import Decision, Grant, RequestSpec
from jitaccess.api.phases import Phase
from jitaccess.api.reasons import Reason
from jitaccess.api.times import format_time
from jitaccess.policy.approval_status import (
    reports_for,
)
from jitaccess.policy.approvals import Tally, tally
from jitaccess.policy.awaiting import approval_subject
from jitaccess.policy.break_glass import request_errors as break_glass_errors
from jitaccess.policy.eligibility import held_errors
from jitaccess.policy.endings import finish, revoked
from jitaccess.policy.extensions import (
    Related,
    approval_carried,
)
from jitaccess.policy.records import Held
from jitaccess.policy.review_steps import review_of
from jitaccess.policy.steps import ApprovalReport, RequestState, Step


def ended_early(
    state: RequestState,
    spec: RequestSpec,
    held: Held,
    grant: Grant | None,
    now: datetime,
    decisions: tuple[Decision, ...],
    grant_error: str,
) -> Step | None:
    """Held access ended before its time: revoked, its grant gone or ended, a reviewer's Revoke."""
    if spec.revoke:
        reason, message, actor = revoked(state)
        return finish(state, grant, now, Phase.REVOKED, reason, message, ended_by=actor)
    if grant is None:
        why = grant_error or f"EligibleGrant {spec.grant} was deleted"
        return finish(state, grant, now, Phase.REVOKED, Reason.ELIGIBILITY_REMOVED, f"access revoked: {why}")
    if grant.not_after is not None and grant.not_after < held.end and now >= grant.not_after:
        message = f"access revoked: grant {grant.name} ended at {format_time(grant.not_after)}"
        return finish(state, grant, now, Phase.REVOKED, Reason.ELIGIBILITY_EXPIRED, message)
    found = review_of(state, decisions)
    if found is not None and found.revoked and found.by is not None:
        comment = f": {found.by.comment}" if found.by.comment else ""
        message = f"revoked by reviewer {found.by.approver}{comment}"
        return finish(state, grant, now, Phase.REVOKED, Reason.REVOKED_BY_REVIEWER, message)
    return None


def still_covered(
    state: RequestState,
    spec: RequestSpec,
    held: Held,
    grant: Grant,
    decisions: tuple[Decision, ...],
    related: Related,
) -> tuple[list[FieldError], tuple[ApprovalReport, ...], Tally | None]:
    """What the grant as it is now no longer covers of held access, the approvals' reports, and
    the tally they were judged by (None where no approval rule applies). Break-glass access is
    judged by the grant's break-glass rule, not its approval rule."""
    requester = normal_member(spec.requester or "")
    asked = held.asked_duration
    lost = held_errors(held.resource, held.roles, asked, spec, requester, grant)
    if held.continues is not None and held.end - held.start > grant.continuous_limit:
        lost.append(
            FieldError(
                "spec.duration",
                f"it runs without a break for {format_duration(held.end - held.start)}, longer than the grant's "
                f"maxContinuousDuration {format_duration(grant.continuous_limit)}",
            )
        )
    if spec.break_glass:
        return lost + break_glass_errors(spec, grant, asked), (), None
    counted: Tally | None = None
    # An extension that carried its predecessor's approval (the grant spares extensions) is judged
    # by that approval, counted now under the rule as it is now, not by approvals of its own.
    spared = (
        held.continues is not None
        and grant.approval is not None
        and not grant.approval.for_extensions
        and approval_carried(related.extends, related.extends_decisions, grant)
    )
    if grant.approval is not None and not spared:
        subject = approval_subject(state, grant, held.resource, held.roles, int(asked.total_seconds()))
        counted = tally(decisions, requester, grant.approval, subject)
        if not counted.met:
            lost.append(
                FieldError("approval", f"the grant's approval rule is no longer met ({counted.summary()})")
            )
    return lost, reports_for(decisions, counted), counted
