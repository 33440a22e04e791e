"""What a request's status shows of its approvals: the Approved condition, the decisions that
count (`status.approvals`), and each ActivationApproval's own report (counted, and why not). Shown
only; what counts is `approvals.tally`. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from jitaccess.api.objects import Decision
from jitaccess.api.reasons import Reason
from jitaccess.policy.approvals import Tally
from jitaccess.policy.conditions import APPROVED, set_condition
from jitaccess.policy.steps import ApprovalReport, RequestState, Step


def approved_condition(counted: Tally, state: RequestState, now: datetime) -> dict[str, Any]:
    """The Approved condition: how many of how many, or who denied."""
    return set_condition(
        state.shown.conditions,
        {
            "type": APPROVED,
            "status": "True" if counted.met else "False",
            "reason": Reason.DENIED
            if counted.denied_by
            else Reason.APPROVED
            if counted.met
            else Reason.WAITING,
            "message": counted.summary(),
            "observedGeneration": state.generation,
        },
        now,
    )


def shows_same(state: RequestState, condition: Mapping[str, Any]) -> bool:
    shown = state.shown.condition(str(condition["type"]))
    return all(shown.get(k) == condition.get(k) for k in ("status", "reason", "message"))


def counted_record(decisions: tuple[Decision, ...], counted: Tally) -> list[dict[str, Any]]:
    """status.approvals: the decisions that count, in the order they came."""
    names = set(counted.counted)
    return [
        {"approver": d.approver, "decision": d.decision, "comment": d.comment, "time": d.time}
        for d in sorted(decisions, key=lambda d: (d.time, d.name))
        if d.name in names
    ]


def reports_for(decisions: tuple[Decision, ...], counted: Tally | None) -> tuple[ApprovalReport, ...]:
    if counted is None:
        return tuple(
            ApprovalReport(d.name, False, "the request's grant does not ask for approval") for d in decisions
        )
    why = dict(counted.ignored)
    return tuple(
        ApprovalReport(d.name, False, why[d.name])
        if d.name in why
        else ApprovalReport(d.name, True, f"counts: {counted.summary()}")
        for d in sorted(decisions, key=lambda d: d.name)
    )


def with_approvals(step: Step, condition: dict[str, Any], record: list[dict[str, Any]]) -> Step:
    """The step (and the steps that follow its IAM change) showing the approvals as counted now."""
    follow = {
        name: with_approvals(getattr(step, name), condition, record)
        for name in ("on_success", "on_failure", "on_retry", "on_slow")
        if getattr(step, name) is not None
    }
    step = replace(step, **follow)
    if step.status is None or "phase" not in step.status:
        return step
    conditions = [c for c in step.status.get("conditions", []) if c.get("type") != APPROVED] + [condition]
    return replace(step, status={**step.status, "conditions": conditions, "approvals": record})
