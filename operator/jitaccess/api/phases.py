"""Where an ActivationRequest is in its lifecycle (`status.phase`), and what each phase implies."""

from __future__ import annotations

from enum import StrEnum


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
    EXTENDED = "Extended"  # its access continues, without a gap, as another request's


TERMINAL = frozenset(
    {
        Phase.REJECTED,
        Phase.DENIED,
        Phase.ACTIVATION_FAILED,
        Phase.EXPIRED,
        Phase.REVOKED,
        Phase.WITHDRAWN,
        Phase.EXTENDED,
    }
)
# Phases in which bindings may exist in IAM (written, or possibly written before a crash).
HOLDING = frozenset({Phase.ACTIVATING, Phase.ACTIVE})
# Phases a request only reaches once it was judged eligible (and approved, where the grant asks).
JUDGED = frozenset({Phase.AWAITING_APPROVAL, Phase.SCHEDULED, Phase.ACTIVATING, Phase.ACTIVE})


def phase_of(value: object) -> Phase | None:
    """The phase `value` names, or None (absent, or not one of ours)."""
    return Phase(value) if value in Phase.__members__.values() else None
