"""What one resource's IAM policy says about our requests: leftovers to remove, grants gone missing.

The sweeper reads each policy the operator has written to, and compares the bindings that carry
a reference of ours whose keyed MAC verifies (`api.bindings.Reference.verified`) with what the
requests' sealed records say (`policy.records`), never with their status:

- a proven binding of ours whose request no longer exists (or is another object of the same
  name), or has ended, or holds nothing according to its record, is a **leftover**: it is removed
  (expired conditional bindings still count against IAM's limits; a live one would be access
  nobody holds a request for).
- a binding whose reference carries no MAC (written by jitaccess 0.1) or a MAC that does not
  verify is **unproven**: never removed here. The first are removed when the request they name
  ends; both expire by their own condition.
- a request that holds access by its record, but whose binding is no longer in IAM, was
  **removed by someone else**: that is reported on the request, never silently granted again
  (whoever removed it may have meant it).

Pure: the sweeper (controller/sweeper.py) fetches, locks and writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jitaccess.api.bindings import Reference, parse_reference
from jitaccess.api.bodies import metadata_of
from jitaccess.policy.records import Records, read_records

RequestKey = tuple[str, str]


@dataclass(frozen=True)
class KnownRequest:
    """A request as the sweeper sees it: which object it is, and its sealed records (never its
    status). The same records the lifecycle reads (`policy.records`): one model of what a
    request holds."""

    namespace: str
    name: str
    uid: str
    records: Records = field(default_factory=Records)

    @property
    def holds(self) -> tuple[tuple[str, str], ...]:
        """(resource, role) its activation record names."""
        held = self.records.held
        return tuple((held.resource, role) for role in held.roles) if held else ()

    @property
    def ended(self) -> bool:
        return self.records.ended is not None

    @property
    def expires_at(self) -> datetime | None:
        return self.records.held.end if self.records.held else None

    @property
    def active(self) -> bool:
        return bool(self.holds) and not self.ended


@dataclass(frozen=True)
class Found:
    """One binding of a policy that names one of our requests."""

    resource: str
    role: str
    reference: Reference

    @property
    def key(self) -> RequestKey:
        return (self.reference.namespace, self.reference.name)


@dataclass(frozen=True)
class Leftover:
    found: Found
    why: str

    @property
    def key(self) -> RequestKey:
        return self.found.key


@dataclass
class Audit:
    leftovers: list[Leftover] = field(default_factory=list)
    missing: dict[RequestKey, list[tuple[str, str]]] = field(default_factory=dict)  # (resource, role)
    unproven: list[Found] = field(default_factory=list)


def references_in_policy(resource: str, bindings: Iterable[Mapping[str, Any]]) -> list[Found]:
    """Every binding in a policy that carries a reference of ours (proven or not)."""
    found = []
    for raw in bindings:
        reference = parse_reference(raw.get("condition") or {})
        if reference is not None:
            found.append(Found(resource, str(raw.get("role", "")), reference))
    return found


def audit(
    resource: str,
    bindings: Iterable[Mapping[str, Any]],
    requests: Mapping[RequestKey, KnownRequest],
    now: datetime,
    key: bytes,
) -> Audit:
    """Compare one policy's bindings with the requests (by namespace/name)."""
    result = Audit()
    present: set[tuple[str, str]] = set()  # (uid, role) of proven bindings
    for found in references_in_policy(resource, bindings):
        if not found.reference.verified(key):
            result.unproven.append(found)
            continue
        present.add((found.reference.uid, found.role))
        why = leftover_reason(requests.get(found.key), found.reference.uid)
        if why is not None:
            result.leftovers.append(Leftover(found, why))
    for request_key, request in requests.items():
        if not request.active:
            continue
        if request.expires_at is not None and now >= request.expires_at:
            continue  # ending: its own reconcile removes what is left
        gone = [
            (r, role) for r, role in request.holds if r == resource and (request.uid, role) not in present
        ]
        if gone:
            result.missing[request_key] = gone
    return result


def leftover_reason(request: KnownRequest | None, uid: str) -> str | None:
    """Why a proven binding whose reference names `request` (with `uid`) should go; None: it stays."""
    if request is None:
        return "its ActivationRequest no longer exists"
    if request.uid != uid:
        return "its ActivationRequest was deleted (an object of the same name is another request)"
    if request.ended:
        return "its ActivationRequest has ended"
    if request.holds:
        return None
    return "its ActivationRequest holds no access by the operator's record (it was never activated)"


def known_request(body: Mapping[str, Any], key: bytes) -> KnownRequest:
    """A request body as the sweeper needs it: its sealed records, not its status."""
    metadata = metadata_of(body)
    return KnownRequest(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        uid=str(metadata.get("uid", "")),
        records=read_records(metadata, key),
    )
