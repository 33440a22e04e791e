"""Status conditions with Kubernetes semantics (metav1.Condition): one place that sets them.

`lastTransitionTime` moves only when a condition's `status` changes, as Kubernetes and
cert-manager do; reason, message and observedGeneration may change without a transition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from jitaccess.api.times import format_time

READY = "Ready"
APPROVED = "Approved"
REVOCATION_FAILING = "RevocationFailing"
# On break-glass requests: False from activation until a reviewer reviews it.
REVIEWED = "Reviewed"
# Set by the sweeper: False when a binding of an Active request was removed by someone else.
BINDINGS_PRESENT = "BindingsPresent"


def set_condition(
    existing: Iterable[Mapping[str, Any]], condition: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """`condition` with the right lastTransitionTime, given the conditions shown so far."""
    previous = next((c for c in existing if c.get("type") == condition["type"]), None)
    moved = previous is None or previous.get("status") != condition["status"]
    since = format_time(now) if moved else previous.get("lastTransitionTime") or format_time(now)
    return {**condition, "lastTransitionTime": since}
