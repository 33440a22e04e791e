"""The ActivationRequest state machine: from what can be trusted now, what happens next.

`decide(state, grant, now, ...)` makes at most one transition and says which effects carry it
out (IAM changes, a status to show, an Event, a sealed record, a finalizer). It is judged afresh
every time from the sealed spec, the grant *as it is now*, the approvals counted *now*, the
operator's sealed records and the clock; `status` is only what the operator shows and is never
read as evidence (a status that says Active, Approved or lists other bindings changes nothing).

- A request that holds nothing is judged in full (`eligibility.check_request`, the approval rule
  with `approvals.tally`) whenever anything it depends on changes. When it may start, its window
  is sealed as `jitaccess.dev/activation` *before* anything reaches IAM (told as Activating, and
  shown so where the status would otherwise say it waits, or while IAM is slow); from then on
  every step, judged afresh on the sealed request, writes exactly that window, rendered
  afresh from the record, the spec and the grant — a retry, a crash or a restart can never move
  or extend it. An IAM write always *replaces* whatever bindings carry this request's reference on
  that resource, so a retry never leaves two.
- A request that holds access is judged again against the grant as it is now on every change;
  anything the grant no longer covers ends it (`EligibilityChanged`), removing the bindings first.
- An end is sealed into `jitaccess.dev/ended` after its status is shown; from then on nothing
  starts again, whatever status says.

What a step is lives in `steps.py`; how a request ends in `endings.py`; waiting for approval in
`awaiting.py`; held access judged again in `holding.py`; what its status shows of its approvals in
`approval_status.py` and of a break-glass review in `review_steps.py`; extensions in
`extensions.py`; who may end it in `ending_access.py`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from jitaccess.api.bindings import Activation, render
from jitaccess.api.errors import FieldError, join_errors
from jitaccess.api.names import normal_member
from jitaccess.api.objects import Decision, Grant, RequestSpec
from jitaccess.api.phases import JUDGED, Phase
from jitaccess.api.reasons import Reason
from jitaccess.api.times import format_time, truncate_to_second
from jitaccess.policy.approval_status import (
    approved_condition,
    counted_record,
    reports_for,
    with_approvals,
)
from jitaccess.policy.approvals import tally
from jitaccess.policy.awaiting import approval_subject, await_approval
from jitaccess.policy.break_glass import request_errors as break_glass_errors
from jitaccess.policy.conditions import REVIEWED, set_condition
from jitaccess.policy.eligibility import Terms, check_request, window_errors
from jitaccess.policy.endings import after_end, extended, finish, on_delete
from jitaccess.policy.extensions import (
    Related,
    continuing_window,
    extension_errors,
    needs_no_approval,
)
from jitaccess.policy.holding import ended_early, still_covered
from jitaccess.policy.records import ACTIVATION, ENDED, Held
from jitaccess.policy.review_steps import activated_event as break_glass_activation
from jitaccess.policy.review_steps import review_obligation, review_of, review_step, reviewed_after, sooner
from jitaccess.policy.steps import IamChange, RequestState, Step, transition

# Ends judged from the grant and the approvals as the operator knows them: a cache that is not yet
# complete (a restart, a watch that lags) must not end a request, so these are confirmed on fresh reads.
NOTHING_RELATED = Related()
ENDS_BY_ELIGIBILITY = frozenset(
    {
        Reason.ELIGIBILITY_CHANGED,
        Reason.ELIGIBILITY_REMOVED,
        Reason.ELIGIBILITY_EXPIRED,
        Reason.APPROVAL_TIMEOUT,
    }
)


def decide(
    state: RequestState,
    grant: Grant | None,
    now: datetime,
    retention: timedelta,
    decisions: tuple[Decision, ...] = (),
    grant_error: str = "",
    related: Related = NOTHING_RELATED,
) -> Step:
    """The next transition of `state`, given its grant as it is now (None: missing or invalid,
    `grant_error` says which), the approvals filed for it, the requests it extends or is extended
    by, and the time."""
    records = state.records
    if records.ended is not None:
        ending = after_end(state, records.ended, now, retention)
        return reviewed_after(ending, state, grant, now, decisions)
    if state.deleting:
        return on_delete(state, grant, now)
    if not state.has_finalizer:
        return Step(add_finalizer=True)
    if ACTIVATION in records.tampered or ENDED in records.tampered:
        which = " and ".join(name for name in (ACTIVATION, ENDED) if name in records.tampered)
        return finish(
            state,
            grant,
            now,
            Phase.REVOKED,
            Reason.RECORD_TAMPERED,
            f"the operator's record {which} on this request does not carry a valid seal: someone other than "
            "the operator changed it, or the attestation key was rotated. The bindings the operator can "
            "prove its own were removed; any sealed under another key end by their IAM condition. File a "
            "new request.",
        )
    spec = state.spec
    if spec is None:
        return finish(
            state, grant, now, Phase.REJECTED, Reason.INVALID_SPEC, join_errors(list(state.spec_errors))
        )
    if not state.attested:
        return finish(
            state,
            grant,
            now,
            Phase.REJECTED,
            Reason.ADMISSION_BYPASSED,
            "this request does not carry a valid jitaccess admission seal (jitaccess.dev/admitted) for its "
            "spec: it was stored without the admission webhooks, or changed after them, so who asked for it "
            "is unknown; create it again with the webhooks installed",
        )
    if records.held is not None:
        if related.continued_by is not None:
            return extended(state, now, related.continued_by)
        return _decide_holding(state, spec, records.held, grant, now, decisions, grant_error, related)
    return _decide_waiting(state, spec, grant, now, decisions, grant_error, related)


# -- holding access -------------------------------------------------------------------------


def _decide_holding(
    state: RequestState,
    spec: RequestSpec,
    held: Held,
    grant: Grant | None,
    now: datetime,
    decisions: tuple[Decision, ...],
    grant_error: str,
    related: Related,
) -> Step:
    early = ended_early(state, spec, held, grant, now, decisions, grant_error)
    if early is not None:
        return early
    assert grant is not None
    lost, reports, counted = still_covered(state, spec, held, grant, decisions, related)
    if lost:
        ended = finish(
            state,
            grant,
            now,
            Phase.REVOKED,
            Reason.ELIGIBILITY_CHANGED,
            f"access revoked: grant {grant.name} no longer covers it: {join_errors(lost)}",
        )
        return replace(ended, reports=reports)
    if now >= held.end:
        ended = finish(
            state, grant, now, Phase.EXPIRED, Reason.EXPIRED, f"access ended at {format_time(held.end)}"
        )
        return replace(ended, reports=reports)
    if state.shown.phase is Phase.ACTIVE and state.shown.expires_at == format_time(held.end):
        look = Step(requeue_at=_next_look(held.end, grant), reports=reports)
        found = review_of(state, decisions)
        if found is not None:
            return sooner(look, review_step(state, found, held, now))
        return look
    # The record holds the window; the status does not show it Active yet (the write is due, a
    # crash came between them, or someone else wrote the status): write exactly that window
    # (an idempotent replace of this request's bindings), then show it, with the approvals as
    # counted now. Never a new window.
    written = _write(state, grant, held, now)
    if counted is not None:
        approved = approved_condition(counted, state, now)
        written = with_approvals(written, approved, counted_record(decisions, counted))
    return replace(written, reports=reports)


def _active(state: RequestState, held: Held, now: datetime, grant: Grant, *, announce: bool) -> Step:
    """The Active status (and, when the request just got there, its Event) for what is held."""
    activation = _activation(state, held, grant)
    step = transition(
        state,
        now,
        Phase.ACTIVE,
        Reason.ACTIVATED,
        f"{', '.join(held.roles)} on {held.resource} until {format_time(held.end)}",
        extra={
            "activatedAt": format_time(held.activated_at or held.start),
            "expiresAt": format_time(held.end),
            "bindings": [binding.to_status() for binding in render(activation)],
        },
        ready=True,
        requeue_at=_next_look(held.end, grant),
    )
    if held.review_due is not None and step.status:
        event, flag = break_glass_activation(held)
        conditions = [c for c in step.status["conditions"] if c.get("type") != REVIEWED]
        if state.shown.condition(REVIEWED):  # a review may have come while it was Activating
            conditions.append(dict(state.shown.condition(REVIEWED)))
        else:
            conditions.append(set_condition([], {**flag, "observedGeneration": state.generation}, now))
        step = replace(step, event=event, status={**step.status, "conditions": conditions})
    return step if announce else replace(step, event=None)


# -- not holding anything yet ---------------------------------------------------------------


def _decide_waiting(
    state: RequestState,
    spec: RequestSpec,
    grant: Grant | None,
    now: datetime,
    decisions: tuple[Decision, ...],
    grant_error: str,
    related: Related,
) -> Step:
    extends = related.extends
    judged = state.shown.phase in JUDGED  # only picks the words of a refusal
    if (before := _before_judging(state, spec, grant, now, grant_error, judged)) is not None:
        return before
    assert grant is not None and spec.requester
    requester = normal_member(spec.requester)
    terms, errors = check_request(spec, requester, grant, state.created)
    if terms is not None and (outside := window_errors(grant, now, spec.start_time)):
        return finish(state, grant, now, Phase.REJECTED, outside[0].reason, join_errors(outside))
    if terms is None:
        reason = Reason.ELIGIBILITY_CHANGED if judged else _refusal_reason(errors)
        prefix = f"grant {grant.name} no longer allows it: " if judged else ""
        return finish(state, grant, now, Phase.REJECTED, reason, prefix + join_errors(errors))
    refused = break_glass_errors(spec, grant, terms.duration) + extension_errors(
        spec, extends, grant, now, related.extends_taken_by
    )
    if refused:
        return finish(state, grant, now, Phase.REJECTED, refused[0].reason, join_errors(refused))
    if spec.break_glass or grant.approval is None:
        return _start(state, spec, grant, terms.roles, terms.duration, (), now, extends)
    if needs_no_approval(spec, related, grant):
        carried = extends.records.held.approvers if extends and extends.records.held else ()
        return _start(state, spec, grant, terms.roles, terms.duration, carried, now, extends)
    return _approved_start(state, spec, grant, terms, now, decisions, extends)


def _before_judging(
    state: RequestState, spec: RequestSpec, grant: Grant | None, now: datetime, grant_error: str, judged: bool
) -> Step | None:
    """Withdrawn, nobody to give access to, or no grant: ended before anything is judged."""
    if spec.revoke:
        actor = state.records.revoked_by
        by = f" by {actor.shown}" if actor else ""
        message = f"withdrawn{by} before activation"
        return finish(state, grant, now, Phase.WITHDRAWN, Reason.WITHDRAWN, message, ended_by=actor)
    if not spec.requester:
        message = "spec.requester: is missing; it names who gets access (e.g. user:you@example.com)"
        return finish(state, grant, now, Phase.REJECTED, Reason.NO_REQUESTER, message)
    if grant is None:
        why = grant_error or f"spec.grant: EligibleGrant {spec.grant} does not exist"
        reason = Reason.ELIGIBILITY_REMOVED if judged else Reason.GRANT_NOT_FOUND
        return finish(state, grant, now, Phase.REJECTED, reason, why)
    return None


def _approved_start(
    state: RequestState,
    spec: RequestSpec,
    grant: Grant,
    terms: Terms,
    now: datetime,
    decisions: tuple[Decision, ...],
    extends: RequestState | None = None,
) -> Step:
    """Start once the grant's approval rule is met; until then wait (or end: denied, timed out)."""
    assert grant.approval is not None
    requester = normal_member(spec.requester or "")
    subject = approval_subject(state, grant, terms.resource, terms.roles, terms.duration_s)
    counted = tally(decisions, requester, grant.approval, subject)
    reports = reports_for(decisions, counted)
    approved = approved_condition(counted, state, now)
    record = counted_record(decisions, counted)
    waiting = await_approval(state, grant, counted, now, approved, record)
    if waiting is not None:
        look = waiting.requeue_at
        if grant.not_after is not None and (look is None or grant.not_after < look):
            look = grant.not_after  # unanswered by then, it is rejected
        return replace(waiting, reports=reports, requeue_at=look)
    step = _start(state, spec, grant, terms.roles, terms.duration, counted.approved_by, now, extends)
    return replace(with_approvals(step, approved, record), reports=reports)


