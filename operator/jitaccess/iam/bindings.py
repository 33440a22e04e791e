"""The IAM binding format of an activation, and how a binding is recognised as ours.

One binding per role, the requester as the only member, and a condition:
  title       `JIT access activation` (what Google's Just-In-Time Access 1.x writes too)
  description `Self-approved, justification: …` / `Approved by …, justification: …`
              followed by ` [jitaccess.dev/request=<namespace>/<name> uid=<uid>]`
  expression  `(request.time >= timestamp("<start>") && request.time < timestamp("<end>"))`
The expression is built from two datetimes only: user text can never reach it. The reference
at the very end of the description is what marks a binding as ours; a justification that
imitates it cannot sit at the end, because the real reference always follows it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jitaccess.api.times import format_time
from jitaccess.policy.lifecycle import Activation

TITLE = "JIT access activation"
JUSTIFICATION_LIMIT = 200
_REFERENCE = re.compile(
    r" \[jitaccess\.dev/request=([a-z0-9.-]{1,253})/([a-z0-9.-]{1,253}) uid=([0-9a-f-]{1,64})\]\Z"
)


@dataclass(frozen=True)
class Binding:
    """One conditional IAM binding on one resource for one member."""

    resource: str
    role: str
    member: str
    title: str
    description: str
    expression: str

    def to_status(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "role": self.role,
            "member": self.member,
            "condition": {
                "title": self.title,
                "description": self.description,
                "expression": self.expression,
            },
        }

    @classmethod
    def from_status(cls, raw: Mapping[str, Any]) -> Binding:
        condition = raw.get("condition") or {}
        return cls(
            resource=str(raw["resource"]),
            role=str(raw["role"]),
            member=str(raw["member"]),
            title=str(condition.get("title", "")),
            description=str(condition.get("description", "")),
            expression=str(condition.get("expression", "")),
        )

    def condition(self) -> dict[str, str]:
        return {"title": self.title, "description": self.description, "expression": self.expression}


def render(activation: Activation) -> list[Binding]:
    """The bindings that carry out `activation`, one per role, in the order of its roles."""
    expression = (
        f'(request.time >= timestamp("{format_time(activation.start)}") && '
        f'request.time < timestamp("{format_time(activation.end)}"))'
    )
    description = describe(activation)
    return [
        Binding(activation.resource, role, activation.member, TITLE, description, expression)
        for role in activation.roles
    ]


def describe(activation: Activation) -> str:
    """The condition description: who approved, why (shortened, one line), and our reference."""
    who = f"Approved by {', '.join(activation.approvers)}" if activation.approvers else "Self-approved"
    reason = _one_line(activation.justification)
    if len(reason) > JUSTIFICATION_LIMIT:
        reason = reason[: JUSTIFICATION_LIMIT - 1] + "…"
    reference = f" [jitaccess.dev/request={activation.namespace}/{activation.name} uid={activation.uid}]"
    return f"{who}, justification: {reason}{reference}"


def reference_of(condition: Mapping[str, Any] | None) -> tuple[str, str, str] | None:
    """(namespace, name, uid) of the request that wrote a binding with this condition, if ours."""
    if not condition or condition.get("title") != TITLE:
        return None
    match = _REFERENCE.search(str(condition.get("description", "")))
    return (match.group(1), match.group(2), match.group(3)) if match else None


def _one_line(text: str) -> str:
    """Control, invisible, unassigned and separator characters become spaces; runs of spaces collapse."""
    cleaned = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in text)
    return " ".join(cleaned.split())
