"""Objects as the operator itself would have left them, for the scale scenario.

Creating 10,000 requests through admission and activating them for real would take longer than
the whole benchmark may; what the scenario measures is a restart over that state. So the state is
made here by the operator's own code: the admission seal (`policy.admission.attestation`), the
lifecycle (`policy.lifecycle.decide`, stepped until stable, exactly as the reconciler persists
steps) and the binding format (`api.bindings`). What IAM holds is what those steps wrote.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jitaccess.api.bindings import Binding
from jitaccess.api.objects import Grant
from jitaccess.policy.admission import ATTESTATION, attestation
from jitaccess.policy.lifecycle import decide
from jitaccess.policy.records import (
    FINALIZER,
)
from jitaccess.policy.steps import Step, metadata_patch, read_state
from jitaccess_sandbox.writes import merge_patch

RETENTION = timedelta(days=30)


@dataclass
class Seeded:
    body: dict[str, Any]
    # What IAM holds for this request after the steps carried out: resource -> its bindings.
    holds: dict[str, list[Binding]] = field(default_factory=dict)


def admitted_request(
    namespace: str, name: str, spec: dict[str, Any], created: datetime, key: bytes
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "ActivationRequest",
        "metadata": {
            "namespace": namespace,
            "name": name,
            "uid": str(uuid.uuid4()),
            "generation": 1,
            "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "annotations": {},
            "finalizers": [FINALIZER],  # as the mutating webhook adds it
        },
        "spec": spec,
    }
    body["metadata"]["annotations"][ATTESTATION] = attestation(body, key)
    return body


def settle(seeded: Seeded, grant: Grant, now: datetime, key: bytes) -> Seeded:
    """Step the lifecycle at `now` until it rests, as the reconciler would (IAM always succeeding)."""
    for _ in range(12):
        state = read_state(seeded.body, key)
        step = decide(state, grant, now, RETENTION, ())
        if not step.changes_anything:
            return seeded
        _carry_out(seeded, step, key)
    raise RuntimeError(f"{seeded.body['metadata']['name']} did not settle")


def _carry_out(seeded: Seeded, step: Step, key: bytes) -> None:
    if step.iam:
        for change in step.iam:
            seeded.holds[change.resource] = list(change.hold)
        if step.on_success is not None:
            _carry_out(seeded, step.on_success, key)
        return
    seeded.body = merge_patch(
        seeded.body, {"metadata": metadata_patch(seeded.body["metadata"], step, key, held=True)}
    )
    if step.status is not None:
        seeded.body = merge_patch(seeded.body, {"status": copy.deepcopy(step.status)})
    seeded.body = merge_patch(
        seeded.body, {"metadata": metadata_patch(seeded.body["metadata"], step, key, held=False)}
    )


def live_bindings(seeded: list[Seeded]) -> dict[str, list[dict[str, Any]]]:
    """What each resource's policy holds after these requests."""
    policies: dict[str, list[dict[str, Any]]] = {}
    for item in seeded:
        for resource, bindings in item.holds.items():
            for binding in bindings:
                policies.setdefault(resource, []).append(
                    {
                        "role": binding.role,
                        "members": [binding.member],
                        "condition": binding.condition(),
                    }
                )
    return policies
