"""What one person sees in the console, as JSON-ready data (pure: bodies in, dicts out).

A person is the IAM member IAP verified, with no groups: IAP proves an e-mail address and nothing
more, so a grant that names the person only through a group is shown as such, not as theirs.
Eligibility and "whose turn is it to approve" are the rules admission and `kubectl jit` use
(`policy.eligibility`, `kubectl_review`); what a request shows of its progress comes from its
status, which only informs (admission judges every decision afresh). Nothing here is escaped for
HTML: the page puts every string in with `textContent`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from jitaccess.api.bodies import metadata_of, spec_of, status_of
from jitaccess.api.durations import format_duration
from jitaccess.api.names import normal_member
from jitaccess.api.objects import Grant, parse_grant, parse_request_spec
from jitaccess.api.phases import Phase
from jitaccess.api.times import format_time
from jitaccess.kubectl_review import judge, may_approve, my_turn
from jitaccess.policy.break_glass import not_a_reviewer
from jitaccess.policy.conditions import REVIEWED
from jitaccess.policy.eligibility import is_covered, resolve, window_errors

NO_GROUPS: tuple[str, ...] = ()
Key = tuple[str, str]


def parsed_grants(bodies: Iterable[Mapping[str, Any]]) -> dict[str, Grant]:
    found = {}
    for body in bodies:
        grant, _ = parse_grant(body)
        if grant is not None:
            found[grant.name] = grant
    return found


def grant_view(grant: Grant, now: datetime) -> dict[str, Any]:
    closed = window_errors(grant, now)
    approval = grant.approval
    return {
        "name": grant.name,
        "resource": grant.resource,
        "roles": list(grant.roles),
        "maxDuration": format_duration(grant.max_duration),
        "defaultDuration": format_duration(grant.default_duration),
        "justification": {
            "required": grant.justification_required,
            "pattern": grant.justification_pattern,
            "hint": grant.justification_hint,
        },
        "approval": None
        if approval is None
        else {
            "steps": [
                {
                    "approvers": list(step.approvers),
                    "minApprovals": step.min_approvals,
                    "timeout": format_duration(step.timeout),
                }
                for step in approval.steps
            ],
            "forExtensions": approval.for_extensions,
        },
        "breakGlass": None
        if grant.break_glass is None
        else {
            "maxDuration": format_duration(grant.break_glass.max_duration),
            "reviewWithin": format_duration(grant.break_glass.review_within),
        },
        "notBefore": format_time(grant.not_before) if grant.not_before else None,
        "notAfter": format_time(grant.not_after) if grant.not_after else None,
        "closed": str(closed[0].message) if closed else None,
    }


def my_grants(grants: Mapping[str, Grant], member: str, now: datetime) -> dict[str, Any]:
    """The grants that name this person (directly or by domain), and how many others name groups
    (which may be theirs but cannot be used here: IAP does not say which groups someone is in).
    Only a count: the others' names, resources and groups are for those who may read grants."""
    eligible, through_groups = [], 0
    for grant in sorted(grants.values(), key=lambda g: g.name):
        if is_covered(member, NO_GROUPS, grant.principals):
            eligible.append(grant_view(grant, now))
        elif any(p.startswith("group:") for p in grant.principals):
            through_groups += 1
    return {"eligible": eligible, "throughGroups": through_groups}


def _time(body: Mapping[str, Any]) -> tuple[str, str, str]:
    """Creation time, then namespace and name: one order on every replica, whatever the watch's."""
    metadata = metadata_of(body)
    return (
        str(metadata.get("creationTimestamp") or ""),
        str(metadata.get("namespace") or ""),
        str(metadata.get("name") or ""),
    )


def request_summary(body: Mapping[str, Any]) -> dict[str, Any]:
    metadata, spec, status = metadata_of(body), spec_of(body), status_of(body)
    return {
        "namespace": metadata.get("namespace"),
        "name": metadata.get("name"),
        "uid": metadata.get("uid"),
        "created": metadata.get("creationTimestamp"),
        "requester": spec.get("requester"),
        "grant": spec.get("grant"),
        "roles": spec.get("roles"),
        "duration": spec.get("duration"),
        "justification": spec.get("justification"),
        "startTime": spec.get("startTime"),
        "breakGlass": bool(spec.get("breakGlass")),
        "extends": spec.get("extends"),
        "revoke": bool(spec.get("revoke")),
        "phase": status.get("phase") or Phase.PENDING.value,
        "activatedAt": status.get("activatedAt"),
        "expiresAt": status.get("expiresAt"),
        "endedAt": status.get("endedAt"),
        "endedBy": status.get("endedBy"),
    }


