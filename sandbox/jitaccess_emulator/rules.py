"""IAM allow-policy semantics: versions, etags, validation, limits and normalisation.

Pure functions over plain JSON-shaped dicts (the REST wire format), so they can be tested
without a server. Each rejection raises `IamError` with the HTTP status, the google.rpc status
name and a message shaped like Google's.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})
PUBLIC_MEMBERS = frozenset({"allUsers", "allAuthenticatedUsers"})
MEMBER_PREFIXES = (
    "user:",
    "group:",
    "serviceAccount:",
    "domain:",
    "deleted:",
    "principal://",
    "principalSet://",
)
ROLE = re.compile(r"roles/[A-Za-z0-9_.]+|(projects|organizations)/[^/]+/roles/[A-Za-z0-9_.]+")
TIMESTAMP_LITERAL = re.compile(r'timestamp\(\s*(["\'])(.*?)\1\s*\)')
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
ETAG_MISMATCH = (
    "There were concurrent policy changes. Please retry the whole read-modify-write with exponential backoff."
)


@dataclass
class Limits:
    """IAM's documented limits (GCP-IAM.md §0); the size cap is a field report (~64 KB)."""

    principals: int = 1500
    groups_and_domains: int = 250
    same_role_member_conditions: int = 20
    logical_operators: int = 12
    policy_bytes: int = 64 * 1024


class IamError(Exception):
    def __init__(
        self, code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.details = details or []

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}


def bad_request(message: str) -> IamError:
    return IamError(400, "INVALID_ARGUMENT", message)


@dataclass
class StoredPolicy:
    bindings: list[dict[str, Any]] = field(default_factory=list)
    audit_configs: list[dict[str, Any]] = field(default_factory=list)
    etag: bytes = b"\x00" * 8

    @property
    def has_conditions(self) -> bool:
        return any(binding.get("condition") for binding in self.bindings)

    def etag_text(self) -> str:
        return base64.b64encode(self.etag).decode()


def new_etag(bindings: list[dict[str, Any]], counter: int) -> bytes:
    """8 bytes like Google's (`BwWKmjvelug=`), different after every write."""
    digest = hashlib.sha256(json.dumps([counter, bindings], sort_keys=True).encode()).digest()
    return digest[:8]


def render(policy: StoredPolicy, requested_version: int) -> dict[str, Any]:
    """getIamPolicy's answer: v3 with conditions only when asked; otherwise v1 and `_withcond_` roles."""
    if requested_version not in (0, 1, 3):
        raise bad_request(
            f"Invalid requested policy version {requested_version}. Valid versions are 0, 1 and 3."
        )
    out: dict[str, Any] = {"version": 1, "etag": policy.etag_text()}
    bindings = policy.bindings
    if policy.has_conditions:
        if requested_version == 3:
            out["version"] = 3
        else:
            bindings = [_withcond(binding) for binding in bindings]
    if bindings:
        out["bindings"] = bindings
    if policy.audit_configs:
        out["auditConfigs"] = policy.audit_configs
    return out


def apply_set(
    stored: StoredPolicy,
    body: dict[str, Any],
    *,
    resource: str,
    limits: Limits,
    unknown_roles: frozenset[str],
    counter: int,
) -> StoredPolicy:
    """setIamPolicy: check etag and version, validate, normalise; the new stored policy or IamError."""
    incoming = body.get("policy")
    if not isinstance(incoming, dict):
        raise bad_request("Invalid JSON payload: 'policy' is required.")
    mask = {
        part.strip() for part in str(body.get("updateMask") or "bindings,etag").split(",") if part.strip()
    }
    etag = incoming.get("etag")
    if etag:
        try:
            sent = base64.b64decode(etag, validate=True)
        except ValueError:
            raise bad_request(f"Invalid value at 'policy.etag' ({etag!r}): not base64.") from None
        if sent != stored.etag:
            raise IamError(
                409,
                "ABORTED",
                ETAG_MISMATCH + f" The request's ETag '{etag}' did not match the "
                f"current policy's ETag '{stored.etag_text()}'.",
            )
    version = incoming.get("version", 1) or 1
    if version not in (1, 3):
        raise bad_request(f"Invalid policy version {version}. Valid versions are 1 and 3.")
    bindings = (incoming.get("bindings") or []) if "bindings" in mask else stored.bindings
    if not isinstance(bindings, list):
        raise bad_request("Invalid value at 'policy.bindings': must be a list.")
    has_conditions = any(isinstance(b, dict) and b.get("condition") for b in bindings)
    if has_conditions and version < 3:
        raise bad_request("Conditions are only supported in policy version 3; set policy.version to 3.")
    if etag and stored.has_conditions and version < 3:
        raise bad_request(
            f"Specified policy version ({version}) cannot be less than the existing policy version (3)."
        )
    normalised = normalise(
        [validate_binding(b, index, resource, unknown_roles) for index, b in enumerate(bindings)]
    )
    check_limits(normalised, limits)
    audit = (incoming.get("auditConfigs") or []) if "auditConfigs" in mask else stored.audit_configs
    return StoredPolicy(bindings=normalised, audit_configs=audit, etag=new_etag(normalised, counter))


