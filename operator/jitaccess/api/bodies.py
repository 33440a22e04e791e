"""The three resources as the Kubernetes API serves them: typed views of the raw JSON bodies.

A body comes from users' YAML, so nothing in it can be trusted to be there or to have its type:
these say what the fields are *meant* to be (every key optional), for readers and type checkers;
`objects.parse_grant` / `parse_request_spec` and `policy.records` are what actually check them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast


class ObjectMeta(TypedDict, total=False):
    name: str
    namespace: str
    uid: str
    resourceVersion: str
    generation: int
    creationTimestamp: str
    deletionTimestamp: str
    annotations: dict[str, str]
    labels: dict[str, str]
    finalizers: list[str]
    ownerReferences: list[dict[str, Any]]


class Condition(TypedDict, total=False):
    """A metav1.Condition."""

    type: str
    status: str  # True | False | Unknown
    reason: str
    message: str
    lastTransitionTime: str
    observedGeneration: int


class GrantSpec(TypedDict, total=False):
    resource: str
    roles: list[str]
    principals: list[str]
    maxDuration: str
    defaultDuration: str
    justification: dict[str, Any]  # required, pattern, hint
    approval: dict[str, Any]  # approvers, minApprovals, timeout


class GrantStatus(TypedDict, total=False):
    conditions: list[Condition]
    activeRequests: int
    observedGeneration: int


class GrantBody(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: GrantSpec
    status: GrantStatus


class RequestSpecBody(TypedDict, total=False):
    grant: str
    roles: list[str]
    duration: str
    justification: str
    startTime: str
    revoke: bool
    requester: str
    requesterGroups: list[str]


class BindingStatus(TypedDict, total=False):
    resource: str
    role: str
    member: str
    condition: dict[str, str]  # title, description, expression


class RequestStatus(TypedDict, total=False):
    """What the operator shows; never read back as evidence (see policy.records)."""

    phase: str
    conditions: list[Condition]
    activatedAt: str
    expiresAt: str
    endedAt: str
    endedBy: str
    bindings: list[BindingStatus]
    approvals: list[dict[str, str]]  # approver, decision, comment, time
    observedGeneration: int


class RequestBody(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: RequestSpecBody
    status: RequestStatus


class ApprovalSpec(TypedDict, total=False):
    request: str
    decision: str  # Approve | Deny
    comment: str
    approver: str
    approverGroups: list[str]
    requestUID: str
    requestDigest: str


class ApprovalStatus(TypedDict, total=False):
    counted: bool
    message: str


class ApprovalBody(TypedDict, total=False):
    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: ApprovalSpec
    status: ApprovalStatus


def _part(body: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    value = body.get(key) if isinstance(body, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def metadata_of(body: Mapping[str, Any] | None) -> ObjectMeta:
    """A body's metadata, or an empty one when it is missing or not a mapping."""
    return cast(ObjectMeta, _part(body, "metadata"))


def spec_of(body: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A body's spec, or an empty one: users write specs, so it may be absent, null or a list."""
    return _part(body, "spec")


def status_of(body: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return _part(body, "status")


def generation_of(body: Mapping[str, Any] | None, default: int = 1) -> int:
    """metadata.generation; `default` when it is missing or not a whole number (an API server
    never serves one that is not, but the operator must not crash on one)."""
    value = metadata_of(body).get("generation")
    if isinstance(value, bool) or not isinstance(value, int | str):
        return default
    try:
        return int(value)
    except ValueError:
        return default
