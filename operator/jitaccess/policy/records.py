"""The operator's own record on each ActivationRequest: sealed annotations, never its status.

Status is what the operator shows; anyone who may write the status subresource could make it
say anything. What the operator must remember to act safely lives in annotations on the object
itself, where admission lets only the operator's service account change `jitaccess.dev/` keys,
each sealed with a keyed MAC over the request's namespace, name and uid:

- `jitaccess.dev/activation`: what was written to IAM (resource, roles, member, window,
  approvers), recorded once the write succeeded. Present: the request holds access.
- `jitaccess.dev/ended`: how and when the request ended. Present: nothing ever starts again.
- `jitaccess.dev/revoked-by`, `jitaccess.dev/deleted-by`: who ended someone's access, stamped by
  the admission webhook from the authenticated caller.

A record whose seal does not verify was written by someone else: `Records.tampered` names it.
Because the seal covers the uid, a record copied onto another object (or a restored one) is void.
Pure: the reconciler and the webhooks read and write these through the Kubernetes API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jitaccess.api.bodies import metadata_of
from jitaccess.api.phases import Phase, phase_of
from jitaccess.api.seals import mac, verify
from jitaccess.api.times import format_time, parse_time

PREFIX = "jitaccess.dev/"
FINALIZER = "jitaccess.dev/revoke-on-delete"  # removed only once the request holds nothing
ACTIVATION = "jitaccess.dev/activation"
ENDED = "jitaccess.dev/ended"
REVOKED_BY = "jitaccess.dev/revoked-by"
DELETED_BY = "jitaccess.dev/deleted-by"
SEALED = (ACTIVATION, ENDED, REVOKED_BY, DELETED_BY)


@dataclass(frozen=True)
class Held:
    """What the operator wrote to IAM for one request (and so what it must remove)."""

    resource: str
    roles: tuple[str, ...]
    member: str
    start: datetime
    end: datetime
    approvers: tuple[str, ...] = ()
    activated_at: datetime | None = None
    # The request (name, uid; same namespace) whose bindings this one's replaced, continuing its access.
    continues: tuple[str, str] | None = None
    # The duration asked for and approved, where the window differs from it (an extension's runs
    # from its predecessor's start; a grant's notAfter may cut it short).
    asked: timedelta | None = None
    # Break-glass: who must review this access, and by when (fixed when it was activated).
    reviewers: tuple[str, ...] = ()
    review_due: datetime | None = None

    @property
    def duration_s(self) -> int:
        return int((self.end - self.start).total_seconds())

    @property
    def asked_duration(self) -> timedelta:
        return self.asked or self.end - self.start


@dataclass(frozen=True)
class Ended:
    phase: Phase
    reason: str
    at: datetime


@dataclass(frozen=True)
class Actor:
    """Who did something to a request, as Kubernetes authentication named them."""

    user: str
    at: datetime
    as_requester: bool = False  # the caller was the request's own requester
    # The Kubernetes username that acted for `user` (the console, for the person IAP verified).
    via: str = ""

    @property
    def shown(self) -> str:
        """Who, as status.endedBy and messages name them: both names when one acted for the other."""
        return f"{self.user} via {self.via}" if self.via else self.user


@dataclass(frozen=True)
class Identity:
    """The object a record belongs to."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class Records:
    held: Held | None = None
    ended: Ended | None = None
    revoked_by: Actor | None = None
    deleted_by: Actor | None = None
    tampered: tuple[str, ...] = field(default=())  # annotations present whose seal does not verify


def read_records(metadata: Mapping[str, Any], key: bytes) -> Records:
    """Every record on the object whose seal verifies; the others are named in `tampered`."""
    annotations = metadata.get("annotations") or {}
    who = Identity(
        str(metadata.get("namespace", "")), str(metadata.get("name", "")), str(metadata.get("uid", ""))
    )
    opened: dict[str, dict[str, Any]] = {}
    tampered = []
    for name in SEALED:
        if name not in annotations:
            continue
        payload = open_record(annotations[name], name, who, key)
        if payload is None:
            tampered.append(name)
        else:
            opened[name] = payload
    try:
        return Records(
            held=_held(opened[ACTIVATION]) if ACTIVATION in opened else None,
            ended=_ended(opened[ENDED]) if ENDED in opened else None,
            revoked_by=_actor(opened[REVOKED_BY]) if REVOKED_BY in opened else None,
            deleted_by=_actor(opened[DELETED_BY]) if DELETED_BY in opened else None,
            tampered=tuple(tampered),
        )
    except (KeyError, TypeError, ValueError):  # sealed by us, yet unreadable: treat as not ours
        return Records(tampered=tuple(name for name in SEALED if name in annotations))


def seal_record(name: str, payload: Mapping[str, Any], who: Identity, key: bytes) -> str:
    """The annotation value: the payload and a MAC over it, this annotation's name and the object."""
    body = dict(payload)
    body["mac"] = mac(key, name, who.namespace, who.name, who.uid, body)
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def open_record(text: object, name: str, who: Identity, key: bytes) -> dict[str, Any] | None:
    """The payload of a sealed annotation, or None when it is not one the operator made for `who`."""
    try:
        body = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    if not isinstance(body, dict) or not who.uid:
        return None
    seal = body.pop("mac", None)
    return body if verify(key, seal, name, who.namespace, who.name, who.uid, body) else None