def validate_binding(
    binding: object, index: int, resource: str, unknown_roles: frozenset[str]
) -> dict[str, Any]:
    where = f"policy.bindings[{index}]"
    if not isinstance(binding, dict):
        raise bad_request(f"Invalid value at '{where}': must be an object.")
    role = binding.get("role")
    if not isinstance(role, str) or not ROLE.fullmatch(role) or "_withcond_" in role:
        raise bad_request(
            f"Role {role} is not supported for this resource."
            if isinstance(role, str)
            else f"Invalid value at '{where}.role'."
        )
    if role in unknown_roles:
        raise bad_request(f"Role {role} is not supported for this resource.")
    members = binding.get("members")
    if not isinstance(members, list) or not members:
        raise bad_request(f"Policy binding {where} for role {role} has no members.")
    for member in members:
        if not isinstance(member, str):
            raise bad_request(f"Invalid value at '{where}.members'.")
        if member in PUBLIC_MEMBERS:
            if resource.startswith("projects/"):
                raise bad_request(f"Policy members must not include {member} on a project.")
            continue
        if not member.startswith(MEMBER_PREFIXES):
            if "@" in member:
                raise bad_request(
                    f'Invalid member {member}: Account {member} is of type "user". '
                    'Please set the type prefix to be "user:".'
                )
            raise bad_request(f"Invalid member {member}: unknown member type.")
    out: dict[str, Any] = {"role": role, "members": list(members)}
    condition = binding.get("condition")
    if condition:
        out["condition"] = validate_condition(condition, role, members, where)
    return out


def validate_condition(condition: object, role: str, members: list[str], where: str) -> dict[str, str]:
    if not isinstance(condition, dict):
        raise bad_request(f"Invalid value at '{where}.condition'.")
    title, expression = condition.get("title"), condition.get("expression")
    if not isinstance(title, str) or not title:
        raise bad_request(f"Condition title is required ({where}.condition.title).")
    if not isinstance(expression, str) or not expression.strip():
        raise bad_request(f"Condition expression is required ({where}.condition.expression).")
    if role in BASIC_ROLES:
        raise bad_request(f"Conditions are not supported for the basic role {role}.")
    if PUBLIC_MEMBERS.intersection(members):
        raise bad_request("Conditions are not supported for allUsers or allAuthenticatedUsers.")
    _check_expression(expression)
    out = {"title": title, "expression": expression}
    if condition.get("description"):
        out["description"] = str(condition["description"])
    return out


@functools.lru_cache(maxsize=65536)
def _check_expression(expression: str) -> None:
    """The parts of CEL validation that matter here: balanced syntax, literals, operator count.

    Cached (a refusal raises, and is not cached): a policy's expressions are re-checked on every
    write, and a busy policy holds hundreds of them.
    """
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expression)
    depth = 0
    for ch in stripped:
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            break
    if depth != 0 or stripped.count('"') % 2:
        raise bad_request("Condition expression is not valid CEL: unbalanced parentheses or quotes.")
    operators = len(re.findall(r"&&|\|\||!(?!=)", stripped))
    if operators > 12:
        raise bad_request(f"Condition expression has {operators} logical operators; the limit is 12.")
    for _, literal in TIMESTAMP_LITERAL.findall(expression):
        if not RFC3339.fullmatch(literal):
            raise bad_request(f"Condition expression has an invalid timestamp literal {literal!r}.")


def normalise(bindings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Merge bindings of the same role and condition; de-duplicate members, keeping first order."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for binding in bindings:
        condition = binding.get("condition") or {}
        key = (binding["role"], *sorted(condition.items()))
        target = merged.setdefault(key, {**binding, "members": []})
        for member in binding["members"]:
            if member not in target["members"]:
                target["members"].append(member)
    return list(merged.values())


def check_limits(bindings: list[dict[str, Any]], limits: Limits) -> None:
    occurrences = sum(len(binding["members"]) for binding in bindings)
    if occurrences > limits.principals:
        raise bad_request(
            f"The number of members in the policy ({occurrences}) is larger than the maximum "
            f"allowed size {limits.principals}."
        )
    groups = {m for b in bindings for m in b["members"] if m.startswith("group:")}
    domains = sum(1 for b in bindings for m in b["members"] if m.startswith("domain:"))
    if len(groups) + domains > limits.groups_and_domains:
        raise bad_request(
            f"The policy names {len(groups) + domains} groups and domains; "
            f"the limit is {limits.groups_and_domains}."
        )
    per_pair = Counter((b["role"], m) for b in bindings if b.get("condition") for m in b["members"])
    for (role, member), count in per_pair.items():
        if count > limits.same_role_member_conditions:
            raise bad_request(
                f"The policy has {count} conditional bindings of role {role} for member {member}; "
                f"the limit is {limits.same_role_member_conditions}."
            )
    size = len(json.dumps(bindings, separators=(",", ":")).encode())
    if size > limits.policy_bytes:
        raise bad_request(f"The policy is {size} bytes; the size limit is {limits.policy_bytes} bytes.")


def _withcond(binding: dict[str, Any]) -> dict[str, Any]:
    condition = binding.get("condition")
    if not condition:
        return binding
    digest = hashlib.sha1(json.dumps(condition, sort_keys=True).encode()).hexdigest()[:20]
    return {"role": f"{binding['role']}_withcond_{digest}", "members": binding["members"]}
