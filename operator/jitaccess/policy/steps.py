"""What the lifecycle works on and what it answers: a request as it sees it (`RequestState`, read
from a body by `read_state`) and one transition (`Step`: a status to show, an Event, IAM changes,
sealed records, the finalizer). Pure data; `lifecycle.decide` chooses the step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from jitaccess.api.bindings import Binding, Reference
from jitaccess.api.bodies import generation_of, metadata_of, status_of
from jitaccess.api.errors import FieldError
from jitaccess.api.objects import RequestSpec, parse_request_spec
from jitaccess.api.phases import TERMINAL, Phase, phase_of
from jitaccess.api.reasons import Reason
from jitaccess.api.times import parse_time
from jitaccess.policy.admission import attestation_valid
from jitaccess.policy.approvals import Waiting, spec_digest
from jitaccess.policy.conditions import READY, REVOCATION_FAILING, set_condition
from jitaccess.policy.records import (
    ACTIVATION,
    ENDED,
    FINALIZER,
    Ended,
    Held,
    Identity,
    Records,
    ended_payload,
    held_payload,
    read_records,
    seal_record,
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
    # The reference of the request whose access this one continues (its sealed record says which).
    continued: Reference | None = None

    @property
    def owners(self) -> tuple[Reference, ...]:
        """The references whose bindings are this request's: ours, and the pre-MAC form of it."""
        return (self.reference, self.reference.legacy())

    @property
    def replaced(self) -> tuple[Reference, ...]:
        """What this request's IAM write replaces: its own bindings, and those of the request whose
        access it continues (in the same read-modify-write: no gap, never two)."""
        if self.continued is None:
            return self.owners
        return (*self.owners, self.continued, self.continued.legacy())


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str
    # False for a step the status already tells and the next Event follows at once (Activating):
    # it is still an audit line and may still tell people, but it is not a Kubernetes Event.
    posted: bool = True


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
    on_slow: Step | None = None  # shown (once) when IAM keeps its change waiting (SLOW_IAM_S)
    record_held: Held | None = None  # sealed into jitaccess.dev/activation
    # `status` is told (audit, notices) but not written: the next write shows where it got.
    status_told_only: bool = False
    record_ended: Ended | None = None  # sealed into jitaccess.dev/ended
    requeue_at: datetime | None = None
    add_finalizer: bool = False
    remove_finalizer: bool = False
    delete: bool = False
    reports: tuple[ApprovalReport, ...] = ()
    notes: tuple[str, ...] = ()
    waiting: Waiting | None = None  # the approval step that waits, whose approvers are told

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


def metadata_patch(metadata: Mapping[str, Any], step: Step, key: bytes, *, held: bool) -> dict[str, Any]:
    """The metadata merge patch of one side of `step`: before its status is shown (`held`: the
    sealed window, our finalizer added) or after it (the sealed ending, our finalizer released)."""
    who = Identity(
        str(metadata.get("namespace", "")), str(metadata.get("name", "")), str(metadata.get("uid", ""))
    )
    patch: dict[str, Any] = {}
    if held and step.record_held is not None:
        patch["annotations"] = {ACTIVATION: seal_record(ACTIVATION, held_payload(step.record_held), who, key)}
    if not held and step.record_ended is not None:
        patch["annotations"] = {ENDED: seal_record(ENDED, ended_payload(step.record_ended), who, key)}
    current = list(metadata.get("finalizers") or [])
    if held and step.add_finalizer and FINALIZER not in current:
        patch["finalizers"] = [*current, FINALIZER]
    if not held and step.remove_finalizer and FINALIZER in current:
        patch["finalizers"] = [f for f in current if f != FINALIZER]
    return patch


def read_state(body: Mapping[str, Any], key: bytes) -> RequestState:
    """Parse a Kubernetes body into the lifecycle's view of it (never raises on user input)."""
    metadata = metadata_of(body)
    status = status_of(body)
    spec, errors = parse_request_spec(body)
    namespace, name, uid = (str(metadata.get(k, "")) for k in ("namespace", "name", "uid"))
    bindings = [b for b in status.get("bindings") or () if isinstance(b, Mapping)]
    raw_spec = body.get("spec")
    records = read_records(metadata, key)
    continues = records.held.continues if records.held is not None else None
    return RequestState(
        namespace=namespace,
        name=name,
        uid=uid,
        generation=generation_of(body),
        created=_time_or(metadata.get("creationTimestamp"), datetime.fromtimestamp(0).astimezone()),
        deleting=bool(metadata.get("deletionTimestamp")),
        has_finalizer=FINALIZER in (metadata.get("finalizers") or []),
        spec=spec,
        spec_errors=tuple(errors),
        spec_digest=spec_digest(raw_spec if isinstance(raw_spec, Mapping) else {}),
        attested=bool(key) and attestation_valid(body, key),
        records=records,
        reference=Reference.sealed(namespace, name, uid, key),
        continued=Reference.sealed(namespace, continues[0], continues[1], key) if continues else None,
        shown=Shown(
            phase=phase_of(status.get("phase")),
            conditions=tuple(c for c in status.get("conditions") or () if isinstance(c, Mapping)),
            approvals=tuple(a for a in status.get("approvals") or () if isinstance(a, Mapping)),
            expires_at=status.get("expiresAt") if isinstance(status.get("expiresAt"), str) else None,
            resources=tuple(sorted({str(b.get("resource")) for b in bindings if b.get("resource")})),
        ),
    )


def transition(
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
