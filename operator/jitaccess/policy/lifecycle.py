"""The ActivationRequest state machine: from what can be trusted now, what happens next.

`decide(state, grant, now, ...)` makes at most one transition and says which effects carry it
out (IAM changes, a status to show, an Event, a sealed record, a finalizer). It is judged afresh
every time from the sealed spec, the grant *as it is now*, the approvals counted *now*, the
operator's sealed records and the clock; `status` is only what the operator shows and is never
read as evidence (a status that says Active, Approved or lists other bindings changes nothing).

- A request that holds nothing is judged in full (`eligibility.check_request`, the approval rule
  with `approvals.tally`) whenever anything it depends on changes. When it may start, its window
  is sealed as `jitaccess.dev/activation` *before* anything reaches IAM (and shown as Activating,
  with the bindings to be written); from then on every step writes exactly that window, rendered
  afresh from the record, the spec and the grant — a retry, a crash or a restart can never move
  or extend it. An IAM write always *replaces* whatever bindings carry this request's reference on
  that resource, so a retry never leaves two.
- A request that holds access is judged again against the grant as it is now on every change;
  anything the grant no longer covers ends it (`EligibilityChanged`), removing the bindings first.
- An end is sealed into `jitaccess.dev/ended` after its status is shown; from then on nothing
  starts again, whatever status says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from jitaccess.api.bindings import Activation, Binding, Reference, render
from jitaccess.api.durations import format_duration
from jitaccess.api.errors import FieldError, join_errors
from jitaccess.api.names import normal_member
from jitaccess.api.objects import Decision, Grant, RequestSpec, parse_request_spec
from jitaccess.api.phases import HOLDING, JUDGED, TERMINAL, Phase, phase_of
from jitaccess.api.reasons import Reason
from jitaccess.api.times import format_time, parse_time, truncate_to_second
from jitaccess.policy.admission import attestation_valid
from jitaccess.policy.approvals import Subject, Tally, spec_digest, tally, terms_digest
from jitaccess.policy.conditions import APPROVED, READY, REVOCATION_FAILING, set_condition
from jitaccess.policy.eligibility import check_request, held_errors
from jitaccess.policy.records import ACTIVATION, ENDED, FINALIZER, Actor, Ended, Held, Records, read_records

__all__ = ["FINALIZER", "HOLDING", "TERMINAL", "Phase"]

# Ends judged from the grant and the approvals as the operator knows them: a cache that is not yet
# complete (a restart, a watch that lags) must not end a request, so these are confirmed on fresh reads.
ENDS_BY_ELIGIBILITY = frozenset(
    {Reason.ELIGIBILITY_CHANGED, Reason.ELIGIBILITY_REMOVED, Reason.APPROVAL_TIMEOUT}
)


@dataclass(frozen=True)
class Shown:
    """What the request's status shows now: used to avoid writing it twice and to word messages,
    never to decide what is granted."""

    phase: Phase | None = None
    conditions: tuple[Mapping[str, Any], ...] = ()
    approvals: tuple[Mapping[str, Any], ...] = ()
    expires_at: str | None = None
    # Resources its status.bindings name: where to look for leftovers when it ends (removal only).
    resources: tuple[str, ...] = ()

    def condition(self, kind: str) -> Mapping[str, Any]:
        return next((c for c in self.conditions if c.get("type") == kind), {})


@dataclass(frozen=True)
class RequestState:
    """An ActivationRequest as the lifecycle sees it."""

    namespace: str
    name: str
    uid: str
    generation: int
    created: datetime
    deleting: bool
    has_finalizer: bool
    spec: RequestSpec | None
    spec_errors: tuple[FieldError, ...]
    spec_digest: str
    attested: bool  # the admission seal verifies for this spec
    records: Records
    reference: Reference  # this request's sealed binding reference
    shown: Shown = field(default_factory=Shown)

    @property
    def owners(self) -> tuple[Reference, ...]:
        """The references whose bindings are this request's: ours, and the pre-MAC form of it."""
        return (self.reference, self.reference.legacy())


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class IamChange:
    """On `resource`, make the bindings carrying one of `owners`' references exactly `hold`
    (nothing, to remove them): one read-modify-write, all of it or none."""

    resource: str
    owners: tuple[Reference, ...]
    hold: tuple[Binding, ...] = ()


