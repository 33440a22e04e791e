"""What the console files, built from what a person typed (pure).

A person chooses only what a request, an extension or a decision is about; who they are comes
from IAP and nowhere else. A body that names a requester, an approver or groups is refused, not
quietly corrected, so a forged page or script learns that it cannot. Everything else (is this
person eligible, may they approve this, is it their own) is admission's to judge, as for kubectl.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from jitaccess.api.bodies import metadata_of, spec_of
from jitaccess.api.objects import GROUP, VERSION
from jitaccess.kubectl_commands import generated_name
from jitaccess.policy.ending_access import ON_BEHALF_OF

REQUEST_FIELDS = frozenset({"grant", "roles", "duration", "justification", "startTime", "breakGlass"})
EXTENSION_FIELDS = frozenset({"duration", "justification"})
DECISION_FIELDS = frozenset({"decision", "comment", "requestUID", "requestDigest"})
IDENTITY_FIELDS = frozenset({"requester", "requesterGroups", "approver", "approverGroups"})
DECISIONS = ("Approve", "Deny", "Review", "Revoke")


class Invalid(Exception):
    """The body is not something the console files (400, with this reason)."""


def _fields(data: object, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise Invalid("the body must be a JSON object")
    extra = sorted(set(data) - allowed)
    named = [field for field in extra if field in IDENTITY_FIELDS]
    if named:
        raise Invalid(
            f"{named[0]}: the console files as you, the person Identity-Aware Proxy signed in; "
            "nobody can be named here"
        )
    if extra:
        raise Invalid(f"{extra[0]}: not a field the console takes (it takes {', '.join(sorted(allowed))})")
    return data


def _text(data: Mapping[str, Any], name: str, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise Invalid(f"{name}: required")
        return None
    if not isinstance(value, str):
        raise Invalid(f"{name}: must be a string")
    return value


def _local_part(member: str) -> str:
    return member.partition(":")[2].partition("@")[0]


def _token() -> str:
    return secrets.token_hex(3)


def _object(kind: str, name: str, namespace: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": dict(spec),
    }


def new_request(data: object, member: str, namespace: str) -> dict[str, Any]:
    """An ActivationRequest in `namespace` for `member`, from the page's form."""
    fields = _fields(data, REQUEST_FIELDS)
    grant = _text(fields, "grant", required=True)
    assert grant is not None
    spec: dict[str, Any] = {"grant": grant, "justification": _text(fields, "justification") or ""}
    roles = fields.get("roles")
    if roles is not None and roles != []:
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise Invalid("roles: must be a list of role names")
        spec["roles"] = roles
    for name in ("duration", "startTime"):
        if (value := _text(fields, name)) is not None:
            spec[name] = value
    if fields.get("breakGlass") not in (None, False):
        if fields["breakGlass"] is not True:
            raise Invalid("breakGlass: must be true or false")
        spec["breakGlass"] = True
    spec["requester"] = member
    name = generated_name(_local_part(member), grant, token=_token())
    return _object("ActivationRequest", name, namespace, spec)


def extension(data: object, extended: Mapping[str, Any], member: str) -> dict[str, Any]:
    """A request that continues `extended`'s access: its grant and roles, in its namespace."""
    fields = _fields(data, EXTENSION_FIELDS)
    before, metadata = spec_of(extended), metadata_of(extended)
    name = str(metadata.get("name") or "")
    spec: dict[str, Any] = {
        "grant": before.get("grant"),
        "justification": _text(fields, "justification") or "",
        "extends": name,
        "requester": member,
    }
    if before.get("roles"):
        spec["roles"] = before["roles"]
    if (duration := _text(fields, "duration")) is not None:
        spec["duration"] = duration
    return _object(
        "ActivationRequest",
        generated_name(name, "more", token=_token()),
        str(metadata.get("namespace") or ""),
        spec,
    )


def decision(data: object, request: Mapping[str, Any], member: str) -> dict[str, Any]:
    """An ActivationApproval by `member` on `request`, pinned to the object (and, when the page
    sends it, the terms) the person was shown: admission refuses it if either changed since."""
    fields = _fields(data, DECISION_FIELDS)
    verdict = _text(fields, "decision", required=True)
    if verdict not in DECISIONS:
        raise Invalid(f"decision: must be one of {', '.join(DECISIONS)}")
    metadata = metadata_of(request)
    spec: dict[str, Any] = {
        "request": metadata.get("name"),
        "decision": verdict,
        "comment": _text(fields, "comment") or "",
        "approver": member,
        "requestUID": _text(fields, "requestUID") or metadata.get("uid"),
    }
    if (digest := _text(fields, "requestDigest")) is not None:
        spec["requestDigest"] = digest
    name = generated_name(str(metadata.get("name") or ""), verdict, token=_token(), limit=253)
    return _object("ActivationApproval", name, str(metadata.get("namespace") or ""), spec)


def revocation(member: str) -> dict[str, Any]:
    """The merge patch that revokes a request for `member` (admission: only if they requested it)."""
    return {"metadata": {"annotations": {ON_BEHALF_OF: member}}, "spec": {"revoke": True}}
