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

from jitaccess.api.approval_rules import ApprovalRule, ApprovalStep
from jitaccess.api.durations import format_duration
from jitaccess.api.names import normal_member
from jitaccess.api.objects import Decision
from jitaccess.api.seals import digest
from jitaccess.api.times import format_time, parse_time
from jitaccess.policy.eligibility import is_covered


@dataclass(frozen=True)
class Subject:
    """What a decision must be about to count: one object and its terms; `opened` is when the
    first approval step opened (the request's creation)."""

    uid: str
    digest: str
    opened: datetime


@dataclass(frozen=True)
class Tally:
    approved_by: tuple[str, ...]
    denied_by: str | None
    ignored: tuple[tuple[str, str], ...]  # (approval name, why it does not count)
    needed: int
    counted: tuple[str, ...] = ()  # names of the approvals that count
    # The step that waits (None when the rule is met or denied), and when it times out.
    waiting: Waiting | None = None

    @property
    def met(self) -> bool:
        return self.denied_by is None and self.waiting is None

    def summary(self) -> str:
        if self.denied_by:
            return f"denied by {self.denied_by}"
        got = f" ({', '.join(self.approved_by)})" if self.approved_by else ""
        if self.waiting is None or self.waiting.of == 1:
            return f"{len(self.approved_by)} of {self.needed} approval(s)" + got
        return f"{self.waiting.describe()}; {len(self.approved_by)} of {self.needed} approval(s) so far" + got


@dataclass(frozen=True)
class Waiting:
    """The approval step a request waits at."""

    index: int  # 0-based
    of: int
    step: ApprovalStep
    have: int
    deadline: datetime

    def describe(self) -> str:
        where = f"step {self.index + 1} of {self.of} " if self.of > 1 else ""
        return (
            f"{where}waits for {self.step.min_approvals - self.have} more approval(s) from "
            f"{', '.join(self.step.approvers)}"
        )

    def timed_out(self) -> str:
        if self.of == 1:
            return f"no approval came within {format_duration(self.step.timeout)}"
        return (
            f"step {self.index + 1} of {self.of} ({', '.join(self.step.approvers)}) got no approval within "
            f"{format_duration(self.step.timeout)}"
        )


def terms_digest(uid: str, spec_digest: str, resource: str, roles: Iterable[str], duration_s: int) -> str:
    """What an approver approves: this object, this spec, these roles on this resource for this long."""
    return digest("approval-subject/v1", uid, spec_digest, resource, sorted(roles), duration_s)


def spec_digest(spec: Mapping[str, Any]) -> str:
    """The request's spec as admitted (revoke aside: it may change, and ends access when it does)."""
    return digest("request-spec/v1", {k: v for k, v in spec.items() if k != "revoke"})


def decides_for(decision: Decision, approvers: tuple[str, ...]) -> bool:
    """Is the decision's author among `approvers`? A decision made in chat proves one e-mail
    address, so it counts only where that very `user:` is listed: not by a `domain:` (a second
    chat account such as alice+chat@ would be in the domain) nor by a group."""
    if decision.via_chat:
        return normal_member(decision.approver) in {
            normal_member(a) for a in approvers if a.startswith("user:")
        }
    return is_covered(decision.approver, decision.approver_groups, approvers)


def eligibility_problem(decision: Decision, requester: str, approval: ApprovalRule) -> str | None:
    """Why this approver cannot decide on this requester's request under `approval` (at any of
    its steps), or None. Admission refuses the same cases when the approval is filed."""
    if not decision.approver:
        return "it names no approver"
    if normal_member(decision.approver) == normal_member(requester):
        return f"{decision.approver} is the requester, who cannot approve their own request"
    if not decides_for(decision, approval.approvers):
        return f"{decision.approver} is not among the approvers ({', '.join(approval.approvers)})"
    if decision.decision not in ("Approve", "Deny"):
        return f"decision {decision.decision!r} is neither Approve nor Deny"
    return None


def why_not_counted(
    decision: Decision, requester: str, approval: ApprovalRule, subject: Subject
) -> str | None:
    """Why a decision cannot count for `subject` at any step (None: it may, at its approver's step)."""
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
    return None


def tally(decisions: Iterable[Decision], requester: str, approval: ApprovalRule, subject: Subject) -> Tally:
    """The steps in order: each opens when the one before it is met (the first when the request
    was filed) and takes approvals given while it is open from its own approvers; one person counts
    in one step only; an eligible Deny at any step denies."""
    ordered = sorted(decisions, key=lambda d: (d.time, d.name))
    ignored: list[tuple[str, str]] = []
    valid: list[Decision] = []
    for decision in ordered:
        reason = why_not_counted(decision, requester, approval, subject)
        if reason is None:
            valid.append(decision)
        else:
            ignored.append((decision.name, reason))
    denials = [d for d in valid if d.decision == "Deny"]
    if denials:
        ignored += [(d.name, f"denied by {denials[0].approver}") for d in valid if d.decision != "Deny"]
        return Tally((), denials[0].approver, tuple(ignored), approval.min_approvals, (denials[0].name,))
    pending = [d for d in valid if d.decision == "Approve"]
    approved: list[str] = []
    counted: list[str] = []
    opened = subject.opened
    for index, step in enumerate(approval.steps):
        deadline = opened + step.timeout
        have: list[str] = []
        for decision in list(pending):
            if len(have) == step.min_approvals:
                break
            if not decides_for(decision, step.approvers):
                continue  # for another step
            pending.remove(decision)
            person, when = normal_member(decision.approver), _created(decision)
            problem = _out_of_turn(decision, person, when, approved, have, index, opened, deadline)
            if problem is not None:
                ignored.append((decision.name, problem))
                continue
            have.append(person)
            approved.append(person)
            counted.append(decision.name)
            if len(have) == step.min_approvals:
                opened = when
        if len(have) < step.min_approvals:
            ignored += [
                (
                    d.name,
                    f"it came before its step opened (step {index + 1} is not met yet); approve again once it is",
                )
                for d in pending
            ]
            waiting = Waiting(index, len(approval.steps), step, len(have), deadline)
            return Tally(
                tuple(approved), None, tuple(ignored), approval.min_approvals, tuple(counted), waiting
            )
    ignored += [(d.name, "the approval rule was already met") for d in pending]
    return Tally(tuple(approved), None, tuple(ignored), approval.min_approvals, tuple(counted))


def _out_of_turn(
    decision: Decision,
    person: str,
    when: datetime,
    approved: list[str],
    have: list[str],
    index: int,
    opened: datetime,
    deadline: datetime,
) -> str | None:
    """Why an approval by an approver of step `index` does not count there, or None."""
    if person in approved:
        where = "" if person in have else " at an earlier step"
        return f"{decision.approver} already approved{where}; one person counts once"
    # Times have whole seconds: the same second as the step's opening cannot be shown to come after.
    if when < opened or (index > 0 and when == opened):
        return f"it came before step {index + 1} opened ({format_time(opened)}); approve again"
    if when > deadline:
        return "it came after the approval timeout"
    return None


_NEVER = parse_time("9999-12-31T23:59:59Z")


def _created(decision: Decision) -> datetime:
    try:
        return parse_time(decision.time)
    except ValueError:
        return _NEVER  # no creation time: it cannot be shown to be in time
