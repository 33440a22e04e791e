"""Multi-party approval: which decisions count, for which request, and what they add up to.

A decision counts only when it was sealed at admission, its approver matches the grant's
`approval.approvers` (directly, by an admitted group, or by domain) and is not the requester,
and it is about *this* request as it stands: the same object (uid) and the same terms (the
digest of its spec and of the roles, resource and duration they resolve to under the grant).
A request deleted and re-created under the same name, or a grant whose roles grew since, is not
approved by what was said about the old one. One person counts once however they spell their
address; one eligible Deny denies. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jitaccess.api.names import normal_member
from jitaccess.api.objects import ApprovalRule, Decision
from jitaccess.api.seals import digest
from jitaccess.api.times import parse_time
from jitaccess.policy.eligibility import is_covered


@dataclass(frozen=True)
class Subject:
    """What a decision must be about to count: one object, its terms, before its deadline."""

    uid: str
    digest: str
    deadline: datetime | None = None


@dataclass(frozen=True)
class Tally:
    approved_by: tuple[str, ...]
    denied_by: str | None
    ignored: tuple[tuple[str, str], ...]  # (approval name, why it does not count)
    needed: int
    counted: tuple[str, ...] = ()  # names of the approvals that count

    @property
    def met(self) -> bool:
        return self.denied_by is None and len(self.approved_by) >= self.needed

    def summary(self) -> str:
        if self.denied_by:
            return f"denied by {self.denied_by}"
        return f"{len(self.approved_by)} of {self.needed} approval(s)" + (
            f" ({', '.join(self.approved_by)})" if self.approved_by else ""
        )


def terms_digest(uid: str, spec_digest: str, resource: str, roles: Iterable[str], duration_s: int) -> str:
    """What an approver approves: this object, this spec, these roles on this resource for this long."""
    return digest("approval-subject/v1", uid, spec_digest, resource, sorted(roles), duration_s)


def spec_digest(spec: Mapping[str, Any]) -> str:
    """The request's spec as admitted (revoke aside: it may change, and ends access when it does)."""
    return digest("request-spec/v1", {k: v for k, v in spec.items() if k != "revoke"})


def eligibility_problem(decision: Decision, requester: str, approval: ApprovalRule) -> str | None:
    """Why this approver cannot decide on this requester's request under `approval`, or None.
    Admission refuses the same cases when the approval is filed."""
    if not decision.approver:
        return "it names no approver"
    if normal_member(decision.approver) == normal_member(requester):
        return f"{decision.approver} is the requester, who cannot approve their own request"
    if not is_covered(decision.approver, decision.approver_groups, approval.approvers):
        return f"{decision.approver} is not among the approvers ({', '.join(approval.approvers)})"
    if decision.decision not in ("Approve", "Deny"):
        return f"decision {decision.decision!r} is neither Approve nor Deny"
    return None


def why_not_counted(
    decision: Decision, requester: str, approval: ApprovalRule, subject: Subject
) -> str | None:
    """Why a decision does not count for `subject` (None when it does)."""
    if not decision.attested:
        return "it was not sealed by the jitaccess admission webhooks"
    if (problem := eligibility_problem(decision, requester, approval)) is not None:
        return problem
    if decision.request_uid != subject.uid:
        return (
            "it was given for another object of the same name (uid "
            f"{decision.request_uid or 'unknown'}), not this request (uid {subject.uid})"
        )
    if decision.request_digest != subject.digest:
        return (
            "the request or its grant changed since it was given (spec, roles, resource or duration); "
            "it needs a new decision"
        )
    if subject.deadline is not None and _created(decision) > subject.deadline:
        return "it came after the approval timeout"
    return None


def tally(decisions: Iterable[Decision], requester: str, approval: ApprovalRule, subject: Subject) -> Tally:
    approved: list[str] = []
    seen: dict[str, str] = {}  # normalised approver -> the approval that counted them
    counted: list[str] = []
    denied: str | None = None
    ignored: list[tuple[str, str]] = []
    for decision in sorted(decisions, key=lambda d: (d.time, d.name)):
        reason = why_not_counted(decision, requester, approval, subject)
        if reason is not None:
            ignored.append((decision.name, reason))
            continue
        person = normal_member(decision.approver)
        if decision.decision == "Deny":
            denied = denied or decision.approver
        elif person in seen:
            ignored.append(
                (
                    decision.name,
                    f"{decision.approver} already approved in {seen[person]}; one person counts once",
                )
            )
            continue
        else:
            seen[person] = decision.name
            approved.append(person)
        counted.append(decision.name)
    return Tally(tuple(approved), denied, tuple(ignored), approval.min_approvals, tuple(counted))


_NEVER = parse_time("9999-12-31T23:59:59Z")


def _created(decision: Decision) -> datetime:
    try:
        return parse_time(decision.time)
    except ValueError:
        return _NEVER  # no creation time: it cannot be shown to be in time
