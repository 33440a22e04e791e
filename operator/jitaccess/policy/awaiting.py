"""Waiting for approval: who is asked, until when, and how a request that waits ends (denied,
timed out, or no longer allowed). Used by the lifecycle; pure.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from jitaccess.api.objects import Grant
from jitaccess.api.phases import Phase
from jitaccess.api.reasons import Reason
from jitaccess.policy.approval_status import (
    shows_same,
    with_approvals,
)
from jitaccess.policy.approvals import Subject, Tally, terms_digest
from jitaccess.policy.endings import finish
from jitaccess.policy.steps import RequestState, Step, transition


def await_approval(
    state: RequestState,
    grant: Grant,
    counted: Tally,
    now: datetime,
    approved: dict[str, Any],
    record: list[dict[str, Any]],
) -> Step | None:
    """Denied, timed out, or still waiting for approval; None when the approval rule is met."""
    assert grant.approval is not None
    if counted.denied_by:
        return with_approvals(
            finish(state, grant, now, Phase.DENIED, Reason.DENIED, f"denied by {counted.denied_by}"),
            approved,
            record,
        )
    if counted.waiting is None:
        return None
    deadline = counted.waiting.deadline
    if state.shown.phase in (Phase.SCHEDULED, Phase.ACTIVATING):
        # It had been approved (or needed no approval) when it was scheduled: the grant changed since.
        return with_approvals(
            finish(
                state,
                grant,
                now,
                Phase.REJECTED,
                Reason.ELIGIBILITY_CHANGED,
                f"grant {grant.name} no longer allows it: its approval rule is not met ({counted.summary()})",
            ),
            approved,
            record,
        )
    if now >= deadline:
        return with_approvals(
            finish(
                state,
                grant,
                now,
                Phase.EXPIRED,
                Reason.APPROVAL_TIMEOUT,
                f"{counted.waiting.timed_out()} ({counted.summary()})",
            ),
            approved,
            record,
        )
    first = state.shown.phase is not Phase.AWAITING_APPROVAL
    if not first and record == [dict(a) for a in state.shown.approvals] and shows_same(state, approved):
        return Step(requeue_at=deadline)
    step = transition(
        state,
        now,
        Phase.AWAITING_APPROVAL,
        Reason.APPROVAL_REQUIRED if first else Reason.APPROVAL_RECORDED,
        first_wait(grant) if first else counted.summary(),
        requeue_at=deadline,
    )
    return replace(with_approvals(step, approved, record), waiting=counted.waiting)


def approval_subject(
    state: RequestState, grant: Grant, resource: str, roles: tuple[str, ...], duration_s: int
) -> Subject:
    assert grant.approval is not None
    return Subject(
        uid=state.uid,
        digest=terms_digest(state.uid, state.spec_digest, resource, roles, duration_s),
        opened=state.created,
    )


def first_wait(grant: Grant) -> str:
    assert grant.approval is not None
    first = grant.approval.steps[0]
    steps = len(grant.approval.steps)
    which = f" (step 1 of {steps})" if steps > 1 else ""
    return f"waiting for {first.min_approvals} approval(s) from {', '.join(first.approvers)}{which}"
