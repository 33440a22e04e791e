"""One request as the console shows it: what it asks for under its grant, its progress (phase,
conditions, the binding's window), the decisions filed on it, its Events, and what this person
may do to it now. Pure; the same rules as `views`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jitaccess.api.bodies import metadata_of, spec_of, status_of
from jitaccess.api.objects import Grant
from jitaccess.api.phases import TERMINAL, Phase, phase_of
from jitaccess.console.views import (
    NO_GROUPS,
    decisions_of,
    in_namespace,
    is_mine,
    needs_review_by,
    request_summary,
    resolved_terms,
)
from jitaccess.kubectl_review import judge, may_approve, refusal

CONDITION_FIELDS = ("type", "status", "reason", "message", "lastTransitionTime")


def events_of(body: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The Events of this very object (by uid where the Event names one), oldest first."""
    metadata = metadata_of(body)
    found = []
    for event in events:
        involved = event.get("involvedObject") or {}
        if (involved.get("namespace"), involved.get("name")) != (
            metadata.get("namespace"),
            metadata.get("name"),
        ):
            continue
        if involved.get("uid") and involved.get("uid") != metadata.get("uid"):
            continue  # about an earlier object of the same name
        found.append(
            {
                "type": event.get("type"),
                "reason": event.get("reason"),
                "message": event.get("message"),
                "name": metadata_of(event).get("name"),
                "count": event.get("count") or 1,
                "time": event.get("lastTimestamp")
                or event.get("eventTime")
                or metadata_of(event).get("creationTimestamp"),
            }
        )
    return sorted(found, key=lambda line: (str(line["time"] or ""), str(line["name"])))


def decisions_on(body: Mapping[str, Any], approvals: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The ActivationApprovals filed for this request, and whether the operator counts them."""
    found = []
    for approval in decisions_of(body, approvals):
        spec, status = spec_of(approval), status_of(approval)
        found.append(
            {
                "name": metadata_of(approval).get("name"),
                "approver": spec.get("approver"),
                "decision": spec.get("decision"),
                "comment": spec.get("comment"),
                "time": metadata_of(approval).get("creationTimestamp"),
                "counted": status.get("counted"),
                "message": status.get("message"),
            }
        )
    return sorted(found, key=lambda line: (str(line["time"] or ""), str(line["name"])))


def allowed_actions(
    body: Mapping[str, Any], grant: Grant | None, approvals: list[Mapping[str, Any]], member: str
) -> dict[str, Any]:
    """What this person may do to the request now (admission decides; this only offers)."""
    phase = phase_of(status_of(body).get("phase")) or Phase.PENDING
    spec = spec_of(body)
    mine = is_mine(body, member)
    may: dict[str, Any] = {
        "revoke": mine and not spec.get("revoke") and phase not in TERMINAL,
        "extend": mine and phase is Phase.ACTIVE and not spec.get("breakGlass") and not spec.get("revoke"),
        "decide": False,
        "review": needs_review_by(body, grant, member),
        "why": None,
    }
    grants = {grant.name: grant} if grant is not None else {}
    if may_approve(body, grants, member, NO_GROUPS):
        awaited = judge(body, grant, approvals)
        why = refusal(body, awaited, "Approve", member, NO_GROUPS)
        may["why"] = why
        if awaited is not None:
            may["decide"] = refusal(body, awaited, "Deny", member, NO_GROUPS) is None
            may["approve"] = why is None
            may["step"] = awaited.step
            may["approvalSummary"] = awaited.tally.summary()
            may["requestDigest"] = awaited.digest
    elif phase is Phase.AWAITING_APPROVAL and (awaited := judge(body, grant, approvals)) is not None:
        may["approvalSummary"] = awaited.tally.summary()
    return may


def request_detail(
    body: Mapping[str, Any],
    grant: Grant | None,
    approvals: Iterable[Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]],
    member: str,
) -> dict[str, Any]:
    status = status_of(body)
    namespace = str(metadata_of(body).get("namespace") or "")
    decided = in_namespace(approvals, namespace)
    return {
        **request_summary(body),
        **resolved_terms(body, grant),
        "asked": {"roles": spec_of(body).get("roles"), "duration": spec_of(body).get("duration")},
        "conditions": [
            {field: condition.get(field) for field in CONDITION_FIELDS}
            for condition in status.get("conditions") or ()
            if isinstance(condition, Mapping)
        ],
        "bindings": [
            {"resource": b.get("resource"), "role": b.get("role"), "member": b.get("member")}
            for b in status.get("bindings") or ()
            if isinstance(b, Mapping)
        ],
        "approvals": [a for a in status.get("approvals") or () if isinstance(a, Mapping)],
        "decisions": decisions_on(body, decided),
        "events": events_of(body, events),
        "grantExists": grant is not None,
        "may": allowed_actions(body, grant, decided, member),
    }
