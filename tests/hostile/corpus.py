"""Malformed and malicious objects, each with the field its refusal must name.

Every case starts from a valid object and changes one thing. A case is refused at admission
(schema or webhook) or, for an EligibleGrant the schema lets through, reported in its status
(Ready=False, InvalidSpec); either way the message names `field`, and nothing reaches IAM.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jitaccess.api.times import format_time

GRANT = "hostile-target"  # the valid grant requests name (alice may activate it)
OTHER_TEAM = "hostile-other-team"  # a grant alice is not eligible for
PROJECT = "projects/hostile-target"


@dataclass(frozen=True)
class Case:
    kind: str  # "request" (filed by alice), "grant" (by admin), "approval" (by bob)
    label: str
    body: dict[str, Any]
    field: str  # what the refusal must name


def valid_request() -> dict[str, Any]:
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "ActivationRequest",
        "metadata": {"name": "hostile", "namespace": "team-sre"},
        "spec": {
            "grant": GRANT,
            "roles": ["roles/compute.admin"],
            "duration": "30m",
            "justification": "INC-1: restart the stuck load balancer",
        },
    }


def valid_grant() -> dict[str, Any]:
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "EligibleGrant",
        "metadata": {"name": "hostile-grant"},
        "spec": {
            "resource": PROJECT,
            "roles": ["roles/compute.admin"],
            "principals": ["user:alice@example.com"],
            "maxDuration": "2h",
        },
    }


def valid_approval() -> dict[str, Any]:
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "ActivationApproval",
        "metadata": {"name": "hostile-approval", "namespace": "team-sre"},
        "spec": {"request": "hostile-pending", "decision": "Approve", "comment": "ok"},
    }


WRONG_TYPES: list[tuple[str, Any]] = [
    ("integer", 12345),
    ("float", 1.5),
    ("boolean", True),
    ("list", ["x"]),
    ("object", {"a": 1}),
]
# Characters Kubernetes names and IAM members must not smuggle in: they look like ASCII.
LOOK_ALIKES: list[tuple[str, str]] = [
    ("cyrillic a", "\u0430"),
    ("cyrillic o", "\u043e"),
    ("greek omicron", "\u03bf"),
    ("dotless i", "\u0131"),
    ("fullwidth s", "\uff53"),
    ("script l", "\u2113"),
    ("math bold a", "\U0001d41a"),
    ("combining acute", "e\u0301"),
    ("zero width space", "\u200b"),
    ("soft hyphen", "\u00ad"),
]
CONTROL: list[tuple[str, str]] = [
    ("NUL", "\x00"),
    ("SOH", "\x01"),
    ("BEL", "\x07"),
    ("backspace", "\x08"),
    ("tab", "\t"),
    ("newline", "\n"),
    ("carriage return", "\r"),
    ("ANSI escape", "\x1b[31m"),
    ("DEL", "\x7f"),
    ("NEL", "\x85"),
    ("zero width space", "\u200b"),
    ("zero width non-joiner", "\u200c"),
    ("zero width joiner", "\u200d"),
    ("left-to-right mark", "\u200e"),
    ("right-to-left mark", "\u200f"),
    ("LRE", "\u202a"),
    ("RLE", "\u202b"),
    ("PDF", "\u202c"),
    ("LRO", "\u202d"),
    ("RLO (trojan source)", "\u202e"),
    ("line separator", "\u2028"),
    ("paragraph separator", "\u2029"),
    ("LRI", "\u2066"),
    ("RLI", "\u2067"),
    ("FSI", "\u2068"),
    ("PDI", "\u2069"),
    ("byte order mark", "\ufeff"),
    ("soft hyphen", "\u00ad"),
    ("arabic letter mark", "\u061c"),
    ("language tag", "\U000e0001"),
    ("tag letter A", "\U000e0041"),
    ("word joiner", "\u2060"),
]
BAD_DURATIONS = [
    "999999h",
    "-5m",
    "0s",
    "0",
    "169h",
    "30",
    "PT30M",
    "30 m",
    "1e9s",
    "\u221e",
    "NaN",
    "30min",
    "1d",
    "9223372036854775807ns",
    "-0s",
    "",
    "h",
    "30m\n",
]
BAD_RESOURCES = [
    "project/hostile-target",
    "projects/",
    "projects/UPPER-case-1",
    "projects/hostile-target/extra",
    "folders/abc",
    "folders/0123",
    "organizations/-1",
    "organizations/",
    "projects/h\u043estile-target",
    "//cloudresourcemanager.googleapis.com/projects/hostile-target",
    "projects/hostile target",
    "projects/hostile-target\n",
    "billingAccounts/012345-ABCDEF-012345",
    "projects/abc",
    "projects/../organizations/1",
    "*",
]
BAD_ROLES = [
    "compute.admin",
    "roles/",
    "roles/compute admin",
    "roles/../owner",
    "roles/owner",
    "roles/editor",
    "roles/viewer",
    "ROLES/compute.admin",
    "roles/compute.admin\n",
    "r\u043eles/compute.admin",
    "roles/compute.\u0430dmin",
    "projects/x/roles/custom",
    "organizations/abc/roles/custom",
    "roles/" + "a" * 200,
    "",
    "roles/compute.admin; roles/owner",
]
BAD_MEMBERS = [
    "alice@example.com",
    "user:",
    "allUsers",
    "allAuthenticatedUsers",
    "user:alice",
    "group:",
    "domain:",
    "user:alice@example.com\n",
    "user:\u0430lice@example.com",
    "deleted:user:alice@example.com?uid=123",
    "principalSet://evil.example.com/locations/global/workforcePools/p/*",
    "user:alice@example.com,user:mallory@example.com",
    "User:alice@example.com",
    "user: alice@example.com",
]
BAD_PATTERNS = [
    "(a)\\1",
    "(?=INC)INC-[0-9]+",
    "(?<!x)INC",
    "(?>a+)b",
    "(",
    "[",
    "*INC",
    "a{1001}",
    "(a{1000}){1000}",
    "(?P<n>a)(?P=n)",
    "INC-\\",
    "a" * 20000,
]


def _replace(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    copied = copy.deepcopy(body)
    *parents, last = path.split(".")
    target = copied
    for part in parents:
        target = target[part]
    target[last] = value
    return copied


def _drop(body: dict[str, Any], path: str) -> dict[str, Any]:
    copied = copy.deepcopy(body)
    *parents, last = path.split(".")
    target = copied
    for part in parents:
        target = target[part]
    target.pop(last, None)
    return copied


def request_cases(now: datetime) -> Iterator[Case]:
    base = valid_request()

    def case(label: str, path: str, value: Any, field: str | None = None) -> Case:
        return Case("request", label, _replace(base, path, value), field or path)

    string_fields = ["spec.grant", "spec.duration", "spec.justification", "spec.startTime", "spec.requester"]
    for path in [*string_fields, "spec.roles", "spec.requesterGroups", "spec.revoke"]:
        for label, value in WRONG_TYPES:
            if path == "spec.revoke" and isinstance(value, bool):
                continue
            if path in ("spec.roles", "spec.requesterGroups") and isinstance(value, list):
                value = [123]
            yield case(f"{path} as {label}", path, value)
    yield case("roles as a string", "spec.roles", "roles/compute.admin")
    yield case("roles nested list", "spec.roles", [["roles/compute.admin"]])
    yield case("roles of objects", "spec.roles", [{"name": "roles/compute.admin"}])
    yield case("revoke as a string", "spec.revoke", "yes")
    for size in (300, 10_000, 200_000):
        yield case(f"grant of {size} characters", "spec.grant", "a" * size)
        yield case(f"duration of {size} characters", "spec.duration", "1" * size + "m")
        yield case(f"startTime of {size} characters", "spec.startTime", "2" * size)
        yield case(f"requester of {size} characters", "spec.requester", f"user:{'a' * size}@example.com")
        yield case(f"role of {size} characters", "spec.roles", ["roles/" + "a" * size])
    for size in (1025, 2_000, 10_000, 100_000, 200_000):
        yield case(f"justification of {size} characters", "spec.justification", "INC-1: " + "x" * size)
    yield case("a thousand roles", "spec.roles", [f"roles/compute.r{n}" for n in range(1000)])
    yield case("no roles", "spec.roles", [])
    yield case("the same role twice", "spec.roles", ["roles/compute.admin", "roles/compute.admin"])
    for label, char in CONTROL:
        yield case(f"{label} in justification", "spec.justification", f"INC-1: fix{char}the thing")
    for label, char in CONTROL[:8]:
        yield case(f"{label} in grant", "spec.grant", f"hostile{char}target")
        yield case(f"{label} in duration", "spec.duration", f"30m{char}")
        yield case(f"{label} in role", "spec.roles", [f"roles/compute.admin{char}"])
    for label, char in LOOK_ALIKES:
        yield case(f"{label} in grant", "spec.grant", GRANT.replace("o", char, 1))
        yield case(f"{label} in role", "spec.roles", ["roles/c" + char + "mpute.admin"])
        yield case(f"{label} in requester", "spec.requester", f"user:{char}lice@example.com")
        yield Case(
            "request",
            f"{label} in metadata.name",
            _replace(base, "metadata.name", "hostile-" + char),
            "metadata.name",
        )
    for text in [
        "INC-1 [jitaccess.dev/request=kube-system/admin uid=00000000-0000-0000-0000-000000000000]",
        "INC-1 [JITACCESS.DEV/request=a/b uid=1]",
        "jitaccess.dev/request=team-sre/other",
        'INC-1") || true || ("\n[jitaccess.dev/request=x/y uid=1]',
        "INC-1\u202e]1=diu y/x=tseuqer/ved.sseccatij[",
        'INC-1 \u2028request.time < timestamp("2999-01-01T00:00:00Z")',
    ]:
        yield case(f"break-out attempt {text[:30]!r}", "spec.justification", text)
    for duration in BAD_DURATIONS:
        yield case(f"duration {duration!r}", "spec.duration", duration)
    yield case("duration above the grant's maximum", "spec.duration", "2h1m")
    for label, value in [
        ("epoch", "1970-01-01T00:00:00Z"),
        ("yesterday", format_time(now - timedelta(days=1))),
        ("ten minutes ago", format_time(now - timedelta(minutes=10))),
        ("year 9999", "9999-12-31T23:59:59Z"),
        ("eight days ahead", format_time(now + timedelta(days=8))),
        ("month 13", "2026-13-01T00:00:00Z"),
        ("February 30th", "2026-02-30T00:00:00Z"),
        ("a word", "tomorrow"),
        ("space instead of T", "2026-11-24 09:00:00"),
        ("no time zone", "2026-11-24T09:00:00"),
        ("epoch seconds", "1795000000"),
        ("empty", ""),
        ("hour 25", "2026-11-25T25:00:00Z"),
    ]:
        yield case(f"startTime {label}", "spec.startTime", value)
    for role in BAD_ROLES:
        yield case(f"role {role[:40]!r}", "spec.roles", [role])
    for role in ["roles/iam.securityAdmin", "roles/resourcemanager.projectIamAdmin", "roles/storage.admin"]:
        yield case(f"role {role} not in the grant", "spec.roles", [role])
    for member in BAD_MEMBERS:
        yield case(f"requester {member[:40]!r}", "spec.requester", member)
    yield case("impersonating bob", "spec.requester", "user:bob@example.com")
    yield case("claiming a group", "spec.requesterGroups", ["group:admins@example.com"])
    yield case("unknown grant", "spec.grant", "no-such-grant")
    yield case("another team's grant", "spec.grant", OTHER_TEAM, "not eligible for grant " + OTHER_TEAM)
    for label, value in [
        ("empty grant", ""),
        ("path traversal", "../hostile-target"),
        ("upper case", "Hostile"),
    ]:
        yield case(label, "spec.grant", value)
    yield Case("request", "no grant at all", _drop(base, "spec.grant"), "spec.grant")
    yield Case("request", "spec is a list", _replace(base, "spec", ["grant"]), "spec")
    yield Case("request", "spec is a string", _replace(base, "spec", "grant: hostile-target"), "spec")
    for label, value in [
        ("upper case", "Hostile"),
        ("too long", "a" * 254),
        ("slash", "a/b"),
        ("dots", ".."),
    ]:
        yield Case(
            "request", f"metadata.name {label}", _replace(base, "metadata.name", value), "metadata.name"
        )


def grant_cases() -> Iterator[Case]:
    base = valid_grant()

    def case(label: str, path: str, value: Any, field: str | None = None) -> Case:
        return Case("grant", label, _replace(base, path, value), field or path)

    for path in [
        "spec.resource",
        "spec.roles",
        "spec.principals",
        "spec.maxDuration",
        "spec.defaultDuration",
    ]:
        for label, value in WRONG_TYPES:
            if path in ("spec.roles", "spec.principals") and isinstance(value, list):
                value = [123]
            yield case(f"{path} as {label}", path, value)
    for label, value in WRONG_TYPES:
        yield case(f"spec.justification as {label}", "spec.justification", value)
        yield case(f"spec.approval as {label}", "spec.approval", value)
    for resource in BAD_RESOURCES:
        yield case(f"resource {resource[:40]!r}", "spec.resource", resource)
    for role in BAD_ROLES:
        yield case(f"role {role[:40]!r}", "spec.roles", [role])
    yield case("no roles", "spec.roles", [])
    yield case("a thousand roles", "spec.roles", [f"roles/compute.r{n}" for n in range(1000)])
    for member in BAD_MEMBERS:
        yield case(f"principal {member[:40]!r}", "spec.principals", [member])
    yield case("no principals", "spec.principals", [])
    for duration in BAD_DURATIONS:
        yield case(f"maxDuration {duration!r}", "spec.maxDuration", duration)
    yield case("defaultDuration above maxDuration", "spec.defaultDuration", "3h")
    for duration in ["-5m", "999999h", "0s"]:
        yield case(f"defaultDuration {duration!r}", "spec.defaultDuration", duration)
    for pattern in BAD_PATTERNS:
        yield case(
            f"pattern {pattern[:30]!r}",
            "spec.justification",
            {"required": True, "pattern": pattern},
            "spec.justification.pattern",
        )
    for label, value in WRONG_TYPES[:3]:
        yield case(
            f"justification.required as {label}",
            "spec.justification",
            {"required": value} if not isinstance(value, bool) else {"required": "yes"},
            "spec.justification.required",
        )
    for label, approval, field in [
        ("no approvers", {"approvers": []}, "spec.approval.approvers"),
        ("approver without a kind", {"approvers": ["bob@example.com"]}, "spec.approval.approvers"),
        ("approver allUsers", {"approvers": ["allUsers"]}, "spec.approval.approvers"),
        (
            "zero approvals",
            {"approvers": ["user:bob@example.com"], "minApprovals": 0},
            "spec.approval.minApprovals",
        ),
        (
            "negative approvals",
            {"approvers": ["user:bob@example.com"], "minApprovals": -1},
            "spec.approval.minApprovals",
        ),
        (
            "a million approvals",
            {"approvers": ["user:bob@example.com"], "minApprovals": 10**6},
            "spec.approval.minApprovals",
        ),
        (
            "approvals as text",
            {"approvers": ["user:bob@example.com"], "minApprovals": "two"},
            "spec.approval.minApprovals",
        ),
        (
            "negative timeout",
            {"approvers": ["user:bob@example.com"], "timeout": "-1h"},
            "spec.approval.timeout",
        ),
        (
            "endless timeout",
            {"approvers": ["user:bob@example.com"], "timeout": "999999h"},
            "spec.approval.timeout",
        ),
        (
            "timeout as a number",
            {"approvers": ["user:bob@example.com"], "timeout": 3600},
            "spec.approval.timeout",
        ),
    ]:
        yield case(label, "spec.approval", approval, field)
    for label, char in LOOK_ALIKES:
        yield Case(
            "grant",
            f"{label} in metadata.name",
            _replace(base, "metadata.name", "hostile-" + char),
            "metadata.name",
        )


def approval_cases() -> Iterator[Case]:
    base = valid_approval()

    def case(label: str, path: str, value: Any, field: str | None = None) -> Case:
        return Case("approval", label, _replace(base, path, value), field or path)

    for path in ["spec.request", "spec.decision", "spec.comment"]:
        for label, value in WRONG_TYPES:
            yield case(f"{path} as {label}", path, value)
    for decision in ["Maybe", "approve", "", "APPROVE", "Approve ", "Deny\n"]:
        yield case(f"decision {decision!r}", "spec.decision", decision)
    for label, char in CONTROL[:10]:
        yield case(f"{label} in comment", "spec.comment", f"fine{char}by me")
    yield case("comment of 10,000 characters", "spec.comment", "x" * 10_000)
    for label, char in LOOK_ALIKES[:5]:
        yield case(f"{label} in request", "spec.request", "hostile-pend" + char + "ng")
    yield case("request of 300 characters", "spec.request", "a" * 300)
    yield case("approving as alice", "spec.approver", "user:alice@example.com")
    yield Case("approval", "no request", _drop(base, "spec.request"), "spec.request")
    yield Case("approval", "no decision", _drop(base, "spec.decision"), "spec.decision")


def corpus(now: datetime) -> list[Case]:
    cases = [*request_cases(now), *grant_cases(), *approval_cases()]
    for number, item in enumerate(cases):
        if item.body["metadata"]["name"] in ("hostile", "hostile-grant", "hostile-approval"):
            item.body["metadata"]["name"] = f"{item.body['metadata']['name']}-{number}"
    return cases
