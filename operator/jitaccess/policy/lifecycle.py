"""The ActivationRequest state machine: from what is known now, what happens next.

`decide(state, grant, now)` makes at most one transition and says which effects carry it out
(a status to persist, an Event, an IAM change, a finalizer to add or release). The controller
persists the result and calls again until nothing changes, so every step is durable before the
next begins: a crash between any two lines resumes from the last persisted phase. An IAM
change is described together with the step that follows its success or permanent failure; a
transient failure leaves the phase as it is and is retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from jitaccess.api.durations import format_duration
from jitaccess.api.errors import FieldError, join_errors
from jitaccess.api.objects import Approval, Grant, RequestSpec, parse_request_spec
from jitaccess.api.times import format_time, parse_time, truncate_to_second
from jitaccess.policy.admission import attestation_valid
from jitaccess.policy.approvals import Decision, Tally, tally, why_not_counted
from jitaccess.policy.eligibility import check_request, coverage_errors
from jitaccess.policy.identity import requester_of

FINALIZER = "jitaccess.dev/revoke-on-delete"


class Phase(StrEnum):
    PENDING = "Pending"
    REJECTED = "Rejected"
    AWAITING_APPROVAL = "AwaitingApproval"
    DENIED = "Denied"
    SCHEDULED = "Scheduled"
    ACTIVATING = "Activating"
    ACTIVE = "Active"
    ACTIVATION_FAILED = "ActivationFailed"
    EXPIRED = "Expired"
    REVOKED = "Revoked"
    WITHDRAWN = "Withdrawn"


TERMINAL = frozenset(
    {Phase.REJECTED, Phase.DENIED, Phase.ACTIVATION_FAILED, Phase.EXPIRED, Phase.REVOKED, Phase.WITHDRAWN}
)
# Phases in which bindings may exist in IAM (written, or possibly written before a crash).
HOLDING = frozenset({Phase.ACTIVATING, Phase.ACTIVE})


@dataclass(frozen=True)
class Activation:
    """What one activation writes: these roles for this member on this resource, in this window."""

    resource: str
    roles: tuple[str, ...]
    member: str
    start: datetime
    end: datetime
    justification: str
    approvers: tuple[str, ...]
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class RequestState:
    """An ActivationRequest as the lifecycle sees it: parsed spec, persisted status, metadata."""

    namespace: str
    name: str
    uid: str
    generation: int
    created: datetime
    deleting: bool
    has_finalizer: bool
    spec: RequestSpec | None
    spec_errors: tuple[FieldError, ...]
    phase: Phase | None
    bindings: tuple[Mapping[str, Any], ...]
    activated_at: datetime | None
    expires_at: datetime | None
    ended_at: datetime | None
    # Whether the admission webhooks sealed this request; None when admission is not configured.
    attested: bool | None = None
    conditions: tuple[Mapping[str, Any], ...] = ()
    approvals: tuple[Mapping[str, Any], ...] = ()  # the decisions recorded in status


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class IamChange:
    """Bindings to add to or remove from IAM, all together or not at all."""

    kind: Literal["add", "remove"]
    bindings: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True)
class Step:
    status: dict[str, Any] | None = None  # fields of .status to set; None: no change
    event: Event | None = None
    activation: Activation | None = None  # rendered into status.bindings before persisting
    iam: IamChange | None = None
    on_success: Step | None = None
    on_failure: Step | None = None  # after a permanent IAM error; its message is appended
    requeue_at: datetime | None = None
    add_finalizer: bool = False
    remove_finalizer: bool = False
    delete: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def changes_anything(self) -> bool:
        return bool(self.status or self.iam or self.add_finalizer or self.remove_finalizer or self.delete)


def read_state(body: Mapping[str, Any], attestation_key: bytes = b"") -> RequestState:
    """Parse a Kubernetes body into the lifecycle's view of it (never raises on user input)."""
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    spec, errors = parse_request_spec(body)
    phase = status.get("phase")
    return RequestState(
        namespace=metadata.get("namespace", ""),
        name=metadata.get("name", ""),
        uid=metadata.get("uid", ""),
        generation=int(metadata.get("generation") or 1),
        created=_time_or(metadata.get("creationTimestamp"), datetime.fromtimestamp(0).astimezone()),
        deleting=bool(metadata.get("deletionTimestamp")),
        has_finalizer=FINALIZER in (metadata.get("finalizers") or []),
        spec=spec,
        spec_errors=tuple(errors),
        phase=Phase(phase) if phase in Phase.__members__.values() else None,
        bindings=tuple(status.get("bindings") or ()),
        activated_at=_time_or(status.get("activatedAt"), None),
        expires_at=_time_or(status.get("expiresAt"), None),
        ended_at=_time_or(status.get("endedAt"), None),
        attested=attestation_valid(body, attestation_key) if attestation_key else None,
        conditions=tuple(status.get("conditions") or ()),
        approvals=tuple(status.get("approvals") or ()),
    )