def held_payload(held: Held) -> dict[str, Any]:
    return {
        "resource": held.resource,
        "roles": list(held.roles),
        "member": held.member,
        "start": format_time(held.start),
        "end": format_time(held.end),
        "approvers": list(held.approvers),
        "activatedAt": format_time(held.activated_at or held.start),
        **({"continues": {"name": held.continues[0], "uid": held.continues[1]}} if held.continues else {}),
        **({"askedSeconds": int(held.asked.total_seconds())} if held.asked is not None else {}),
        **(
            {"review": {"reviewers": list(held.reviewers), "due": format_time(held.review_due)}}
            if held.review_due is not None
            else {}
        ),
    }


def ended_payload(ended: Ended) -> dict[str, Any]:
    return {"phase": ended.phase.value, "reason": ended.reason, "at": format_time(ended.at)}


def actor_payload(actor: Actor) -> dict[str, Any]:
    payload = {"user": actor.user, "at": format_time(actor.at), "requester": actor.as_requester}
    return {**payload, "via": actor.via} if actor.via else payload


def _held(raw: Mapping[str, Any]) -> Held:
    return Held(
        resource=str(raw["resource"]),
        roles=tuple(str(role) for role in raw["roles"]),
        member=str(raw["member"]),
        start=parse_time(raw["start"]),
        end=parse_time(raw["end"]),
        approvers=tuple(str(a) for a in raw.get("approvers") or ()),
        activated_at=parse_time(raw["activatedAt"]) if raw.get("activatedAt") else None,
        continues=(str(raw["continues"]["name"]), str(raw["continues"]["uid"]))
        if raw.get("continues")
        else None,
        asked=timedelta(seconds=int(raw["askedSeconds"])) if raw.get("askedSeconds") is not None else None,
        reviewers=tuple(str(r) for r in (raw.get("review") or {}).get("reviewers") or ()),
        review_due=parse_time(raw["review"]["due"]) if raw.get("review") else None,
    )


def _ended(raw: Mapping[str, Any]) -> Ended:
    phase = phase_of(raw["phase"])
    if phase is None:
        raise ValueError(f"not a phase: {raw['phase']!r}")
    return Ended(phase, str(raw.get("reason", "")), parse_time(raw["at"]))


def _actor(raw: Mapping[str, Any]) -> Actor:
    return Actor(
        str(raw["user"]), parse_time(raw["at"]), raw.get("requester") is True, str(raw.get("via") or "")
    )


def reserved_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The `jitaccess.dev/` annotations, labels and finalizers that differ between two bodies."""
    before, after = metadata_of(old), metadata_of(new)
    changed = []
    for part in ("annotations", "labels"):
        was, now = before.get(part) or {}, after.get(part) or {}
        changed += [
            f"metadata.{part}[{key}]"
            for key in sorted(set(was) | set(now))
            if key.startswith(PREFIX) and was.get(key) != now.get(key)
        ]
    was_f = {f for f in before.get("finalizers") or [] if f.startswith(PREFIX)}
    now_f = {f for f in after.get("finalizers") or [] if f.startswith(PREFIX)}
    changed += [f"metadata.finalizers[{f}]" for f in sorted(was_f ^ now_f)]
    return changed


# Room for everyone else's annotations on a request, far below the API server's 256 KiB, so that
# the operator's sealed records always fit: padding a request must not stop it being recorded,
# revoked or ended.
MAX_OTHER_ANNOTATIONS = 32 * 1024
# Set and cleared by the API server and its garbage collector for a deletion's propagation policy.
KUBERNETES_FINALIZERS = frozenset({"foregroundDeletion", "orphan"})


def metadata_problem(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """What a caller other than the operator may not do to a request's metadata: add or remove
    finalizers (only the operator's own, stamped at admission, may be there: another would keep the
    request from ever going), or grow the annotations past what leaves room for the records."""
    was = set(metadata_of(old).get("finalizers") or [])
    now = set(metadata_of(new).get("finalizers") or [])
    foreign = sorted((was ^ now) - {FINALIZER} - KUBERNETES_FINALIZERS)
    if foreign:
        return (
            f"metadata.finalizers[{foreign[0]}]: only the jitaccess operator's finalizer may be on a request"
        )
    annotations = metadata_of(new).get("annotations") or {}
    size = sum(len(str(k)) + len(str(v)) for k, v in annotations.items() if not str(k).startswith(PREFIX))
    if size > MAX_OTHER_ANNOTATIONS:
        return (
            f"metadata.annotations: {size} bytes; annotations other than jitaccess.dev/ ones are limited "
            f"to {MAX_OTHER_ANNOTATIONS} bytes on a request, so that the operator's records always fit"
        )
    return None


def owner_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """An owner added or removed: Kubernetes' garbage collector deletes an object whose owner goes,
    so an owner is a way to delete someone's request (or approval) without asking for it."""
    was = metadata_of(old).get("ownerReferences") or []
    now = metadata_of(new).get("ownerReferences") or []
    return [] if was == now else ["metadata.ownerReferences"]
