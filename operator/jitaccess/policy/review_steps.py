"""What a break-glass request's status and Events show of its review (see break_glass.py for
the rules): the Reviewed condition, the Warning when access starts and when the review is overdue."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any

from jitaccess.api.names import normal_member
from jitaccess.api.objects import Decision, Grant, RequestSpec
from jitaccess.api.phases import Phase
from jitaccess.api.reasons import Reason
from jitaccess.api.times import format_time, truncate_to_second
from jitaccess.policy.approvals import Subject, terms_digest
from jitaccess.policy.break_glass import Review, review
from jitaccess.policy.conditions import REVIEWED, set_condition
from jitaccess.policy.records import Held
from jitaccess.policy.steps import ApprovalReport, Event, RequestState, Step


def reviewed_condition(
    conditions: Iterable[Any], found: Review, overdue_at: datetime, now: datetime, generation: int
) -> dict[str, Any]:
    """The Reviewed condition: True once reviewed; False, ReviewRequired, until `overdue_at`, then
    ReviewOverdue."""
    if found.by is not None:
        verb = "revoked" if found.revoked else "reviewed"
        comment = f": {found.by.comment}" if found.by.comment else ""
        condition = {
            "type": REVIEWED,
            "status": "True",
            "reason": Reason.REVIEWED,
            "message": f"{verb} by {found.by.approver}{comment}",
        }
    else:
        overdue = now >= overdue_at
        condition = {
            "type": REVIEWED,
            "status": "False",
            "reason": Reason.REVIEW_OVERDUE if overdue else Reason.REVIEW_REQUIRED,
            "message": (
                f"break-glass access not reviewed by {format_time(overdue_at)}"
                if overdue
                else f"break-glass access: review due by {format_time(overdue_at)}"
            ),
        }
    return set_condition(list(conditions), {**condition, "observedGeneration": generation}, now)


def review_of(state: RequestState, decisions: tuple[Decision, ...]) -> Review | None:
    """The review of activated break-glass access as the decisions filed say now, against the
    obligation sealed at activation (reviewers, terms); None for any other request."""
    held, spec = state.records.held, state.spec
    if held is None or held.review_due is None or spec is None:
        return None
    return review(decisions, normal_member(spec.requester or ""), held.reviewers, review_subject(state, held))


def review_subject(state: RequestState, held: Held) -> Subject:
    """What a review is about: this object and the access it was given."""
    seconds = int(held.asked_duration.total_seconds())
    return Subject(
        state.uid,
        terms_digest(state.uid, state.spec_digest, held.resource, held.roles, seconds),
        state.created,
    )


def review_step(state: RequestState, found: Review, held: Held, now: datetime) -> Step:
    """The Reviewed condition shown as the review says now: a status write (and an Event when the
    review came or fell overdue) if it changed, else a look again when the review falls due."""
    assert held.review_due is not None
    overdue_at = held.review_due
    condition = reviewed_condition(state.shown.conditions, found, overdue_at, now, state.generation)
    reports = tuple(ApprovalReport(name, False, why) for name, why in found.ignored)
    if found.by is not None:
        reports += (ApprovalReport(found.by.name, True, f"counts: {condition['message']}"),)
    look = overdue_at if found.by is None and now < overdue_at else None
    shown = state.shown.condition(REVIEWED)
    if all(shown.get(k) == condition.get(k) for k in ("status", "reason", "message")):
        return Step(requeue_at=look, reports=reports)
    conditions = [dict(c) for c in state.shown.conditions if c.get("type") != REVIEWED] + [condition]
    event = None
    if condition["reason"] == Reason.REVIEW_OVERDUE:
        message = f"{condition['message']}; reviewers: {', '.join(held.reviewers)}"
        event = Event("Warning", Reason.REVIEW_OVERDUE, message)
    elif condition["reason"] == Reason.REVIEWED:
        event = Event("Normal", Reason.REVIEWED, condition["message"])
    return Step(status={"conditions": conditions}, event=event, requeue_at=look, reports=reports)


def activated_event(held: Held) -> tuple[Event, dict[str, Any]]:
    """The Warning every reviewer is told of when break-glass access starts, and the condition
    that flags it until it is reviewed."""
    assert held.review_due is not None
    message = (
        f"break-glass: {', '.join(held.roles)} on {held.resource} until {format_time(held.end)} without "
        f"approval; {', '.join(held.reviewers)} must review it by {format_time(held.review_due)}"
    )
    condition = {
        "type": REVIEWED,
        "status": "False",
        "reason": Reason.REVIEW_REQUIRED,
        "message": f"break-glass access: review due by {format_time(held.review_due)}",
    }
    return Event("Warning", Reason.BREAK_GLASS_ACTIVATED, message), condition


def review_obligation(spec: RequestSpec, grant: Grant, now: datetime) -> dict[str, Any]:
    """Break-glass access is sealed with who reviews it and by when: neither a later grant edit
    nor a deleted grant can lift the obligation."""
    if not spec.break_glass or grant.break_glass is None:
        return {}
    due = truncate_to_second(now) + grant.break_glass.review_within
    return {"reviewers": grant.break_glass.reviewers, "review_due": due}


def reviewed_after(
    ending: Step, state: RequestState, grant: Grant | None, now: datetime, decisions: tuple[Decision, ...]
) -> Step:
    """An ended break-glass request is still reviewed (if it ever held access): the review after
    its end is shown too, and the alarm when it falls overdue."""
    held, ended = state.records.held, state.records.ended
    if ending.changes_anything or held is None or ended is None or ended.phase is Phase.ACTIVATION_FAILED:
        return ending
    found = review_of(state, decisions)
    if found is None:
        return ending
    return sooner(ending, review_step(state, found, held, now))


def sooner(step: Step, review: Step) -> Step:
    """The review's step if it changes anything, else `step` looking again at the sooner time."""
    if review.changes_anything:
        return replace(review, reports=step.reports + review.reports)
    times = [t for t in (step.requeue_at, review.requeue_at) if t is not None]
    return replace(step, requeue_at=min(times) if times else None, reports=step.reports + review.reports)