def decide(
    state: RequestState,
    grant: Grant | None,
    now: datetime,
    retention: timedelta,
    decisions: tuple[Decision, ...] = (),
) -> Step:
    """The next transition of `state`, given its grant (None: not found), approvals and the time."""
    phase = state.phase
    if state.deleting:
        return _on_delete(state, now)
    if phase in TERMINAL:
        if state.has_finalizer:
            return Step(remove_finalizer=True)
        ended = state.ended_at or state.created
        if now >= ended + retention:
            return Step(delete=True, notes=(f"history retention {format_duration(retention)} passed",))
        return Step(requeue_at=ended + retention)
    if not state.has_finalizer:
        return Step(add_finalizer=True)
    # A new request is judged at once: Pending is where it stands until then, not a step worth
    # a status write and an Event of its own.
    spec = state.spec
    if spec is None:
        return _end(state, now, Phase.REJECTED, "InvalidSpec", join_errors(list(state.spec_errors)))
    if phase in HOLDING:
        return _decide_holding(state, spec, grant, now)
    # Nothing is in IAM yet: Pending, AwaitingApproval or Scheduled.
    if state.attested is False:
        return _end(
            state,
            now,
            Phase.REJECTED,
            "AdmissionBypassed",
            "this request did not pass the jitaccess admission webhooks (no valid jitaccess.dev/admitted "
            "seal), so who asked for it is unknown; create it again with the webhooks installed",
        )
    if spec.revoke:
        return _end(state, now, Phase.WITHDRAWN, "Withdrawn", "withdrawn by the requester before activation")
    requester, identity_errors = requester_of(spec)
    if requester is None:
        return _end(state, now, Phase.REJECTED, "NoRequester", join_errors(identity_errors))
    if grant is None:
        return _end(
            state,
            now,
            Phase.REJECTED,
            "GrantNotFound",
            f"spec.grant: EligibleGrant {spec.grant} does not exist",
        )
    if phase is None or phase is Phase.PENDING:
        return _validate(state, spec, requester, grant, now)
    still = coverage_errors(spec, requester, grant)
    if still:
        return _end(state, now, Phase.REJECTED, "NoLongerEligible", join_errors(still))
    if phase is Phase.AWAITING_APPROVAL and grant.approval is not None:
        return _await_approval(state, spec, requester, grant, grant.approval, decisions, now)
    return _wait_for_start(state, spec, requester, grant, now)


def _validate(state: RequestState, spec: RequestSpec, requester: str, grant: Grant, now: datetime) -> Step:
    terms, errors = check_request(spec, requester, grant, now)
    if terms is None:
        reason = (
            "NotEligible"
            if any(
                error.path in ("spec.requester",) or error.path.startswith("spec.roles") for error in errors
            )
            else "InvalidRequest"
        )
        return _end(state, now, Phase.REJECTED, reason, join_errors(errors))
    if grant.approval is not None:
        needed = grant.approval.min_approvals
        entering = _transition(
            state,
            now,
            Phase.AWAITING_APPROVAL,
            "ApprovalRequired",
            f"waiting for {needed} approval(s) from {', '.join(grant.approval.approvers)}",
            requeue_at=state.created + grant.approval.timeout,
        )
        return _with_approvals(entering, _approved(tally((), requester, grant.approval), state, now), [])
    return _wait_for_start(state, spec, requester, grant, now, validated_from=Phase.PENDING)


