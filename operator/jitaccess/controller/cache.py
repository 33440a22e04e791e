"""What the operator knows of the cluster: the latest body of every request, grant and approval
it has seen (from kopf's watches and from the answers to its own writes), with the indexes the
reconciler needs. It decides nothing and schedules nothing; the reconciler does, on its answers.

Never evidence for a grant of access on its own: before ending anything on what it says, the
reconciler reads the grant and the approvals afresh (`Reconciler._refresh_inputs`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any, cast

from jitaccess.api.bodies import ApprovalBody, GrantBody, RequestBody, metadata_of, spec_of
from jitaccess.api.errors import join_errors
from jitaccess.api.objects import Decision, Grant, parse_grant, read_decision
from jitaccess.policy.admission import attestation_valid

RequestKey = tuple[str, str]


class Cache:
    def __init__(self) -> None:
        self.requests: dict[RequestKey, RequestBody] = {}
        self.grant_bodies: dict[str, GrantBody] = {}
        self.grants: dict[str, Grant | None] = {}  # parsed; None when invalid
        self.deleted_grants: set[str] = set()
        self.by_grant: dict[str, set[RequestKey]] = defaultdict(set)
        # The requests whose spec.extends names a request: (namespace, name) -> their keys.
        self.by_extended: dict[RequestKey, set[RequestKey]] = defaultdict(set)
        self.approvals: dict[RequestKey, dict[str, ApprovalBody]] = {}  # by the request they name

    # -- requests ---------------------------------------------------------------------------

    def put_request(self, body: Mapping[str, Any]) -> bool:
        """Keep `body` if it is news; False for old news or the echo of our own write."""
        key = key_of(body)
        known = self.requests.get(key)
        if not is_newer(known, body) or _same_version(known, body):
            return False
        self.requests[key] = cast(RequestBody, dict(body))
        self._index(key, body)
        return True

    def drop_request(self, body: Mapping[str, Any]) -> RequestBody:
        """Forget a deleted request; the last body known of it (or the one given)."""
        key = key_of(body)
        known = self.requests.pop(key, None) or cast(RequestBody, dict(body))
        self._unindex(key, known)
        return known

    def remember(self, key: RequestKey, updated: Mapping[str, Any] | None) -> None:
        """The answer to our own write: newer than what the watch has told so far (None: gone)."""
        if updated is None:
            if (known := self.requests.pop(key, None)) is not None:
                self._unindex(key, known)
        elif is_newer(self.requests.get(key), updated):
            self.requests[key] = cast(RequestBody, updated)
            self._index(key, updated)

    def _index(self, key: RequestKey, body: Mapping[str, Any]) -> None:
        # A request's spec is immutable (admission), so what it is indexed under never moves.
        spec = spec_of(body)
        if isinstance(grant := spec.get("grant"), str):
            self.by_grant[grant].add(key)
        if isinstance(extended := spec.get("extends"), str):
            self.by_extended[(key[0], extended)].add(key)

    def _unindex(self, key: RequestKey, body: Mapping[str, Any]) -> None:
        spec = spec_of(body)
        if isinstance(grant := spec.get("grant"), str):
            self.by_grant[grant].discard(key)
        if isinstance(extended := spec.get("extends"), str):
            self.by_extended[(key[0], extended)].discard(key)

    # -- grants -----------------------------------------------------------------------------

    def put_grant(self, body: Mapping[str, Any]) -> bool | None:
        """Keep a grant's body: None for old news, else whether what requests depend on changed
        (False for a status write, ours)."""
        name = body["metadata"]["name"]
        if not is_newer(self.grant_bodies.get(name), body):
            return None
        known = name in self.grants
        previous = self.grants.get(name)
        self.grant_bodies[name] = cast(GrantBody, dict(body))
        self.grants[name], _ = parse_grant(body)
        self.deleted_grants.discard(name)
        return not known or self.grants[name] != previous

    def drop_grant(self, name: str) -> None:
        self.grant_bodies.pop(name, None)
        self.grants.pop(name, None)
        self.deleted_grants.add(name)

    def knows_grant(self, name: str) -> bool:
        """Whether the cache can answer for this grant (it holds it, or saw it deleted)."""
        return name in self.grants or name in self.deleted_grants

    def grant_error(self, name: str) -> str:
        """Why the grant of that name cannot be used (it does not exist, or is invalid)."""
        body = self.grant_bodies.get(name)
        if body is None:
            return f"EligibleGrant {name} does not exist"
        _, errors = parse_grant(body)
        return f"EligibleGrant {name} is invalid: {join_errors(errors)}"

    # -- approvals --------------------------------------------------------------------------

    def extensions_of(self, key: RequestKey) -> list[RequestKey]:
        """The requests (same namespace and grant) whose spec.extends names `key`."""
        grant = spec_of(self.requests.get(key)).get("grant")
        if not isinstance(grant, str):
            return []
        return [
            other
            for other in sorted(self.by_extended.get(key, ()))
            if spec_of(self.requests.get(other)).get("grant") == grant
        ]

    def put_approval(self, body: Mapping[str, Any]) -> RequestKey:
        """Keep an approval; the request it names."""
        namespace, name = key_of(body)
        request = (namespace, str(spec_of(body).get("request", "")))
        self.approvals.setdefault(request, {})[name] = cast(ApprovalBody, dict(body))
        return request

    def drop_approval(self, body: Mapping[str, Any]) -> RequestKey:
        namespace, name = key_of(body)
        request = (namespace, str(spec_of(body).get("request", "")))
        self.approvals.get(request, {}).pop(name, None)
        return request

    def decisions(self, key: RequestKey, attestation_key: bytes) -> tuple[Decision, ...]:
        """The approvals filed for the request of that name; unsealed ones never count."""
        return tuple(
            read_decision(body, attestation_valid(body, attestation_key))
            for body in self.approvals.get(key, {}).values()
        )


def key_of(body: Mapping[str, Any]) -> RequestKey:
    metadata = metadata_of(body)
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))


def is_newer(known: Mapping[str, Any] | None, seen: Mapping[str, Any]) -> bool:
    """Is `seen` at least as new as `known`? resourceVersions compare as numbers when they are."""
    if known is None:
        return True
    old = str(metadata_of(known).get("resourceVersion", ""))
    new = str(metadata_of(seen).get("resourceVersion", ""))
    if old.isdigit() and new.isdigit():
        return int(new) >= int(old)
    return True


def _same_version(known: Mapping[str, Any] | None, seen: Mapping[str, Any]) -> bool:
    version = metadata_of(seen).get("resourceVersion")
    return known is not None and bool(version) and metadata_of(known).get("resourceVersion") == version
