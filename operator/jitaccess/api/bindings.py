"""The IAM binding format of an activation, and how a binding is proven to be ours.

One binding per role, the requester as the only member, and a condition:
  title       `JIT access activation` (what Google's Just-In-Time Access 1.x writes too)
  description `Self-approved, justification: …` / `Approved by …, justification: …`
              followed by ` [jitaccess.dev/request=<namespace>/<name> uid=<uid> mac=<mac>]`
  expression  `(request.time >= timestamp("<start>") && request.time < timestamp("<end>"))`
The expression is built from two datetimes only: user text can never reach it. The reference
at the very end of the description names the request; its `mac` (keyed with the attestation
key, over namespace, name and uid) proves that jitaccess wrote it, so a foreign binding that
imitates the text is never taken for ours. References written before the MAC existed (no `mac=`)
are parsed too; see `Reference.verified` for what they are trusted with.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jitaccess.api.seals import mac, verify
from jitaccess.api.times import format_time

TITLE = "JIT access activation"
JUSTIFICATION_LIMIT = 200
MAC_LENGTH = 24  # 96 bits: short enough for a description, far beyond guessing
_REFERENCE = re.compile(
    r" \[jitaccess\.dev/request=([a-z0-9.-]{1,253})/([a-z0-9.-]{1,253}) uid=([0-9a-f-]{1,64})"
    rf"(?: mac=([0-9a-f]{{{MAC_LENGTH}}}))?\]\Z"
)
_PURPOSE = "binding-reference"


@dataclass(frozen=True)
class Reference:
    """Which request a binding belongs to; `mac` proves jitaccess wrote it (None: a pre-MAC one)."""

    namespace: str
    name: str
    uid: str
    mac: str | None = None

    @classmethod
    def sealed(cls, namespace: str, name: str, uid: str, key: bytes) -> Reference:
        return cls(namespace, name, uid, mac(key, _PURPOSE, namespace, name, uid, length=MAC_LENGTH))

    def verified(self, key: bytes) -> bool:
        """Made with `key` for exactly this request. A reference without a MAC never verifies."""
        return verify(key, self.mac, _PURPOSE, self.namespace, self.name, self.uid, length=MAC_LENGTH)

    def legacy(self) -> Reference:
        """The same request's reference as jitaccess 0.1 wrote it, without a MAC."""
        return Reference(self.namespace, self.name, self.uid)

    def text(self) -> str:
        seal = f" mac={self.mac}" if self.mac else ""
        return f" [jitaccess.dev/request={self.namespace}/{self.name} uid={self.uid}{seal}]"


@dataclass(frozen=True)
class Activation:
    """What one activation writes: these roles for this member on this resource, in this window."""

    resource: str
    roles: tuple[str, ...]
    member: str
    start: datetime
    end: datetime
    justification: str
    approvers: tuple[str, ...]
    reference: Reference


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
    return f"{who}, justification: {reason}{activation.reference.text()}"


def parse_reference(condition: Mapping[str, Any] | None) -> Reference | None:
    """The reference a binding's condition carries (not yet verified), or None."""
    if not condition or condition.get("title") != TITLE:
        return None
    match = _REFERENCE.search(str(condition.get("description", "")))
    return Reference(match.group(1), match.group(2), match.group(3), match.group(4)) if match else None


def reference_of(condition: Mapping[str, Any] | None) -> tuple[str, str, str] | None:
    """(namespace, name, uid) that a binding's condition names, MAC checked or not."""
    found = parse_reference(condition)
    return (found.namespace, found.name, found.uid) if found else None


def owned_by(condition: Mapping[str, Any] | None, references: tuple[Reference, ...]) -> bool:
    """Is this exactly the reference of one of `references` (title and trailing reference text)?"""
    found = parse_reference(condition)
    return found is not None and found in references


def _one_line(text: str) -> str:
    """Control, invisible, unassigned and separator characters become spaces; runs of spaces collapse."""
    cleaned = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in text)
    return " ".join(cleaned.split())
