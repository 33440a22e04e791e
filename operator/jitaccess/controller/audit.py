"""The audit log: one JSON line per lifecycle event, for Cloud Logging (or any log pipeline).

Each line is a complete record of who asked for what, where, why, who approved, for which
window and how it ended, so an auditor never needs the cluster's (short-lived) Events. The
field names are stable and documented in README "Operations": Cloud Logging parses a JSON line
on stdout into `jsonPayload`, so `jsonPayload.requester="user:alice@example.com"` or
`jsonPayload.event="Activated"` select them, and `severity` and `time` are honoured as such.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from jitaccess.api.times import format_time
from jitaccess.policy.lifecycle import Event

# The phase a request is in after the event, and the outcome it stands for.
OUTCOMES = {
    "Pending": "pending",
    "AwaitingApproval": "pending",
    "Scheduled": "approved",
    "Activating": "granting",
    "Active": "granted",
    "ActivationFailed": "failed",
    "Expired": "expired",
    "Revoked": "revoked",
    "Denied": "denied",
    "Rejected": "rejected",
    "Withdrawn": "withdrawn",
}


def audit_record(
    body: Mapping[str, Any], event: Event, now: datetime, resource: str | None = None
) -> dict[str, Any]:
    """The audit record of `event` on the ActivationRequest `body` (as it was just written)."""
    metadata = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    bindings = [b for b in status.get("bindings") or [] if isinstance(b, Mapping)]
    phase = str(status.get("phase") or "")
    return {
        "time": format_time(now),
        "severity": "WARNING" if event.type == "Warning" else "NOTICE",
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
        "roles": sorted({str(b.get("role")) for b in bindings}) or list(spec.get("roles") or []),
        "resource": (bindings[0].get("resource") if bindings else None) or resource,
        "justification": spec.get("justification"),
        "approvers": [
            a.get("approver")
            for a in status.get("approvals") or []
            if isinstance(a, Mapping) and a.get("decision") == "Approve"
        ],
        "start": status.get("activatedAt"),
        "end": status.get("expiresAt"),
        "endedAt": status.get("endedAt"),
        # Who ended it, when that was someone (revoke or delete), as Kubernetes authenticated them.
        "actor": status.get("endedBy"),
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