def _start(
    state: RequestState,
    spec: RequestSpec,
    grant: Grant,
    roles: tuple[str, ...],
    duration: timedelta,
    approvers: tuple[str, ...],
    now: datetime,
    extends: RequestState | None = None,
) -> Step:
    """Scheduled until its start; then the write of what the judgement allows."""
    start = truncate_to_second(spec.start_time or now)
    if start > now:
        if state.shown.phase is Phase.SCHEDULED:
            return Step(requeue_at=start)
        return transition(
            state,
            now,
            Phase.SCHEDULED,
            Reason.SCHEDULED,
            f"{', '.join(roles)} on {grant.resource} from {format_time(start)}",
            requeue_at=start,
        )
    # A scheduled request that starts late still ends when it was booked to end; an extension
    # continues its predecessor's window; no access outlives the grant's eligibility.
    continuing = continuing_window(extends, now, duration) if spec.extends else None
    begins, ends = continuing or (start, start + duration)
    end = truncate_to_second(min(ends, grant.not_after or ends))
    if end <= now:
        return finish(
            state,
            grant,
            now,
            Phase.EXPIRED,
            Reason.WINDOW_PASSED,
            f"the booked window ended at {format_time(end)}",
        )
    held = Held(
        resource=grant.resource,
        roles=roles,
        member=normal_member(spec.requester or ""),
        start=truncate_to_second(begins),
        end=end,
        approvers=approvers,
        activated_at=truncate_to_second(now),
        continues=(extends.name, extends.uid) if continuing and extends is not None else None,
        asked=duration if end - truncate_to_second(begins) != duration else None,
        **review_obligation(spec, grant, now),
    )
    return _intend(state, grant, held, now)


