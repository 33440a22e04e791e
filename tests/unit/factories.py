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
