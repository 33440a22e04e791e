"""What one resource's IAM policy says about our requests: leftovers to remove, grants gone missing.

The sweeper reads each policy the operator has written to, and compares the bindings that carry
our reference (`iam.bindings.reference_of`) with what the requests say:

- a binding of ours whose request no longer exists (or is another object of the same name), or
  whose request has ended, or was never activated, is a **leftover**: it is removed (expired
  conditional bindings still count against IAM's limits; a live one would be access nobody holds
  a request for). Bindings that are not ours are never looked at again.
- an Active request whose binding is no longer in IAM was **removed by someone else**: that is
  reported on the request, never silently granted again (whoever removed it may have meant it).

Pure: the sweeper (controller/sweeper.py) fetches, locks and writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jitaccess.api.times import parse_time
from jitaccess.iam.bindings import Binding, reference_of
from jitaccess.policy.lifecycle import HOLDING, Phase

RequestKey = tuple[str, str]


@dataclass(frozen=True)
class KnownRequest:
    """A request as the sweeper sees it: identity, phase, and the bindings its status lists."""

    namespace: str
    name: str
    uid: str
    phase: Phase | None
    bindings: tuple[Binding, ...] = ()
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Leftover:
    binding: Binding
    key: RequestKey  # the request its reference names
    uid: str
    why: str


@dataclass
class Audit:
    leftovers: list[Leftover] = field(default_factory=list)
    missing: dict[RequestKey, list[Binding]] = field(default_factory=dict)


def ours_in_policy(
    resource: str, bindings: Iterable[Mapping[str, Any]]
) -> list[tuple[Binding, RequestKey, str]]:
    """Every (binding, request key, uid) in a policy that carries our reference, one per member."""
    found = []
    for raw in bindings:
        condition = raw.get("condition") or {}
        reference = reference_of(condition)
        if reference is None:
            continue
        namespace, name, uid = reference
        for member in raw.get("members") or ():
            binding = Binding(
                resource=resource,
                role=str(raw.get("role", "")),
                member=str(member),
                title=str(condition.get("title", "")),
                description=str(condition.get("description", "")),
                expression=str(condition.get("expression", "")),
            )
            found.append((binding, (namespace, name), uid))
    return found


def audit(
    resource: str,
    bindings: Iterable[Mapping[str, Any]],
    requests: Mapping[RequestKey, KnownRequest],
    now: datetime,
) -> Audit:
    """Compare one policy's bindings with the requests (by namespace/name)."""
    result = Audit()
    present: set[Binding] = set()
    for binding, key, uid in ours_in_policy(resource, bindings):
        present.add(binding)
        why = leftover_reason(requests.get(key), uid)
        if why is not None:
            result.leftovers.append(Leftover(binding, key, uid, why))
    for key, request in requests.items():
        if request.phase is not Phase.ACTIVE:
            continue  # Activating may be writing right now; the others hold nothing
        if request.expires_at is not None and now >= request.expires_at:
            continue  # ending: its own reconcile removes what is left
        gone = [b for b in request.bindings if b.resource == resource and b not in present]
        if gone:
            result.missing[key] = gone
    return result


def leftover_reason(request: KnownRequest | None, uid: str) -> str | None:
    """Why a binding whose reference names `request` (with `uid`) should go; None: it stays."""
    if request is None:
        return "its ActivationRequest no longer exists"
    if request.uid != uid:
        return "its ActivationRequest was deleted (an object of the same name is another request)"
    if request.phase in HOLDING:
        return None
    if request.phase is None or request.phase in (Phase.PENDING, Phase.AWAITING_APPROVAL, Phase.SCHEDULED):
        return f"its ActivationRequest is {request.phase or 'new'} and was never activated"
    return f"its ActivationRequest is {request.phase}"


def known_request(body: Mapping[str, Any]) -> KnownRequest:
    """A request body as the sweeper needs it."""
    metadata = body.get("metadata") or {}
    status = body.get("status") or {}
    try:
        phase: Phase | None = Phase(status.get("phase")) if status.get("phase") else None
    except ValueError:
        phase = None
    bindings = tuple(
        Binding.from_status(raw) for raw in status.get("bindings") or () if isinstance(raw, Mapping)
    )
    try:
        expires_at: datetime | None = parse_time(status["expiresAt"]) if status.get("expiresAt") else None
    except ValueError:
        expires_at = None
    return KnownRequest(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        phase=phase,
        bindings=bindings,
        expires_at=expires_at,
    )