def _intend(state: RequestState, grant: Grant, held: Held, now: datetime) -> Step:
    """Seal the window before anything reaches IAM: every later step (the write that follows, a
    retry, a crash, a restart) is judged afresh on the sealed request and writes exactly this
    window, so no retry can ever move or extend it. Activating is told (audit line, notices) but
    written to the status only over a phase that would otherwise claim the request still waits
    (AwaitingApproval, Scheduled): a new request goes from no phase to Active in one status write,
    and shows Activating only while IAM keeps the write waiting (`on_slow`, `on_retry`)."""
    bindings = render(_activation(state, held, grant))
    intent = transition(
        state,
        now,
        Phase.ACTIVATING,
        Reason.ACTIVATING,
        f"writing {len(bindings)} binding(s) on {grant.resource}",
        extra={
            "expiresAt": format_time(held.end),
            "bindings": [binding.to_status() for binding in bindings],
        },
    )
    quiet = replace(intent.event, posted=False) if intent.event is not None else None
    return replace(intent, record_held=held, event=quiet, status_told_only=state.shown.phase is None)


def _write(state: RequestState, grant: Grant, held: Held, now: datetime) -> Step:
    """Write the sealed window to IAM, then show Active; on a refusal, end ActivationFailed."""
    bindings = tuple(render(_activation(state, held, grant)))
    # A status that names another resource may hint at an earlier attempt there: removed first.
    changes = [
        IamChange(resource, state.owners) for resource in state.shown.resources if resource != held.resource
    ]
    changes.append(IamChange(held.resource, state.replaced, bindings))
    active = _active(state, held, now, grant, announce=state.shown.phase is not Phase.ACTIVE)
    failed = finish(
        state,
        grant,
        now,
        Phase.ACTIVATION_FAILED,
        Reason.IAM_REFUSED,
        "IAM refused the change, nothing was granted",
    )
    retrying = transition(
        state,
        now,
        Phase.ACTIVATING,
        Reason.ACTIVATING,
        f"writing {len(bindings)} binding(s) on {held.resource}",
        extra={"expiresAt": format_time(held.end), "bindings": [binding.to_status() for binding in bindings]},
    )
    shown = replace(retrying, event=None)
    return Step(iam=tuple(changes), on_success=active, on_failure=failed, on_retry=shown, on_slow=shown)


def _activation(state: RequestState, held: Held, grant: Grant | None) -> Activation:
    spec = state.spec
    # The sealed window, never longer; shorter if the grant's eligibility now ends sooner.
    end = min(held.end, grant.not_after) if grant is not None and grant.not_after is not None else held.end
    return Activation(
        resource=held.resource,
        roles=held.roles,
        member=held.member,
        start=held.start,
        end=max(end, held.start),
        justification=spec.justification if spec else "",
        approvers=held.approvers,
        reference=state.reference,
    )


def _next_look(end: datetime, grant: Grant) -> datetime:
    """When to look at held access again: its end, or the grant's notAfter if that comes first."""
    return min(end, grant.not_after) if grant.not_after is not None else end


def _refusal_reason(errors: list[FieldError]) -> str:
    return (
        Reason.NOT_ELIGIBLE
        if any(e.reason == Reason.NOT_ELIGIBLE for e in errors)
        else Reason.INVALID_REQUEST
    )
