"""Multi-party approval: which decisions count, and what they add up to. (Issue #4; pure.)

A decision counts only when its approver matches the grant's `approval.approvers` (directly, by
an admitted group, or by domain), is not the requester, and was sealed at admission. Several
approvals by one person count once. One eligible Deny denies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jitaccess.api.objects import Approval
from jitaccess.policy.eligibility import is_covered


@dataclass(frozen=True)
class Decision:
    """One ActivationApproval, as the reconciler sees it."""

    name: str
    approver: str
    approver_groups: tuple[str, ...]
    decision: str  # Approve | Deny
    comment: str
    time: str
    attested: bool


@dataclass(frozen=True)
class Tally:
    approved_by: tuple[str, ...]
    denied_by: str | None
    ignored: tuple[tuple[str, str], ...]  # (approval name, why it does not count)
    needed: int

    @property
    def met(self) -> bool:
        return self.denied_by is None and len(self.approved_by) >= self.needed

    def summary(self) -> str:
        if self.denied_by:
            return f"denied by {self.denied_by}"
        return f"{len(self.approved_by)} of {self.needed} approval(s)" + (
            f" ({', '.join(self.approved_by)})" if self.approved_by else ""
        )


def read_decision(body: Mapping[str, Any], attested: bool) -> Decision:
    spec = body.get("spec") or {}
    metadata = body.get("metadata") or {}
    return Decision(
        name=str(metadata.get("name", "")),
        approver=str(spec.get("approver") or ""),
        approver_groups=tuple(spec.get("approverGroups") or ()),
        decision=str(spec.get("decision", "")),
        comment=str(spec.get("comment") or ""),
        time=str(metadata.get("creationTimestamp") or ""),
        attested=attested,
    )


def why_not_counted(decision: Decision, requester: str, approval: Approval) -> str | None:
    """Why a decision does not count (None when it does). Admission refuses the same cases early."""
    if not decision.attested:
        return "it did not pass the jitaccess admission webhooks"
    if not decision.approver:
        return "it names no approver"
    if decision.approver.lower() == requester.lower():
        return f"{decision.approver} is the requester, who cannot approve their own request"
    if not is_covered(decision.approver, decision.approver_groups, approval.approvers):
        return f"{decision.approver} is not among the approvers ({', '.join(approval.approvers)})"
    if decision.decision not in ("Approve", "Deny"):
        return f"decision {decision.decision!r} is neither Approve nor Deny"
    return None


def tally(decisions: Iterable[Decision], requester: str, approval: Approval) -> Tally:
    approved: list[str] = []
    denied: str | None = None
    ignored: list[tuple[str, str]] = []
    for decision in sorted(decisions, key=lambda d: (d.time, d.name)):
        reason = why_not_counted(decision, requester, approval)
        if reason is not None:
            ignored.append((decision.name, reason))
        elif decision.decision == "Deny":
            denied = denied or decision.approver
        elif decision.approver not in approved:
            approved.append(decision.approver)
    return Tally(tuple(approved), denied, tuple(ignored), approval.min_approvals)
