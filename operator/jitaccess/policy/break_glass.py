"""Break-glass: access at once, without approval, reviewed after the fact.

A request with `spec.breakGlass: true` under a grant whose `breakGlass.allowed` is true skips
approval (within `breakGlass.maxDuration`) and carries the condition `Reviewed=False` from its
activation until one of the grant's reviewers files an ActivationApproval with `decision: Review`
(approved after the fact) or `decision: Revoke` (access ends now, if it has not ended). A review
counts only when sealed at admission, from a reviewer who is not the requester, about this very
object and its terms (uid and digest, as approvals). Unreviewed past `reviewWithin` of its
activation, the request raises a Warning (`ReviewOverdue`). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from jitaccess.api.durations import format_duration
from jitaccess.api.errors import FieldError
from jitaccess.api.names import normal_member
from jitaccess.api.objects import Decision, Grant, RequestSpec
from jitaccess.api.reasons import Reason
from jitaccess.policy.approvals import Subject
from jitaccess.policy.eligibility import is_covered

REVIEW_DECISIONS = ("Review", "Revoke")


@dataclass(frozen=True)
class Review:
    by: Decision | None  # the first review that counts (Review or Revoke)
    ignored: tuple[tuple[str, str], ...]  # (approval name, why it does not count)

    @property
    def revoked(self) -> bool:
        return self.by is not None and self.by.decision == "Revoke"


def request_errors(spec: RequestSpec, grant: Grant, duration: timedelta) -> list[FieldError]:
    """Why this grant does not let this request break the glass (empty: it may)."""
    if not spec.break_glass:
        return []
    if grant.break_glass is None:
        return [
            FieldError(
                "spec.breakGlass",
                f"grant {grant.name} does not allow break-glass access; ask for approval instead",
                reason=Reason.NOT_ELIGIBLE,
            )
        ]
    if duration > grant.break_glass.max_duration:
        return [
            FieldError(
                "spec.duration",
                f"break-glass access under grant {grant.name} lasts at most "
                f"{format_duration(grant.break_glass.max_duration)}",
            )
        ]
    return []


def reviewer_problem(decision: Decision, requester: str, reviewers: tuple[str, ...]) -> str | None:
    """Why this person cannot review this requester's break-glass access, or None. Admission
    refuses the same cases when the review is filed."""
    if decision.decision not in REVIEW_DECISIONS:
        return "a break-glass request is reviewed, not approved: decision Review or Revoke"
    return not_a_reviewer(decision.approver, decision.approver_groups, requester, reviewers)


def not_a_reviewer(
    member: str, groups: tuple[str, ...], requester: str, reviewers: tuple[str, ...]
) -> str | None:
    """Why this member (with these groups) is not one who reviews this requester's break-glass
    access, or None: never the requester, always one the reviewers name."""
    if not member:
        return "it names no reviewer"
    if normal_member(member) == normal_member(requester):
        return f"{member} is the requester, who cannot review their own break-glass access"
    if not is_covered(member, groups, reviewers):
        return f"{member} is not among the reviewers ({', '.join(reviewers)})"
    return None


def review(
    decisions: Iterable[Decision], requester: str, reviewers: tuple[str, ...], subject: Subject
) -> Review:
    ignored: list[tuple[str, str]] = []
    first: Decision | None = None
    for decision in sorted(decisions, key=lambda d: (d.time, d.name)):
        why = _why_not(decision, requester, reviewers, subject)
        if why is not None:
            ignored.append((decision.name, why))
        elif first is None:
            first = decision
        else:
            ignored.append((decision.name, f"already reviewed by {first.approver} in {first.name}"))
    return Review(first, tuple(ignored))


def _why_not(decision: Decision, requester: str, reviewers: tuple[str, ...], subject: Subject) -> str | None:
    if not decision.attested:
        return "it was not sealed by the jitaccess admission webhooks"
    if (problem := reviewer_problem(decision, requester, reviewers)) is not None:
        return problem
    if decision.request_uid != subject.uid:
        return f"it was given for another object of the same name, not this request (uid {subject.uid})"
    if decision.request_digest != subject.digest:
        return "the request or its grant changed since it was given; it needs a new review"
    return None
