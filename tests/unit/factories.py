"""Small builders of Kubernetes bodies for the pure-core tests."""

from __future__ import annotations

from typing import Any


def grant_body(name: str = "g", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "resource": "projects/my-sandbox",
        "roles": ["roles/compute.admin", "roles/storage.admin"],
        "principals": ["user:alice@example.com", "group:sre@example.com", "domain:example.org"],
        "maxDuration": "2h",
    }
    base.update(spec)
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "EligibleGrant",
        "metadata": {"name": name, "generation": 1},
        "spec": {k: v for k, v in base.items() if v is not None},
    }


def request_body(
    name: str = "r",
    *,
    status: dict[str, Any] | None = None,
    finalizers: list[str] | None = None,
    created: str = "2026-11-24T09:00:00Z",
    deleting: bool = False,
    **spec: Any,
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "grant": "g",
        "justification": "INC-1: restart the stuck load balancer",
        "requester": "user:alice@example.com",
    }
    base.update(spec)
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "team",
        "uid": "0f0e-1",
        "generation": 1,
        "creationTimestamp": created,
        "finalizers": finalizers if finalizers is not None else ["jitaccess.dev/revoke-on-delete"],
    }
    if deleting:
        metadata["deletionTimestamp"] = created
    return {
        "metadata": metadata,
        "spec": {k: v for k, v in base.items() if v is not None},
        "status": status or {},
    }


KEY = b"unit-test-attestation-key-32-bytes!!"


def admitted(body: dict[str, Any], key: bytes = KEY) -> dict[str, Any]:
    """The body with the seal the mutating webhook would have stamped."""
    from jitaccess.policy.admission import ATTESTATION, attestation

    body["metadata"].setdefault("annotations", {})[ATTESTATION] = attestation(body, key)
    return body


def carry_out(body: dict[str, Any], step: Any, iam: dict[str, list[Any]], key: bytes = KEY) -> dict[str, Any]:
    """Carry a lifecycle step out on a body and a fake IAM ({resource: bindings}), as the
    reconciler does (IAM always succeeding): the shared reference for the pure-core tests."""
    import copy

    from jitaccess.policy.steps import metadata_patch
    from jitaccess_sandbox.writes import merge_patch

    if step.iam:
        for change in step.iam:
            kept = [b for b in iam.get(change.resource, []) if _reference(b) not in change.owners]
            iam[change.resource] = kept + list(change.hold)
        return carry_out(body, step.on_success, iam, key) if step.on_success else body
    body = merge_patch(body, {"metadata": metadata_patch(body["metadata"], step, key, held=True)})
    if step.status is not None and not step.status_told_only:
        body["status"] = {**(body.get("status") or {}), **copy.deepcopy(step.status)}
    return merge_patch(body, {"metadata": metadata_patch(body["metadata"], step, key, held=False)})


def _reference(binding: Any) -> Any:
    from jitaccess.api.bindings import parse_reference

    return parse_reference(binding.condition())
