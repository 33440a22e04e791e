"""The audit log: one JSON line per lifecycle event, for Cloud Logging (or any log pipeline).

Each line is a complete record of who asked for what, where, why, who approved, for which
window and how it ended, so an auditor never needs the cluster's (short-lived) Events. The
field names are stable and documented in docs/operations.md: Cloud Logging parses a JSON line
on stdout into `jsonPayload`, so `jsonPayload.requester="user:alice@example.com"` or
`jsonPayload.event="Activated"` select them, and `severity` and `time` are honoured as such.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from jitaccess.api.bodies import metadata_of, spec_of, status_of
from jitaccess.api.phases import Phase
from jitaccess.api.reasons import ALERTS
from jitaccess.api.times import format_time
from jitaccess.controller.logs import LABELS, STREAM, replica
from jitaccess.policy.records import read_records
from jitaccess.policy.steps import Event

# The phase a request is in after the event, and the outcome it stands for.
OUTCOMES = {
    Phase.PENDING: "pending",
    Phase.AWAITING_APPROVAL: "pending",
    Phase.SCHEDULED: "approved",
    Phase.ACTIVATING: "granting",
    Phase.ACTIVE: "granted",
    Phase.ACTIVATION_FAILED: "failed",
    Phase.EXPIRED: "expired",
    Phase.REVOKED: "revoked",
    Phase.DENIED: "denied",
    Phase.REJECTED: "rejected",
    Phase.WITHDRAWN: "withdrawn",
}


@dataclass(frozen=True)
class Told:
    """What a record about a request may say of it: the operator's sealed records and the status
    this very step wrote, never the status as stored (anyone who may write status could have put
    an approver or an actor there)."""

    phase: str
    roles: list[str]
    resource: str | None
    approvers: list[str]
    start: str | None
    end: str | None
    ended_at: str | None
    actor: str | None


def told(body: Mapping[str, Any], written: Mapping[str, Any], key: bytes, resource: str | None) -> Told:
    """The trusted account of `body` after a step wrote `written` into its status."""
    records = read_records(metadata_of(body), key)
    spec = spec_of(body)
    bindings = [b for b in written.get("bindings") or [] if isinstance(b, Mapping)]
    approvals = [a for a in written.get("approvals") or [] if isinstance(a, Mapping)]
    held = records.held
    return Told(
        phase=str(written.get("phase") or ""),
        roles=list(held.roles)
        if held
        else sorted({str(b.get("role")) for b in bindings}) or list(spec.get("roles") or []),
        resource=held.resource if held else (bindings[0].get("resource") if bindings else None) or resource,
        approvers=list(held.approvers)
        if held
        else [str(a.get("approver")) for a in approvals if a.get("decision") == "Approve"],
        start=format_time(held.activated_at or held.start) if held else written.get("activatedAt"),
        end=format_time(held.end) if held else written.get("expiresAt"),
        ended_at=written.get("endedAt"),
        actor=written.get("endedBy"),
    )


def audit_record(body: Mapping[str, Any], event: Event, now: datetime, account: Told) -> dict[str, Any]:
    """The audit record of `event` on the ActivationRequest `body` (as it was just written)."""
    metadata = metadata_of(body)
    spec = spec_of(body)
    phase = account.phase or str(status_of(body).get("phase") or "")
    return {
        "time": format_time(now),
        "severity": "ALERT" if event.reason in ALERTS else "WARNING" if event.type == "Warning" else "NOTICE",
        "message": f"{metadata.get('namespace')}/{metadata.get('name')}: {event.reason}: {event.message}",
        "event": event.reason,
        "phase": phase,
        "outcome": OUTCOMES.get(phase, phase.lower()),
        "request": {
            "namespace": metadata.get("namespace"),
            "name": metadata.get("name"),
            "uid": metadata.get("uid"),
        },
        "grant": spec.get("grant"),
        "requester": spec.get("requester"),
        "roles": account.roles,
        "resource": account.resource,
        "justification": spec.get("justification"),
        "approvers": account.approvers,
        "start": account.start,
        "end": account.end,
        "endedAt": account.ended_at,
        # Who ended it, when that was someone (revoke or delete), as Kubernetes authenticated them.
        "actor": account.actor,
        # Apart from the operator's own log lines on the same stdout: labels."jitaccess.dev/log"="audit".
        LABELS: {STREAM: "audit", "replica": replica()},
    }


class AuditLog:
    """Writes records as JSON lines to a stream (stdout by default) or appends them to a file."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.lines = 0
        self._lock = threading.Lock()

    @classmethod
    def to(cls, target: str) -> AuditLog | None:
        """`stdout`, `off`, or a file path (appended to)."""
        if target == "off":
            return None
        if target == "stdout":
            return cls(sys.stdout)
        return cls(Path(target).open("a", encoding="utf-8"))

    def record(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
        with self._lock:
            assert self.stream is not None
            self.stream.write(line + "\n")
            self.stream.flush()
            self.lines += 1
