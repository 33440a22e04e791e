"""Who is told what, and when: the notices a lifecycle step gives, and what each one says.

A `Notice` is what happened to one request (approval needed at step 2, activated, denied, ...)
and is what the operator persists, so that each is sent once. What a message *says* and to whom
is worked out afresh when it is sent (`told`), from the request's sealed records and its grant as
it is then: never from status, which others may write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jitaccess.api.durations import format_duration
from jitaccess.api.names import normal_member
from jitaccess.api.objects import Grant
from jitaccess.api.reasons import Reason
from jitaccess.api.times import format_time
from jitaccess.policy.awaiting import approval_subject
from jitaccess.policy.conditions import APPROVED
from jitaccess.policy.eligibility import check_request
from jitaccess.policy.steps import RequestState, Step

# Event reasons of the lifecycle, and the notice each one is.
KINDS = {
    Reason.APPROVAL_REQUIRED: "approval-needed",
    Reason.APPROVAL_RECORDED: "approval-needed",  # a later step opened (told once per step)
    Reason.DENIED: "denied",
    Reason.ACTIVATED: "activated",
    Reason.EXPIRED: "expired",
    Reason.APPROVAL_TIMEOUT: "expired",
    Reason.REVOKED_BY_REQUESTER: "revoked",
    Reason.REVOKED_BY_ADMIN: "revoked",
    Reason.REVOKED: "revoked",
    Reason.ELIGIBILITY_REMOVED: "revoked",
    Reason.ELIGIBILITY_CHANGED: "revoked",
    Reason.RECORD_TAMPERED: "revoked",
    Reason.DELETED: "revoked",
    Reason.REVOCATION_FAILING: "revocation-failing",
    Reason.ELIGIBILITY_EXPIRED: "revoked",
    Reason.REVOKED_BY_REVIEWER: "revoked",
    Reason.EXTENDED: "extended",
    Reason.BREAK_GLASS_ACTIVATED: "break-glass",
    Reason.REVIEW_OVERDUE: "review-overdue",
    Reason.REVIEWED: "reviewed",
}
# What ends a request: each request is told of its end once, whichever it was.
ENDINGS = frozenset({"denied", "expired", "revoked"})
# Told to the people who must review break-glass access, as well as to the requester.
FOR_REVIEWERS = frozenset({"break-glass", "review-overdue"})
MAX_MESSAGE = 500


@dataclass(frozen=True)
class Notice:
    """One thing that happened to one request, to be told once (persisted as `as_record`)."""

    kind: str
    reason: str
    message: str
    at: datetime
    step: int | None = None  # approval-needed: the 0-based approval step that opened
    approved_by: tuple[str, ...] = ()  # approvals counted when it was decided

    @property
    def key(self) -> str:
        """Unique per request: a kind is told once (the end once, whichever end it was)."""
        if self.kind == "approval-needed":
            return f"approval-needed-{(self.step or 0) + 1}"
        return "ended" if self.kind in ENDINGS else self.kind

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "kind": self.kind,
            "reason": self.reason,
            "message": self.message[:MAX_MESSAGE],
            "at": format_time(self.at),
        }
        if self.step is not None:
            record["step"] = self.step
        if self.approved_by:
            record["approvedBy"] = list(self.approved_by)
        return record


def notice_from_record(record: Mapping[str, Any], parse_time: Any) -> Notice | None:
    """A persisted notice; None when the record is not one (never raises)."""
    try:
        step = record.get("step")
        return Notice(
            kind=str(record["kind"]),
            reason=str(record["reason"]),
            message=str(record.get("message") or ""),
            at=parse_time(record["at"]),
            step=step if isinstance(step, int) and not isinstance(step, bool) else None,
            approved_by=tuple(str(a) for a in record.get("approvedBy") or () if isinstance(a, str)),
        )
    except (KeyError, TypeError, ValueError):
        return None


def notices_for(before: RequestState, step: Step, now: datetime) -> tuple[Notice, ...]:
    """What carrying out `step` on a request that was `before` tells people."""
    if step.event is None or step.status is None:
        return ()
    found: list[Notice] = []
    approvals = step.status.get("approvals")
    approved_by = tuple(
        str(a.get("approver"))
        for a in approvals or ()
        if isinstance(a, Mapping) and a.get("decision") == "Approve"
    )
    if _approved(step.status) and not _approved_shown(before):
        found.append(Notice("approved", Reason.APPROVED, "the request was approved", now, None, approved_by))
    kind = KINDS.get(step.event.reason)
    if kind == "approval-needed":
        if step.waiting is None:
            return tuple(found)
        return (
            *found,
            Notice(kind, step.event.reason, step.event.message, now, step.waiting.index, approved_by),
        )
    if kind is not None:
        found.append(Notice(kind, step.event.reason, step.event.message, now, None, approved_by))
    return tuple(found)


def _approved(status: Mapping[str, Any]) -> bool:
    return any(
        isinstance(c, Mapping) and c.get("type") == APPROVED and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _approved_shown(state: RequestState) -> bool:
    return state.shown.condition(APPROVED).get("status") == "True"


@dataclass(frozen=True)
class Told:
    """A notice as people read it: the request's facts, who is told, and how they act."""

    notice: Notice
    namespace: str
    name: str
    uid: str
    requester: str
    grant: str
    resource: str
    roles: tuple[str, ...]
    duration: str
    start: str | None
    end: str | None
    justification: str
    approved_by: tuple[str, ...]
    to: tuple[str, ...]  # IAM members
    step: str | None = None  # "1 of 2", for an approval step
    # What an approver's decision is pinned to (approval-needed only): the terms shown here.
    digest: str | None = None
    slack_channel: str | None = None  # the grant's own channel, if it names one

    @property
    def answerable(self) -> bool:
        return self.notice.kind == "approval-needed" and self.digest is not None

    @property
    def headline(self) -> str:
        who, where = self.requester.partition(":")[2] or self.requester, self.resource
        return HEADLINES.get(self.notice.kind, "{who}'s access to {where}: {kind}").format(
            who=who, where=where, kind=self.notice.kind
        )

    def commands(self) -> tuple[str, ...]:
        where = f"{self.name} -n {self.namespace}"
        if self.answerable:
            return (f"kubectl jit approve {where}", f"kubectl jit deny {where}")
        if self.notice.kind in FOR_REVIEWERS:
            return (f"kubectl jit review {where}", f"kubectl describe activationrequest {where}")
        return (f"kubectl describe activationrequest {where}",)

    def as_data(self) -> dict[str, Any]:
        """The facts as JSON (the generic webhook's data; stable field names)."""
        return {
            "type": self.notice.kind,
            "reason": self.notice.reason,
            "message": self.notice.message,
            "request": {"namespace": self.namespace, "name": self.name, "uid": self.uid},
            "requester": self.requester,
            "grant": self.grant,
            "resource": self.resource,
            "roles": list(self.roles),
            "duration": self.duration,
            "start": self.start,
            "end": self.end,
            "justification": self.justification,
            "approvers": list(self.approved_by),
            "step": self.step,
            "commands": list(self.commands()),
        }


