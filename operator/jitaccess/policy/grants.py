"""What an EligibleGrant's status should say: Ready (or why not), approval mode, active count."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jitaccess.api.bodies import generation_of, status_of
from jitaccess.api.errors import join_errors
from jitaccess.api.objects import parse_grant
from jitaccess.api.reasons import Reason
from jitaccess.api.times import format_time
from jitaccess.policy.conditions import READY


def grant_status(body: Mapping[str, Any], active_requests: int, now: datetime) -> dict[str, Any] | None:
    """The status to write, or None when the current one already says it."""
    grant, errors = parse_grant(body)
    generation = generation_of(body)
    if grant is None:
        reason = errors[0].reason if errors else Reason.INVALID_SPEC
        ready = {"type": READY, "status": "False", "reason": reason, "message": join_errors(errors)}
        approval = "-"
    else:
        ready = {
            "type": READY,
            "status": "True",
            "reason": Reason.VALID,
            "message": f"{len(grant.roles)} role(s) on {grant.resource} for {len(grant.principals)} principal(s)",
        }
        approval = "Self" if grant.approval is None else grant.approval.describe()
    ready["observedGeneration"] = generation
    current = dict(status_of(body))
    previous = next((c for c in current.get("conditions") or [] if c.get("type") == "Ready"), {})
    unchanged = all(previous.get(k) == v for k, v in ready.items())
    ready["lastTransitionTime"] = previous.get("lastTransitionTime") if unchanged else format_time(now)
    wanted = {
        "observedGeneration": generation,
        "approval": approval,
        "activeRequests": active_requests,
        "conditions": [ready],
    }
    if unchanged and all(
        current.get(k) == wanted[k] for k in ("observedGeneration", "approval", "activeRequests")
    ):
        return None
    return wanted
