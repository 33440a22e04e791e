"""How a request ends: whatever it may hold is removed first, then the end is shown, then sealed;
loud when IAM refuses the removal; after the end, only the history remains (and goes after the
retention). Pure.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from jitaccess.api.durations import format_duration
from jitaccess.api.objects import Grant
from jitaccess.api.phases import HOLDING, Phase
from jitaccess.api.reasons import Reason
from jitaccess.api.times import format_time, truncate_to_second
from jitaccess.policy.conditions import REVOCATION_FAILING, set_condition
from jitaccess.policy.records import Actor, Ended, Records
from jitaccess.policy.steps import Event, IamChange, RequestState, Step, transition


def revoked(state: RequestState) -> tuple[str, str, Actor | None]:
    actor = state.records.revoked_by
    if actor is None:
        return Reason.REVOKED, "revoked early (spec.revoke); admission recorded no actor", None
    if actor.as_requester:
        return Reason.REVOKED_BY_REQUESTER, f"revoked early by the requester ({actor.shown})", actor
    return Reason.REVOKED_BY_ADMIN, f"revoked early by {actor.shown}, who is not the requester", actor


def finish(
    state: RequestState,
    grant: Grant | None,
    now: datetime,
    phase: Phase,
    reason: str,
    message: str,
    ended_by: Actor | None = None,
) -> Step:
    """End the request: remove whatever it may hold first, then show the end, then seal it."""
    ended = transition(
        state,
        now,
        phase,
        reason,
        message,
        extra={"endedAt": format_time(now), "endedBy": ended_by.shown if ended_by else None},
        event_type="Warning"
        if phase in (Phase.REJECTED, Phase.ACTIVATION_FAILED, Phase.DENIED)
        else "Normal",
    )
    ended = replace(ended, record_ended=Ended(phase, reason, truncate_to_second(now)), remove_finalizer=True)
    resources = may_hold(state, grant)
    if not resources:
        return ended
    return Step(
        iam=tuple(IamChange(resource, state.owners) for resource in resources),
        on_success=ended,
        on_failure=revocation_failing(state, now),
        on_retry=revocation_failing(state, now),
    )


def extended(state: RequestState, now: datetime, successor: str) -> Step:
    """Its access continues as `successor`'s, whose IAM write replaced this one's bindings: end
    without touching IAM (what is there is the successor's now)."""
    ended = transition(state, now, Phase.EXTENDED, Reason.EXTENDED, f"continued by {successor}")
    return replace(
        ended,
        record_ended=Ended(Phase.EXTENDED, Reason.EXTENDED, truncate_to_second(now)),
        remove_finalizer=True,
    )


def may_hold(state: RequestState, grant: Grant | None) -> tuple[str, ...]:
    """Where this request may have bindings: what its record says it holds; else, if its status
    suggests an IAM write may have happened (a crash before the record), where that would be."""
    if state.records.held is not None:
        return (state.records.held.resource,)
    if state.shown.phase not in HOLDING and not state.shown.resources and not state.records.tampered:
        return ()
    guesses = set(state.shown.resources) | ({grant.resource} if grant is not None else set())
    return tuple(sorted(guesses))


def revocation_failing(state: RequestState, now: datetime) -> Step:
    """Shown while IAM refuses to remove the bindings: the phase stays (access is still held)."""
    condition = set_condition(
        state.shown.conditions,
        {
            "type": REVOCATION_FAILING,
            "status": "True",
            "reason": Reason.IAM_REFUSED,
            "message": "IAM refused to remove the bindings; access is still held and removal is retried",
            "observedGeneration": state.generation,
        },
        now,
    )
    kept = [c for c in state.shown.conditions if c.get("type") != REVOCATION_FAILING]
    return Step(
        status={"conditions": [*map(dict, kept), condition]},
        event=Event("Warning", Reason.REVOCATION_FAILING, str(condition["message"])),
    )


def on_delete(state: RequestState, grant: Grant | None, now: datetime) -> Step:
    actor = state.records.deleted_by
    who = f" by {actor.user}" if actor else ""
    if state.records.held is not None:
        return finish(
            state,
            grant,
            now,
            Phase.REVOKED,
            Reason.DELETED,
            f"the request was deleted{who}; access revoked",
            actor,
        )
    resources = may_hold(state, grant)
    if resources:
        return Step(
            iam=tuple(IamChange(resource, state.owners) for resource in resources),
            on_success=Step(remove_finalizer=True),
            on_failure=revocation_failing(state, now),
            on_retry=revocation_failing(state, now),
        )
    if state.has_finalizer:
        return Step(remove_finalizer=True)
    return Step()


def after_end(state: RequestState, ended: Ended, now: datetime, retention: timedelta) -> Step:
    if state.has_finalizer:
        return Step(remove_finalizer=True)
    if state.shown.phase is not ended.phase and not state.deleting:
        # Someone else's status write: show what really happened again (no Event: nothing did).
        restored = transition(
            state,
            now,
            ended.phase,
            ended.reason,
            f"ended {format_time(ended.at)} ({ended.reason}); this status was restored from the operator's "
            "sealed record after it was changed by someone else",
            extra={"endedAt": format_time(ended.at), "endedBy": _ended_by(state.records, ended)},
        )
        return replace(restored, event=None)
    if now >= ended.at + retention:
        return Step(delete=True, notes=(f"history retention {format_duration(retention)} passed",))
    return Step(requeue_at=ended.at + retention)


def _ended_by(records: Records, ended: Ended) -> str | None:
    """Who ended it, from the sealed records: the deleter, or the one who revoked or withdrew it."""
    if ended.reason == Reason.DELETED:
        actor = records.deleted_by
    elif ended.reason in (Reason.REVOKED_BY_REQUESTER, Reason.REVOKED_BY_ADMIN, Reason.WITHDRAWN):
        actor = records.revoked_by
    else:
        actor = None
    return actor.shown if actor else None