@dataclass(frozen=True)
class ApprovalReport:
    """What an ActivationApproval's status should say: whether it counts, and why (not)."""

    name: str
    counted: bool
    message: str


@dataclass(frozen=True)
class Step:
    status: dict[str, Any] | None = None  # fields of .status to set; None: no change
    event: Event | None = None
    iam: tuple[IamChange, ...] = ()
    on_success: Step | None = None
    on_failure: Step | None = None  # after a permanent IAM error; its message is appended
    on_retry: Step | None = None  # shown (once) while a failed IAM change is retried
    record_held: Held | None = None  # sealed into jitaccess.dev/activation
    record_ended: Ended | None = None  # sealed into jitaccess.dev/ended
    requeue_at: datetime | None = None
    add_finalizer: bool = False
    remove_finalizer: bool = False
    delete: bool = False
    reports: tuple[ApprovalReport, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ending(self) -> Ended | None:
        """How the request ends if this step is carried out (after its IAM change, if any)."""
        if self.record_ended is not None:
            return self.record_ended
        return self.on_success.ending if self.on_success is not None else None

    @property
    def changes_anything(self) -> bool:
        return bool(
            self.status
            or self.iam
            or self.record_held
            or self.record_ended
            or self.add_finalizer
            or self.remove_finalizer
            or self.delete
        )


def read_state(body: Mapping[str, Any], key: bytes) -> RequestState:
    """Parse a Kubernetes body into the lifecycle's view of it (never raises on user input)."""
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    spec, errors = parse_request_spec(body)
    namespace, name, uid = (str(metadata.get(k, "")) for k in ("namespace", "name", "uid"))
    bindings = [b for b in status.get("bindings") or () if isinstance(b, Mapping)]
    raw_spec = body.get("spec")
    return RequestState(
        namespace=namespace,
        name=name,
        uid=uid,
        generation=int(metadata.get("generation") or 1),
        created=_time_or(metadata.get("creationTimestamp"), datetime.fromtimestamp(0).astimezone()),
        deleting=bool(metadata.get("deletionTimestamp")),
        has_finalizer=FINALIZER in (metadata.get("finalizers") or []),
        spec=spec,
        spec_errors=tuple(errors),
        spec_digest=spec_digest(raw_spec if isinstance(raw_spec, Mapping) else {}),
        attested=bool(key) and attestation_valid(body, key),
        records=read_records(metadata, key),
        reference=Reference.sealed(namespace, name, uid, key),
        shown=Shown(
            phase=phase_of(status.get("phase")),
            conditions=tuple(c for c in status.get("conditions") or () if isinstance(c, Mapping)),
            approvals=tuple(a for a in status.get("approvals") or () if isinstance(a, Mapping)),
            expires_at=status.get("expiresAt") if isinstance(status.get("expiresAt"), str) else None,
            resources=tuple(sorted({str(b.get("resource")) for b in bindings if b.get("resource")})),
        ),
    )


def decide(
    state: RequestState,
    grant: Grant | None,
    now: datetime,
    retention: timedelta,
    decisions: tuple[Decision, ...] = (),
    grant_error: str = "",
) -> Step:
    """The next transition of `state`, given its grant as it is now (None: missing or invalid,
    `grant_error` says which), the approvals filed for it and the time."""
    records = state.records
    if records.ended is not None:
        return _after_end(state, records.ended, now, retention)
    if state.deleting:
        return _on_delete(state, grant, now)
    if not state.has_finalizer:
        return Step(add_finalizer=True)
    if ACTIVATION in records.tampered or ENDED in records.tampered:
        which = " and ".join(name for name in (ACTIVATION, ENDED) if name in records.tampered)
        return _finish(
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
        return _finish(
            state, grant, now, Phase.REJECTED, Reason.INVALID_SPEC, join_errors(list(state.spec_errors))
        )
    if not state.attested:
        return _finish(
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
        return _decide_holding(state, spec, records.held, grant, now, decisions, grant_error)
    return _decide_waiting(state, spec, grant, now, decisions, grant_error)


# -- holding access -------------------------------------------------------------------------


def _decide_holding(
    state: RequestState,
    spec: RequestSpec,
    held: Held,
    grant: Grant | None,
    now: datetime,
    decisions: tuple[Decision, ...],
    grant_error: str,
) -> Step:
    if spec.revoke:
        reason, message, actor = _revoked(state)
        return _finish(state, grant, now, Phase.REVOKED, reason, message, ended_by=actor)
    if grant is None:
        why = grant_error or f"EligibleGrant {spec.grant} was deleted"
        return _finish(state, grant, now, Phase.REVOKED, Reason.ELIGIBILITY_REMOVED, f"access revoked: {why}")
    requester = normal_member(spec.requester or "")
    lost = held_errors(held.resource, held.roles, held.end - held.start, spec, requester, grant)
    counted: Tally | None = None
    if grant.approval is not None:
        subject = _subject(state, grant, held.resource, held.roles, held.duration_s)
        counted = tally(decisions, requester, grant.approval, subject)
        if not counted.met:
            lost.append(
                FieldError("approval", f"the grant's approval rule is no longer met ({counted.summary()})")
            )
    reports = _reports(decisions, counted)
    if lost:
        ended = _finish(
            state,
            grant,
            now,
            Phase.REVOKED,
            Reason.ELIGIBILITY_CHANGED,
            f"access revoked: grant {grant.name} no longer covers it: {join_errors(lost)}",
        )
        return replace(ended, reports=reports)
    if now >= held.end:
        ended = _finish(
            state, grant, now, Phase.EXPIRED, Reason.EXPIRED, f"access ended at {format_time(held.end)}"
        )
        return replace(ended, reports=reports)
    if state.shown.phase is Phase.ACTIVE and state.shown.expires_at == format_time(held.end):
        return Step(requeue_at=held.end, reports=reports)
    # The record holds the window; the status does not show it Active yet (the write is due, a
    # crash came between them, or someone else wrote the status): write exactly that window
    # (an idempotent replace of this request's bindings), then show it. Never a new window.
    return replace(_write(state, grant, held, now), reports=reports)


def _active(state: RequestState, held: Held, now: datetime, grant: Grant, *, announce: bool) -> Step:
    """The Active status (and, when the request just got there, its Event) for what is held."""
    activation = _activation(state, held, grant)
    step = _transition(
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
        requeue_at=held.end,
    )
    return step if announce else replace(step, event=None)


def _revoked(state: RequestState) -> tuple[str, str, Actor | None]:
    actor = state.records.revoked_by
    if actor is None:
        return Reason.REVOKED, "revoked early (spec.revoke); admission recorded no actor", None
    if actor.as_requester:
        return Reason.REVOKED_BY_REQUESTER, f"revoked early by the requester ({actor.user})", actor
    return Reason.REVOKED_BY_ADMIN, f"revoked early by {actor.user}, who is not the requester", actor


# -- not holding anything yet ---------------------------------------------------------------


def _decide_waiting(
    state: RequestState,
    spec: RequestSpec,
    grant: Grant | None,
    now: datetime,
    decisions: tuple[Decision, ...],
    grant_error: str,
) -> Step:
    judged = state.shown.phase in JUDGED  # only picks the words of a refusal
    if spec.revoke:
        actor = state.records.revoked_by
        by = f" by {actor.user}" if actor else ""
        return _finish(
            state,
            grant,
            now,
            Phase.WITHDRAWN,
            Reason.WITHDRAWN,
            f"withdrawn{by} before activation",
            ended_by=actor,
        )
    if not spec.requester:
        return _finish(
            state,
            grant,
            now,
            Phase.REJECTED,
            Reason.NO_REQUESTER,
            "spec.requester: is missing; it names who gets access (e.g. user:you@example.com)",
        )
    requester = normal_member(spec.requester)
    if grant is None:
        why = grant_error or f"spec.grant: EligibleGrant {spec.grant} does not exist"
        return _finish(
            state,
            grant,
            now,
            Phase.REJECTED,
            Reason.ELIGIBILITY_REMOVED if judged else Reason.GRANT_NOT_FOUND,
            why,
        )
    terms, errors = check_request(spec, requester, grant, state.created)
    if terms is None:
        reason = Reason.ELIGIBILITY_CHANGED if judged else _refusal_reason(errors)
        prefix = f"grant {grant.name} no longer allows it: " if judged else ""
        return _finish(state, grant, now, Phase.REJECTED, reason, prefix + join_errors(errors))
    approvers: tuple[str, ...] = ()
    approved: dict[str, Any] | None = None
    record: list[dict[str, Any]] = []
    reports: tuple[ApprovalReport, ...] = ()
    if grant.approval is not None:
        subject = _subject(state, grant, terms.resource, terms.roles, terms.duration_s)
        counted = tally(decisions, requester, grant.approval, subject)
        reports = _reports(decisions, counted)
        approved = _approved(counted, state, now)
        record = _record(decisions, counted)
        waiting = _await(state, grant, counted, subject.deadline, now, approved, record)
        if waiting is not None:
            return replace(waiting, reports=reports)
        approvers = counted.approved_by
    step = _start(state, spec, grant, terms.roles, terms.duration, approvers, now)
    if approved is not None:
        step = _with_approvals(step, approved, record)
    return replace(step, reports=reports)


def _await(
    state: RequestState,
    grant: Grant,
    counted: Tally,
    deadline: datetime | None,
    now: datetime,
    approved: dict[str, Any],
    record: list[dict[str, Any]],
) -> Step | None:
    """Denied, timed out, or still waiting for approval; None when the approval rule is met."""
    assert grant.approval is not None and deadline is not None
    if counted.denied_by:
        return _with_approvals(
            _finish(state, grant, now, Phase.DENIED, Reason.DENIED, f"denied by {counted.denied_by}"),
            approved,
            record,
        )
    if counted.met:
        return None
    if state.shown.phase in (Phase.SCHEDULED, Phase.ACTIVATING):
        # It had been approved (or needed no approval) when it was scheduled: the grant changed since.
        return _with_approvals(
            _finish(
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
        return _with_approvals(
            _finish(
                state,
                grant,
                now,
                Phase.EXPIRED,
                Reason.APPROVAL_TIMEOUT,
                f"no approval came within {format_duration(grant.approval.timeout)} ({counted.summary()})",
            ),
            approved,
            record,
        )
    first = state.shown.phase is not Phase.AWAITING_APPROVAL
    if not first and record == [dict(a) for a in state.shown.approvals] and _same(state, approved):
        return Step(requeue_at=deadline)
    step = _transition(
        state,
        now,
        Phase.AWAITING_APPROVAL,
        Reason.APPROVAL_REQUIRED if first else Reason.APPROVAL_RECORDED,
        f"waiting for {grant.approval.min_approvals} approval(s) from {', '.join(grant.approval.approvers)}"
        if first
        else counted.summary(),
        requeue_at=deadline,
    )
    return _with_approvals(step, approved, record)


def _start(
    state: RequestState,
    spec: RequestSpec,
    grant: Grant,
    roles: tuple[str, ...],
    duration: timedelta,
    approvers: tuple[str, ...],
    now: datetime,
) -> Step:
    """Scheduled until its start; then the write of what the judgement allows."""
    start = truncate_to_second(spec.start_time or now)
    if start > now:
        if state.shown.phase is Phase.SCHEDULED:
            return Step(requeue_at=start)
        return _transition(
            state,
            now,
            Phase.SCHEDULED,
            Reason.SCHEDULED,
            f"{', '.join(roles)} on {grant.resource} from {format_time(start)}",
            requeue_at=start,
        )
    # A scheduled request that starts late still ends when it was booked to end.
    end = truncate_to_second(start + duration)
    if end <= now:
        return _finish(
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
        start=start,
        end=end,
        approvers=approvers,
        activated_at=truncate_to_second(now),
    )
    return _intend(state, grant, held, now)


def _intend(state: RequestState, grant: Grant, held: Held, now: datetime) -> Step:
    """Seal the window before anything reaches IAM, and show it: every later step (a retry, a
    crash, a restart) writes exactly this window, so no retry can ever move or extend it."""
    bindings = render(_activation(state, held, grant))
    return replace(
        _transition(
            state,
            now,
            Phase.ACTIVATING,
            Reason.ACTIVATING,
            f"writing {len(bindings)} binding(s) on {grant.resource}",
            extra={
                "expiresAt": format_time(held.end),
                "bindings": [binding.to_status() for binding in bindings],
            },
        ),
        record_held=held,
    )


def _write(state: RequestState, grant: Grant, held: Held, now: datetime) -> Step:
    """Write the sealed window to IAM, then show Active; on a refusal, end ActivationFailed."""
    bindings = tuple(render(_activation(state, held, grant)))
    # A status that names another resource may hint at an earlier attempt there: removed first.
    changes = [
        IamChange(resource, state.owners) for resource in state.shown.resources if resource != held.resource
    ]
    changes.append(IamChange(held.resource, state.owners, bindings))
    active = _active(state, held, now, grant, announce=state.shown.phase is not Phase.ACTIVE)
    failed = _finish(
        state,
        grant,
        now,
        Phase.ACTIVATION_FAILED,
        Reason.IAM_REFUSED,
        "IAM refused the change, nothing was granted",
    )
    retrying = _transition(
        state,
        now,
        Phase.ACTIVATING,
        Reason.ACTIVATING,
        f"writing {len(bindings)} binding(s) on {held.resource}",
        extra={"expiresAt": format_time(held.end), "bindings": [binding.to_status() for binding in bindings]},
    )
    return Step(
        iam=tuple(changes), on_success=active, on_failure=failed, on_retry=replace(retrying, event=None)
    )


def _activation(state: RequestState, held: Held, grant: Grant | None) -> Activation:
    spec = state.spec
    return Activation(
        resource=held.resource,
        roles=held.roles,
        member=held.member,
        start=held.start,
        end=held.end,
        justification=spec.justification if spec else "",
        approvers=held.approvers,
        reference=state.reference,
    )


def _subject(
    state: RequestState, grant: Grant, resource: str, roles: tuple[str, ...], duration_s: int
) -> Subject:
    assert grant.approval is not None
    return Subject(
        uid=state.uid,
        digest=terms_digest(state.uid, state.spec_digest, resource, roles, duration_s),
        deadline=state.created + grant.approval.timeout,
    )


def _refusal_reason(errors: list[FieldError]) -> str:
    return (
        Reason.NOT_ELIGIBLE
        if any(e.reason == Reason.NOT_ELIGIBLE for e in errors)
        else Reason.INVALID_REQUEST
    )


# -- approvals as shown ---------------------------------------------------------------------


def _approved(counted: Tally, state: RequestState, now: datetime) -> dict[str, Any]:
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


def _same(state: RequestState, condition: Mapping[str, Any]) -> bool:
    shown = state.shown.condition(str(condition["type"]))
    return all(shown.get(k) == condition.get(k) for k in ("status", "reason", "message"))


def _record(decisions: tuple[Decision, ...], counted: Tally) -> list[dict[str, Any]]:
    """status.approvals: the decisions that count, in the order they came."""
    names = set(counted.counted)
    return [
        {"approver": d.approver, "decision": d.decision, "comment": d.comment, "time": d.time}
        for d in sorted(decisions, key=lambda d: (d.time, d.name))
        if d.name in names
    ]


def _reports(decisions: tuple[Decision, ...], counted: Tally | None) -> tuple[ApprovalReport, ...]:
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


def _with_approvals(step: Step, condition: dict[str, Any], record: list[dict[str, Any]]) -> Step:
    """The step (and the steps that follow its IAM change) showing the approvals as counted now."""
    follow = {
        name: _with_approvals(getattr(step, name), condition, record)
        for name in ("on_success", "on_failure", "on_retry")
        if getattr(step, name) is not None
    }
    step = replace(step, **follow)
    if step.status is None or "phase" not in step.status:
        return step
    conditions = [c for c in step.status.get("conditions", []) if c.get("type") != APPROVED] + [condition]
    return replace(step, status={**step.status, "conditions": conditions, "approvals": record})


# -- ending ----------------------------------------------------------------------------------


def _finish(
    state: RequestState,
    grant: Grant | None,
    now: datetime,
    phase: Phase,
    reason: str,
    message: str,
    ended_by: Actor | None = None,
) -> Step:
    """End the request: remove whatever it may hold first, then show the end, then seal it."""
    ended = _transition(
        state,
        now,
        phase,
        reason,
        message,
        extra={"endedAt": format_time(now), "endedBy": ended_by.user if ended_by else None},
        event_type="Warning"
        if phase in (Phase.REJECTED, Phase.ACTIVATION_FAILED, Phase.DENIED)
        else "Normal",
    )
    ended = replace(ended, record_ended=Ended(phase, reason, truncate_to_second(now)), remove_finalizer=True)
    resources = _may_hold(state, grant)
    if not resources:
        return ended
    return Step(
        iam=tuple(IamChange(resource, state.owners) for resource in resources),
        on_success=ended,
        on_failure=_revocation_failing(state, now),
        on_retry=_revocation_failing(state, now),
    )


def _may_hold(state: RequestState, grant: Grant | None) -> tuple[str, ...]:
    """Where this request may have bindings: what its record says it holds; else, if its status
    suggests an IAM write may have happened (a crash before the record), where that would be."""
    if state.records.held is not None:
        return (state.records.held.resource,)
    if state.shown.phase not in HOLDING and not state.shown.resources and not state.records.tampered:
        return ()
    guesses = set(state.shown.resources) | ({grant.resource} if grant is not None else set())
    return tuple(sorted(guesses))


def _revocation_failing(state: RequestState, now: datetime) -> Step:
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


def _on_delete(state: RequestState, grant: Grant | None, now: datetime) -> Step:
    actor = state.records.deleted_by
    who = f" by {actor.user}" if actor else ""
    if state.records.held is not None:
        return _finish(
            state,
            grant,
            now,
            Phase.REVOKED,
            Reason.DELETED,
            f"the request was deleted{who}; access revoked",
            actor,
        )
    resources = _may_hold(state, grant)
    if resources:
        return Step(
            iam=tuple(IamChange(resource, state.owners) for resource in resources),
            on_success=Step(remove_finalizer=True),
            on_failure=_revocation_failing(state, now),
            on_retry=_revocation_failing(state, now),
        )
    if state.has_finalizer:
        return Step(remove_finalizer=True)
    return Step()


def _after_end(state: RequestState, ended: Ended, now: datetime, retention: timedelta) -> Step:
    if state.has_finalizer:
        return Step(remove_finalizer=True)
    if state.shown.phase is not ended.phase and not state.deleting:
        # Someone else's status write: show what really happened again (no Event: nothing did).
        restored = _transition(
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
    return actor.user if actor else None


def _transition(
    state: RequestState,
    now: datetime,
    phase: Phase,
    reason: str,
    message: str,
    *,
    extra: dict[str, Any] | None = None,
    ready: bool = False,
    event_type: Literal["Normal", "Warning"] = "Normal",
    requeue_at: datetime | None = None,
) -> Step:
    conditions = [dict(c) for c in state.shown.conditions if c.get("type") not in (READY, REVOCATION_FAILING)]
    conditions.insert(
        0,
        set_condition(
            state.shown.conditions,
            {
                "type": READY,
                "status": "True" if ready else "False",
                "reason": reason,
                "message": message,
                "observedGeneration": state.generation,
            },
            now,
        ),
    )
    if state.shown.condition(REVOCATION_FAILING).get("status") == "True" and phase in TERMINAL:
        conditions.append(
            set_condition(
                state.shown.conditions,
                {
                    "type": REVOCATION_FAILING,
                    "status": "False",
                    "reason": Reason.REMOVED,
                    "message": "the bindings were removed from IAM",
                    "observedGeneration": state.generation,
                },
                now,
            )
        )
    # A merge patch: fields this transition does not own are cleared, not left as someone wrote them.
    cleared = {} if phase in TERMINAL else {"endedAt": None, "endedBy": None}
    status: dict[str, Any] = {
        "phase": phase.value,
        "observedGeneration": state.generation,
        "conditions": conditions,
        **cleared,
        **(extra or {}),
    }
    return Step(status=status, event=Event(event_type, reason, message), requeue_at=requeue_at)


def _time_or(value: object, default: datetime) -> datetime:
    try:
        return parse_time(value)
    except ValueError:
        return default