def is_mine(body: Mapping[str, Any], member: str) -> bool:
    return normal_member(str(spec_of(body).get("requester") or "")) == normal_member(member)


def my_requests(requests: Iterable[Mapping[str, Any]], member: str) -> list[dict[str, Any]]:
    mine = sorted((body for body in requests if is_mine(body, member)), key=_time, reverse=True)
    return [request_summary(body) for body in mine]


def in_namespace(bodies: Iterable[Mapping[str, Any]], namespace: str) -> list[Mapping[str, Any]]:
    return [body for body in bodies if metadata_of(body).get("namespace") == namespace]


def decisions_of(body: Mapping[str, Any], approvals: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The ActivationApprovals filed on this very request: in its namespace, naming it."""
    metadata = metadata_of(body)
    name = metadata.get("name")
    return [
        approval
        for approval in in_namespace(approvals, str(metadata.get("namespace") or ""))
        if spec_of(approval).get("request") == name
    ]


def needs_review_by(body: Mapping[str, Any], grant: Grant | None, member: str) -> bool:
    """Break-glass access, activated and not reviewed yet, that this person reviews."""
    spec = spec_of(body)
    if not spec.get("breakGlass") or grant is None or grant.break_glass is None:
        return False
    reviewed = next((c for c in status_of(body).get("conditions") or () if c.get("type") == REVIEWED), None)
    requester = str(spec.get("requester") or "")
    return (
        reviewed is not None
        and reviewed.get("status") == "False"
        and not_a_reviewer(member, NO_GROUPS, requester, grant.break_glass.reviewers) is None
    )


def pending_for(
    member: str,
    requests: Iterable[Mapping[str, Any]],
    grants: Mapping[str, Grant],
    approvals: Iterable[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """What waits for this person now: approvals at a step of theirs (never their own request,
    never one they approved), and break-glass access for them to review."""
    decided = list(approvals)
    found = []
    for body in sorted(requests, key=_time):
        grant = grants.get(str(spec_of(body).get("grant")))
        if may_approve(body, grants, member, NO_GROUPS):
            namespace = str(metadata_of(body).get("namespace") or "")
            awaited = judge(body, grant, in_namespace(decided, namespace))
            if awaited is not None and my_turn(awaited, member, NO_GROUPS):
                found.append({**request_summary(body), **_terms(awaited), "kind": "approval"})
        elif needs_review_by(body, grant, member):
            found.append({**request_summary(body), **resolved_terms(body, grant), "kind": "review"})
    return found


def resolved_terms(body: Mapping[str, Any], grant: Grant | None) -> dict[str, Any]:
    """What the request resolves to under its grant as it is now: resource, roles, duration."""
    spec, _ = parse_request_spec(body)
    if spec is None or grant is None:
        return {"resource": grant.resource if grant else None}
    terms = resolve(spec, grant)
    return {
        "resource": terms.resource,
        "roles": list(terms.roles),
        "duration": format_duration(terms.duration),
    }


def _terms(awaited: Any) -> dict[str, Any]:
    return {
        "resource": awaited.terms.resource,
        "roles": list(awaited.terms.roles),
        "duration": format_duration(awaited.terms.duration),
        "step": awaited.step,
        "approvalSummary": awaited.tally.summary(),
        "requestDigest": awaited.digest,
    }


def may_see(
    body: Mapping[str, Any], grant: Grant | None, member: str, decided: Iterable[Mapping[str, Any]]
) -> bool:
    """The requester, anyone who approves or reviews under its grant, and anyone who decided on it
    (on this request: a decision elsewhere shows nothing here)."""
    if is_mine(body, member):
        return True
    if grant is not None:
        deciders = (grant.approval.approvers if grant.approval else ()) + (
            grant.break_glass.reviewers if grant.break_glass else ()
        )
        if is_covered(member, NO_GROUPS, deciders):
            return True
    return any(
        normal_member(str(spec_of(a).get("approver") or "")) == normal_member(member)
        for a in decisions_of(body, decided)
    )