def _await_approval(
    state: RequestState,
    spec: RequestSpec,
    requester: str,
    grant: Grant,
    approval: Approval,
    decisions: tuple[Decision, ...],
    now: datetime,
) -> Step:
    counted = tally(decisions, requester, approval)
    record = [
        {"approver": d.approver, "decision": d.decision, "comment": d.comment, "time": d.time}
        for d in sorted(decisions, key=lambda d: (d.time, d.name))
        if why_not_counted(d, requester, approval) is None
    ]
    condition = _approved(counted, state, now)
    if counted.denied_by:
        step = _end(state, now, Phase.DENIED, "Denied", f"denied by {counted.denied_by}")
    elif counted.met:
        step = _wait_for_start(state, spec, requester, grant, now, approvers=counted.approved_by)
    elif now >= state.created + approval.timeout:
        step = _end(
            state,
            now,
            Phase.EXPIRED,
            "ApprovalTimeout",
            f"no approval came within {format_duration(approval.timeout)} ({counted.summary()})",
        )
    elif record != [dict(a) for a in state.approvals]:
        step = _transition(
            state,
            now,
            Phase.AWAITING_APPROVAL,
            "ApprovalRecorded",
            counted.summary(),
            requeue_at=state.created + approval.timeout,
        )
    else:
        return Step(requeue_at=state.created + approval.timeout)
    return _with_approvals(step, condition, record)


def _approved(counted: Tally, state: RequestState, now: datetime) -> dict[str, Any]:
    """The Approved condition: how many of how many, or who denied."""
    return {
        "type": "Approved",
        "status": "True" if counted.met else "False",
        "reason": "Denied" if counted.denied_by else "Approved" if counted.met else "Waiting",
        "message": counted.summary(),
        "lastTransitionTime": format_time(now),
        "observedGeneration": state.generation,
    }


def _with_approvals(step: Step, condition: dict[str, Any], record: list[dict[str, Any]]) -> Step:
    if step.status is None:
        return step
    conditions = [c for c in step.status.get("conditions", []) if c.get("type") != "Approved"] + [condition]
    return replace(step, status={**step.status, "conditions": conditions, "approvals": record})


def _wait_for_start(
    state: RequestState,
    spec: RequestSpec,
    requester: str,
    grant: Grant,
    now: datetime,
    validated_from: Phase | None = None,
    approvers: tuple[str, ...] | None = None,
) -> Step:
    duration = spec.duration or grant.default_duration
    start = truncate_to_second(spec.start_time or now)
    if start > now:
        if state.phase is Phase.SCHEDULED:
            return Step(requeue_at=start)
        return _transition(
            state,
            now,
            Phase.SCHEDULED,
            "Scheduled",
            f"{', '.join(spec.roles or grant.roles)} on {grant.resource} from {format_time(start)}",
            requeue_at=start,
        )
    # A scheduled request that starts late still ends when it was booked to end.
    end = truncate_to_second(start + duration) if spec.start_time else truncate_to_second(now) + duration
    activation = Activation(
        resource=grant.resource,
        roles=spec.roles or grant.roles,
        member=requester,
        start=truncate_to_second(now) if not spec.start_time else start,
        end=end,
        justification=spec.justification,
        approvers=approvers
        if approvers is not None
        else tuple(str(a.get("approver")) for a in state.approvals if a.get("decision") == "Approve"),
        namespace=state.namespace,
        name=state.name,
        uid=state.uid,
    )
    if end <= now:
        return _end(
            state, now, Phase.EXPIRED, "WindowPassed", f"the booked window ended at {format_time(end)}"
        )
    step = _transition(
        state,
        now,
        Phase.ACTIVATING,
        "Activating",
        f"writing {len(activation.roles)} binding(s) on {activation.resource}",
        extra={"expiresAt": format_time(end)},
    )
    return Step(status=step.status, event=step.event, activation=activation, requeue_at=now)


