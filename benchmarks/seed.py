"""Objects as the operator itself would have left them, for the scale scenario.

Creating 10,000 requests through admission and activating them for real would take longer than
the whole benchmark may; what the scenario measures is a restart over that state. So the state is
made here by the operator's own code: the admission seal (`policy.admission.attestation`), the
lifecycle (`policy.lifecycle.decide`, stepped until stable, exactly as the reconciler persists
steps) and the binding format (`iam.bindings`). What IAM holds is what those steps wrote.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jitaccess.api.objects import Grant
from jitaccess.iam.bindings import Binding, render
from jitaccess.policy.admission import ATTESTATION, attestation
from jitaccess.policy.lifecycle import FINALIZER, Step, decide, read_state
from jitaccess.sandbox.writes import merge_patch

RETENTION = timedelta(days=30)


@dataclass
class Seeded:
    body: dict[str, Any]
    added: list[Binding] = field(default_factory=list)
    removed: list[Binding] = field(default_factory=list)


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
        _carry_out(seeded, step)
    raise RuntimeError(f"{seeded.body['metadata']['name']} did not settle")


def _carry_out(seeded: Seeded, step: Step) -> None:
    if step.iam is not None:
        bindings = [Binding.from_status(raw) for raw in step.iam.bindings]
        (seeded.added if step.iam.kind == "add" else seeded.removed).extend(bindings)
        if step.on_success is not None:
            _carry_out(seeded, step.on_success)
        return
    metadata = seeded.body["metadata"]
    if step.add_finalizer:
        metadata["finalizers"] = [*(metadata.get("finalizers") or []), FINALIZER]
    if step.remove_finalizer:
        metadata["finalizers"] = [f for f in metadata.get("finalizers") or [] if f != FINALIZER]
    if step.status is not None:
        status = copy.deepcopy(step.status)
        if step.activation is not None:
            status["bindings"] = [binding.to_status() for binding in render(step.activation)]
        seeded.body = merge_patch(seeded.body, {"status": status})


def live_bindings(seeded: list[Seeded]) -> dict[str, list[dict[str, Any]]]:
    """What each resource's policy holds after these requests: added and not removed since."""
    removed = {(b.resource, b.role, b.member, b.expression) for s in seeded for b in s.removed}
    policies: dict[str, list[dict[str, Any]]] = {}
    for item in seeded:
        for binding in item.added:
            if (binding.resource, binding.role, binding.member, binding.expression) in removed:
                continue
            policies.setdefault(binding.resource, []).append(
                {
                    "role": binding.role,
                    "members": [binding.member],
                    "condition": {
                        "title": binding.title,
                        "description": binding.description,
                        "expression": binding.expression,
                    },
                }
            )
    return policies
