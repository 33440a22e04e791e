"""Names of Google Cloud resources, roles and IAM members, and what makes each one valid.

crds/ carries these patterns as api/schema_rules.py derives them (so `kubectl apply` refuses
obvious mistakes); everything else is checked here.
"""

from __future__ import annotations

import re

PROJECT_ID = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"
NUMBER = r"[1-9][0-9]{0,19}"
RESOURCE = re.compile(rf"projects/{PROJECT_ID}|folders/{NUMBER}|organizations/{NUMBER}")
ROLE = re.compile(
    rf"roles/[A-Za-z0-9_.]{{1,100}}"
    rf"|projects/{PROJECT_ID}/roles/[A-Za-z0-9_.]{{3,64}}"
    rf"|organizations/{NUMBER}/roles/[A-Za-z0-9_.]{{3,64}}"
)
# IAM refuses conditions on the basic roles, and every binding we write is conditional.
BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})
EMAIL = re.compile(r"[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
DOMAIN = re.compile(r"[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
WORKFORCE_OR_WORKLOAD = re.compile(r"principal(?:Set)?://iam\.googleapis\.com/[A-Za-z0-9._~/@*:=-]{1,400}")
GOOGLE_SERVICE_ACCOUNT_SUFFIX = ".iam.gserviceaccount.com"

# Who may be listed as a principal or approver of a grant, and who can be a requester.
PRINCIPAL_KINDS = ("user", "group", "serviceAccount", "domain")
REQUESTER_KINDS = ("user", "serviceAccount")


def resource_error(name: object) -> str | None:
    """Why `name` is not a resource we can grant on, or None when it is one."""
    if not isinstance(name, str) or RESOURCE.fullmatch(name) is None:
        return (
            f"{_show(name)} is not a Google Cloud resource name; use projects/PROJECT_ID, "
            "folders/NUMBER or organizations/NUMBER"
        )
    return None


def role_error(role: object) -> str | None:
    """Why `role` cannot be activated, or None when it can."""
    if not isinstance(role, str) or ROLE.fullmatch(role) is None:
        return (
            f"{_show(role)} is not a role name; use roles/NAME, projects/ID/roles/NAME "
            "or organizations/NUMBER/roles/NAME"
        )
    if role in BASIC_ROLES:
        return f"{role} is a basic role, which IAM cannot grant with a time condition; use a predefined role"
    return None


def member_error(member: object, kinds: tuple[str, ...] = PRINCIPAL_KINDS) -> str | None:
    """Why `member` is not an IAM member of one of `kinds` (or a workforce principal), or None."""
    if not isinstance(member, str):
        return f"{_show(member)} is not a string"
    if WORKFORCE_OR_WORKLOAD.fullmatch(member):
        if kinds == REQUESTER_KINDS and member.startswith("principalSet://"):
            return f"{_show(member)} names a set of identities; a request is for one (principal://…)"
        return None
    kind, _, value = member.partition(":")
    if kind not in kinds:
        allowed = ", ".join(f"{k}:" for k in kinds)
        return f"{_show(member)} must start with one of {allowed} or be a principal:// identifier"
    pattern = DOMAIN if kind == "domain" else EMAIL
    if pattern.fullmatch(value) is None:
        what = "a domain name" if kind == "domain" else "an e-mail address"
        return f"{_show(member)}: {kind}: must be followed by {what}"
    return None


def email_domain(member: str) -> str | None:
    """The domain part of an e-mail member (`user:a@example.com` -> `example.com`), lowercased."""
    _, _, value = member.partition(":")
    if "@" not in value:
        return None
    return value.rpartition("@")[2].lower()


def _show(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…'"


def normal_member(member: str) -> str:
    """One spelling per identity, as IAM compares them: e-mail addresses and domains are
    case-insensitive, so `user:Bob@Example.com` and `user:bob@example.com` are one person.
    The kind prefix (`user:`, `serviceAccount:`) and principal:// identifiers keep their case."""
    kind, colon, value = member.partition(":")
    if colon and kind in ("user", "group", "serviceAccount", "domain"):
        return f"{kind}:{value.lower()}"
    return member