def _decide_holding(state: RequestState, spec: RequestSpec, grant: Grant | None, now: datetime) -> Step:
    requester, _ = requester_of(spec)
    if spec.revoke:
        return _release(state, now, Phase.REVOKED, "RevokedByRequester", "revoked early by the requester")
    if grant is None:
        return _release(
            state, now, Phase.REVOKED, "EligibilityRemoved", f"EligibleGrant {spec.grant} was deleted"
        )
    lost = coverage_errors(spec, requester or "", grant) if requester else []
    if lost or (state.bindings and any(b.get("resource") != grant.resource for b in state.bindings)):
        detail = join_errors(lost) if lost else f"the grant's resource changed to {grant.resource}"
        return _release(state, now, Phase.REVOKED, "EligibilityRemoved", f"no longer covered: {detail}")
    expires = state.expires_at
    if expires is not None and now >= expires:
        return _release(state, now, Phase.EXPIRED, "Expired", f"access ended at {format_time(expires)}")
    if state.phase is Phase.ACTIVATING:
        roles = ", ".join(str(b.get("role")) for b in state.bindings)
        resource = state.bindings[0].get("resource") if state.bindings else grant.resource
        active = _transition(
            state,
            now,
            Phase.ACTIVE,
            "Activated",
            f"{roles} on {resource} until {format_time(expires) if expires else '?'}",
            extra={"activatedAt": format_time(now)},
            ready=True,
            requeue_at=expires,
        )
        failed = _end(
            state, now, Phase.ACTIVATION_FAILED, "IamRefused", "IAM refused the change, nothing was granted"
        )
        return Step(iam=IamChange("add", state.bindings), on_success=active, on_failure=failed)
    return Step(requeue_at=expires)


def _on_delete(state: RequestState, now: datetime) -> Step:
    if state.phase in HOLDING and state.bindings:
        released = _release(state, now, Phase.REVOKED, "Deleted", "the request was deleted; access revoked")
        assert released.on_success is not None
        return Step(
            iam=released.iam,
            on_success=Step(
                status=released.on_success.status, event=released.on_success.event, remove_finalizer=True
            ),
        )
    if state.has_finalizer:
        return Step(remove_finalizer=True)
    return Step()


def _release(state: RequestState, now: datetime, phase: Phase, reason: str, message: str) -> Step:
    """End a request that may hold bindings: remove them first, then record the end."""
    ended = _end(state, now, phase, reason, message)
    if not state.bindings:
        return ended
    return Step(iam=IamChange("remove", state.bindings), on_success=ended)


def _end(state: RequestState, now: datetime, phase: Phase, reason: str, message: str) -> Step:
    warning = phase in (Phase.REJECTED, Phase.ACTIVATION_FAILED, Phase.DENIED)
    return _transition(
        state,
        now,
        phase,
        reason,
        message,
        extra={"endedAt": format_time(now)},
        event_type="Warning" if warning else "Normal",
    )


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
    status: dict[str, Any] = {
        "phase": phase.value,
        "observedGeneration": state.generation,
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "reason": reason,
                "message": message,
                "lastTransitionTime": format_time(now),
                "observedGeneration": state.generation,
            },
            *(c for c in state.conditions if c.get("type") != "Ready"),  # e.g. Approved, kept as it was
        ],
        **(extra or {}),
    }
    return Step(status=status, event=Event(event_type, reason, message), requeue_at=requeue_at)


def _time_or(value: object, default: datetime | None) -> datetime | None:
    try:
        return parse_time(value)
    except ValueError:
        return default