HEADLINES = {
    "approval-needed": "{who} asks for access to {where}: your approval is needed",
    "approved": "{who}'s request for {where} was approved",
    "denied": "{who}'s request for {where} was denied",
    "activated": "{who} now has access to {where}",
    "expired": "{who}'s access to {where} has ended",
    "revoked": "{who}'s access to {where} was revoked",
    "extended": "{who}'s access to {where} was extended",
    "break-glass": "BREAK-GLASS: {who} took access to {where} without approval; review it",
    "review-overdue": "BREAK-GLASS review overdue: {who}'s access to {where}",
    "reviewed": "{who}'s break-glass access to {where} was reviewed",
    "revocation-failing": "{who}'s access to {where} could not be removed yet",
}


def told(notice: Notice, state: RequestState, grant: Grant | None) -> Told | None:
    """What `notice` says, and to whom, from the request's sealed facts and its grant now; None
    when there is nothing trustworthy to say (no admitted spec)."""
    spec = state.spec
    if spec is None or not state.attested:
        return None
    requester = normal_member(spec.requester or "")
    held = state.records.held
    terms = check_request(spec, requester, grant, state.created)[0] if grant is not None else None
    resource = held.resource if held else terms.resource if terms else grant.resource if grant else ""
    roles = held.roles if held else terms.roles if terms else spec.roles or ()
    duration = held.asked_duration if held else terms.duration if terms else spec.duration
    step, digest = _step(notice, state, grant, terms)
    return Told(
        notice=notice,
        namespace=state.namespace,
        name=state.name,
        uid=state.uid,
        requester=requester,
        grant=spec.grant,
        resource=resource,
        roles=tuple(roles),
        duration=format_duration(duration) if isinstance(duration, timedelta) else "",
        start=format_time(held.activated_at or held.start) if held else None,
        end=format_time(held.end) if held else None,
        justification=spec.justification,
        approved_by=held.approvers if held and held.approvers else notice.approved_by,
        to=_audience(notice, requester, grant, held.reviewers if held else ()),
        step=step,
        digest=digest,
        slack_channel=grant.slack_channel if grant is not None else None,
    )


def _step(
    notice: Notice, state: RequestState, grant: Grant | None, terms: Any
) -> tuple[str | None, str | None]:
    if notice.kind != "approval-needed" or grant is None or grant.approval is None or terms is None:
        return None, None
    index, steps = notice.step or 0, len(grant.approval.steps)
    subject = approval_subject(state, grant, terms.resource, terms.roles, terms.duration_s)
    return f"{index + 1} of {steps}", subject.digest


def _audience(
    notice: Notice, requester: str, grant: Grant | None, reviewers: tuple[str, ...]
) -> tuple[str, ...]:
    if notice.kind == "approval-needed":
        if grant is None or grant.approval is None or (notice.step or 0) >= len(grant.approval.steps):
            return ()
        approvers = grant.approval.steps[notice.step or 0].approvers
        return tuple(m for m in approvers if normal_member(m) != requester and m not in notice.approved_by)
    if notice.kind in FOR_REVIEWERS:
        named = reviewers or (grant.break_glass.reviewers if grant and grant.break_glass else ())
        return (requester, *(m for m in named if m != requester))
    return (requester,)
