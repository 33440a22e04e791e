"""Google JIT Access 1.x eligibility, as IAM holds it, translated into EligibleGrants.

JIT Access 1.x marks a principal eligible for a role with a conditional binding whose expression
is `has({}.jitAccessConstraint)` (self-approval) or `has({}.multiPartyApprovalConstraint)`
(multi-party approval), possibly ANDed with more clauses (a `resource.name` restriction, say).
Its activations are conditional bindings titled `JIT access activation` with a `request.time`
window. This module is pure: policies in, grants and a report out; nothing is written to IAM.

What cannot be reproduced exactly is reported, never dropped or widened: a binding with extra
clauses (a grant would give the role on the whole resource), members that cannot request
(allUsers, deleted principals), basic roles.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jitaccess.api.bindings import TITLE, reference_of
from jitaccess.api.names import BASIC_ROLES, member_error, role_error

SELF = "self-approval"
MULTI_PARTY = "multi-party approval"
_CONSTRAINTS = {"jitAccessConstraint": SELF, "multiPartyApprovalConstraint": MULTI_PARTY}
_CONSTRAINT = re.compile(r"has\(\s*\{\s*\}\s*\.\s*(jitAccessConstraint|multiPartyApprovalConstraint)\s*\)")
_WINDOW = re.compile(r'timestamp\(\s*"([^"]+)"\s*\)')


@dataclass(frozen=True)
class Eligibility:
    resource: str
    role: str
    members: tuple[str, ...]
    mode: str  # SELF or MULTI_PARTY


@dataclass(frozen=True)
class Activation:
    """A live or past activation written by Google's JIT Access (never touched by jitaccess)."""

    resource: str
    role: str
    member: str
    description: str
    window: tuple[str, ...]  # the timestamps of its request.time condition


@dataclass
class Found:
    eligible: list[Eligibility] = field(default_factory=list)
    activations: list[Activation] = field(default_factory=list)
    untranslated: list[str] = field(default_factory=list)


def read_policy(resource: str, bindings: Iterable[Mapping[str, Any]]) -> Found:
    """What a policy holds of JIT Access 1.x: eligibility, activations, and what cannot be carried over."""
    found = Found()
    for binding in bindings:
        role, members = str(binding.get("role", "")), [str(m) for m in binding.get("members") or ()]
        condition = binding.get("condition") or {}
        expression = " ".join(str(condition.get("expression") or "").split())
        if condition.get("title") == TITLE and reference_of(condition) is None:
            found.activations.extend(
                Activation(
                    resource,
                    role,
                    m,
                    str(condition.get("description") or ""),
                    tuple(_WINDOW.findall(expression)),
                )
                for m in members
            )
            continue
        constraint = _CONSTRAINT.search(expression)
        if constraint is None:
            continue  # not JIT Access eligibility: not ours to judge
        mode = _CONSTRAINTS[constraint.group(1)]
        where = f"{resource}: {role} for {', '.join(members)} ({mode})"
        rest = [c for c in _clauses(expression) if not _CONSTRAINT.fullmatch(c)]
        if rest:
            found.untranslated.append(
                f"{where}: the condition also requires {' && '.join(rest)!r}; an EligibleGrant cannot narrow "
                "a role within its resource, so granting it would give more than JIT Access did. Write a grant "
                "on a narrower resource by hand, or leave this binding with JIT Access."
            )
            continue
        if role in BASIC_ROLES or role_error(role) is not None:
            found.untranslated.append(f"{where}: {role_error(role) or role + ' is a basic role'}")
            continue
        usable = []
        for member in members:
            if member_error(member) is None:
                usable.append(member)
            else:
                found.untranslated.append(
                    f"{resource}: {role}: member {member} cannot request access: {member_error(member)}"
                )
        if usable:
            found.eligible.append(Eligibility(resource, role, tuple(sorted(usable)), mode))
    return found


def _clauses(expression: str) -> list[str]:
    """The top-level `&&` clauses of a CEL expression, outer parentheses removed."""
    text = expression.strip()
    while text.startswith("(") and _closing(text, 0) == len(text) - 1:
        text = text[1:-1].strip()
    clauses, depth, start, quote = [], 0, 0, ""
    for index, char in enumerate(text):
        if quote:
            if char == quote and text[index - 1] != "\\":
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif depth == 0 and text.startswith("&&", index):
            clauses.append(text[start:index].strip())
            start = index + 2
    clauses.append(text[start:].strip())
    out = []
    for clause in clauses:
        while clause.startswith("(") and _closing(clause, 0) == len(clause) - 1:
            clause = clause[1:-1].strip()
        if clause:
            out.append(clause)
    return out


def _closing(text: str, opening: int) -> int:
    depth = 0
    for index in range(opening, len(text)):
        depth += (text[index] == "(") - (text[index] == ")")
        if depth == 0:
            return index
    return -1


def grants(
    eligible: Sequence[Eligibility], max_duration: str, approvers: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """One EligibleGrant per resource, principal set and approval mode, its roles grouped.

    Multi-party approval in JIT Access 1.x lets any other eligible principal of the role approve;
    that is what the grant says too (the requester never counts), unless `approvers` is given.
    """
    groups: dict[tuple[str, tuple[str, ...], str], set[str]] = {}
    for item in eligible:
        groups.setdefault((item.resource, item.members, item.mode), set()).add(item.role)
    out, names = [], set()
    for (resource, members, mode), roles in sorted(groups.items()):
        name = _name(resource, mode, names)
        spec: dict[str, Any] = {
            "resource": resource,
            "roles": sorted(roles),
            "principals": list(members),
            "maxDuration": max_duration,
        }
        if mode == MULTI_PARTY:
            spec["approval"] = {"approvers": list(approvers) or list(members), "minApprovals": 1}
        out.append(
            {
                "apiVersion": "jitaccess.dev/v1alpha1",
                "kind": "EligibleGrant",
                "metadata": {
                    "name": name,
                    "annotations": {
                        "jitaccess.dev/imported-from": f"Google JIT Access 1.x, {resource} ({mode})"
                    },
                },
                "spec": spec,
            }
        )
    return out


def _name(resource: str, mode: str, taken: set[str]) -> str:
    kind, _, identifier = resource.partition("/")
    base = f"{kind.rstrip('s')}-{identifier}-{'self' if mode == SELF else 'mpa'}".lower()
    base = re.sub(r"[^a-z0-9-]", "-", base)[:240]
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base}-{number}"
    taken.add(name)
    return name
