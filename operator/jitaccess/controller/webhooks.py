"""Admission webhooks (kopf's on.mutate / on.validate): wiring only, the rules are policy.admission.

Mutating, on CREATE: stamp the caller's identity into spec and seal what was admitted with an
HMAC annotation. Validating: judge the final object with the same functions the reconciler uses,
so a bad request is refused at `kubectl apply` time with a message naming the field.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf

from jitaccess.api.objects import GROUP, VERSION, is_kubernetes_name
from jitaccess.clock import Clock
from jitaccess.controller.reconciler import Reconciler
from jitaccess.policy.admission import (
    ATTESTATION,
    Admission,
    Caller,
    IdentitySettings,
    admit_approval,
    admit_approval_identity,
    admit_request,
    attestation,
    attestation_valid,
)
from jitaccess.policy.lifecycle import FINALIZER

Handler = Callable[..., Awaitable[None]]


def counted(reconciler: Reconciler, webhook: str) -> Callable[[Handler], Handler]:
    """Count each admission decision of `webhook` (allowed or denied) for /metrics."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def decide(**kwargs: Any) -> None:
            try:
                await handler(**kwargs)
            except kopf.AdmissionError:
                reconciler.webhook_decisions[webhook, "denied"] += 1
                raise
            reconciler.webhook_decisions[webhook, "allowed"] += 1

        return decide

    return wrap


def register_webhooks(
    registry: kopf.OperatorRegistry,
    reconciler: Reconciler,
    identity: IdentitySettings,
    key: bytes,
    clock: Clock,
) -> None:
    async def decide(
        operation: str, body: dict[str, Any], old: dict[str, Any] | None, userinfo: dict[str, Any]
    ) -> Admission:
        caller = Caller(str(userinfo.get("username", "")), tuple(userinfo.get("groups") or ()))
        spec = body.get("spec")
        named = spec.get("grant") if isinstance(spec, Mapping) else None
        # Only a well-formed name is looked up; anything else is refused by admit_request below.
        grant_name = named if is_kubernetes_name(named) else ""
        grant = await reconciler.grant(grant_name) if grant_name else None
        conditions = ((reconciler.grant_bodies.get(grant_name) or {}).get("status") or {}).get(
            "conditions"
        ) or []
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        return admit_request(operation, body, old, caller, identity, grant, ready, clock.now())

    @kopf.on.mutate(
        GROUP,
        VERSION,
        "activationrequests",
        id="stamp-requester",
        registry=registry,
        operations=["CREATE"],
        persistent=True,
        side_effects=False,
    )
    @counted(reconciler, "stamp-requester")
    async def stamp_requester(
        body: kopf.Body, userinfo: dict[str, Any], patch: kopf.Patch, warnings: list[str], **_: Any
    ) -> None:
        raw = dict(body)
        decision = await decide("CREATE", raw, None, userinfo)
        if not decision.allowed:
            raise kopf.AdmissionError(decision.message, code=403)
        spec = {**(raw.get("spec") or {}), **decision.stamp}
        patch.setdefault("spec", {}).update(decision.stamp)
        metadata = patch.setdefault("metadata", {})
        metadata.setdefault("annotations", {})[ATTESTATION] = attestation({**raw, "spec": spec}, key)
        # Born with the finalizer, so that the reconciler's first write can already be the verdict.
        finalizers = list((raw.get("metadata") or {}).get("finalizers") or [])
        if FINALIZER not in finalizers:
            metadata["finalizers"] = [*finalizers, FINALIZER]
        warnings.extend(decision.warnings)

    @kopf.on.validate(
        GROUP,
        VERSION,
        "activationrequests",
        id="validate-request",
        registry=registry,
        operations=["CREATE", "UPDATE"],
        persistent=True,
        side_effects=False,
    )
    @counted(reconciler, "validate-request")
    async def validate_request(
        body: kopf.Body, old: kopf.Body | None, operation: str, userinfo: dict[str, Any], **_: Any
    ) -> None:
        decision = await decide(operation, dict(body), dict(old or {}) if old else None, userinfo)
        if not decision.allowed:
            raise kopf.AdmissionError(decision.message, code=422)
        if operation == "CREATE" and not attestation_valid(body, key):
            raise kopf.AdmissionError(
                "the request changed after the jitaccess mutating webhook admitted it", code=422
            )

    @kopf.on.mutate(
        GROUP,
        VERSION,
        "activationapprovals",
        id="stamp-approver",
        registry=registry,
        operations=["CREATE", "UPDATE"],
        persistent=True,
        side_effects=False,
    )
    @counted(reconciler, "stamp-approver")
    async def stamp_approver(
        body: kopf.Body,
        old: kopf.Body | None,
        operation: str,
        userinfo: dict[str, Any],
        patch: kopf.Patch,
        **_: Any,
    ) -> None:
        caller = Caller(str(userinfo.get("username", "")), tuple(userinfo.get("groups") or ()))
        decision = admit_approval_identity(
            operation, dict(body), dict(old) if old else None, caller, identity
        )
        if not decision.allowed:
            raise kopf.AdmissionError(decision.message, code=403)
        if operation != "CREATE":
            return
        raw = dict(body)
        spec = {**(raw.get("spec") or {}), **decision.stamp}
        namespace = (raw.get("metadata") or {}).get("namespace", "")
        request_name = str(spec.get("request") or "")
        # The watch may not have delivered a request created a moment ago: ask before refusing.
        request = reconciler.requests.get((namespace, request_name))
        if request is None and request_name:
            request = await reconciler.kube.get_request(namespace, request_name)
        grant_name = ((request or {}).get("spec") or {}).get("grant")
        grant = await reconciler.grant(grant_name) if isinstance(grant_name, str) and grant_name else None
        verdict = admit_approval(spec, request, grant)
        if not verdict.allowed:
            raise kopf.AdmissionError(verdict.message, code=403)
        patch.setdefault("spec", {}).update(decision.stamp)
        patch.setdefault("metadata", {}).setdefault("annotations", {})[ATTESTATION] = attestation(
            {**raw, "spec": spec}, key
        )
