"""Admission webhooks (kopf's on.mutate / on.validate): wiring only, the rules are policy.admission.

Mutating, on CREATE: stamp the caller's identity into spec and seal what was admitted with an
HMAC annotation; on UPDATE: stamp who revoked the request (sealed). Validating: judge the final
object with the same functions the reconciler uses, so a bad request is refused at
`kubectl apply` time with a message naming the field; refuse changes to `jitaccess.dev/`
metadata by anyone but the operator; and let only the requester, or someone RBAC grants the verb
`revoke`, revoke or delete a request (asked with a SubjectAccessReview). A permitted deletion is
recorded on the request (a patch made while admitting it, hence `sideEffects: NoneOnDryRun`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf
from kubernetes.client.rest import ApiException

from jitaccess.api.bodies import metadata_of, spec_of, status_of
from jitaccess.api.objects import CHAT_IDENTITY, GROUP, VERSION, is_kubernetes_name
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
from jitaccess.policy.conditions import READY
from jitaccess.policy.ending_access import (
    admit_request_change,
    admit_request_deletion,
    revoke_refusal,
    revoked_by_stamp,
)
from jitaccess.policy.records import DELETED_BY, FINALIZER, Identity, actor_payload, read_records, seal_record
from jitaccess.policy.steps import read_state

log = logging.getLogger(__name__)
Handler = Callable[..., Awaitable[None]]


def counted(reconciler: Reconciler, webhook: str) -> Callable[[Handler], Handler]:
    """Count each admission decision of `webhook` (allowed or denied) and time its handler (every
    answer, errors too: the API server waits for all of them) for /metrics."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def decide(**kwargs: Any) -> None:
            started = time.monotonic()
            try:
                await handler(**kwargs)
            except kopf.AdmissionError:
                reconciler.metrics.webhook_decisions[webhook, "denied"] += 1
                raise
            finally:
                reconciler.metrics.webhook_latency(webhook).observe(time.monotonic() - started)
            reconciler.metrics.webhook_decisions[webhook, "allowed"] += 1

        return decide

    return wrap


def register_webhooks(
    registry: kopf.OperatorRegistry,
    reconciler: Reconciler,
    identity: IdentitySettings,
    key: bytes,
    clock: Clock,
) -> None:
    """Register the three webhooks of manifests/webhooks.yaml with kopf (ids are their paths)."""
    hooks = AdmissionWebhooks(reconciler, identity, key, clock)
    table = (  # (kind, plural, id, operations, side effects, handler): as manifests/webhooks.yaml routes
        (kopf.on.mutate, "activationrequests", "stamp-requester", ["CREATE", "UPDATE"], False, hooks.stamp_requester),
        # A permitted DELETE records who deleted (never on a dry run).
        (kopf.on.validate, "activationrequests", "validate-request", ["CREATE", "UPDATE", "DELETE"], True, hooks.validate_request),
        (kopf.on.mutate, "activationapprovals", "stamp-approver", ["CREATE", "UPDATE"], False, hooks.stamp_approver),
    )  # fmt: skip
    for kind, plural, name, operations, side_effects, handler in table:
        kind(
            GROUP,
            VERSION,
            plural,
            id=name,
            operations=operations,
            side_effects=side_effects,
            registry=registry,
            persistent=True,
        )(counted(reconciler, name)(handler))


class AdmissionWebhooks:
    """The handlers: each gathers what policy.admission needs, asks it, and carries out its answer."""

    def __init__(self, reconciler: Reconciler, identity: IdentitySettings, key: bytes, clock: Clock) -> None:
        self.reconciler, self.identity, self.key, self.clock = reconciler, identity, key, clock

    @property
    def operator(self) -> str:
        return self.reconciler.config.operator_username

    async def stamp_requester(
        self,
        body: kopf.Body,
        old: kopf.Body | None,
        operation: str,
        userinfo: dict[str, Any],
        patch: kopf.Patch,
        warnings: list[str],
        **_: Any,
    ) -> None:
        raw = dict(body)
        if operation == "UPDATE":
            before = dict(old or {})
            verdict = await self._judge_change(raw, before, userinfo, code=403)
            if verdict.actor is not None:
                name, value = revoked_by_stamp(before, verdict.actor, self.key)
                patch.setdefault("metadata", {}).setdefault("annotations", {})[name] = value
            return
        decision = await self._judge_creation(raw, userinfo)
        if not decision.allowed:
            raise kopf.AdmissionError(decision.message, code=403)
        spec = {**spec_of(raw), **decision.stamp}
        patch.setdefault("spec", {}).update(decision.stamp)
        metadata = patch.setdefault("metadata", {})
        metadata.setdefault("annotations", {})[ATTESTATION] = attestation({**raw, "spec": spec}, self.key)
        # Born with the finalizer, so that the reconciler's first write can already be the verdict.
        finalizers = list(metadata_of(raw).get("finalizers") or [])
        if FINALIZER not in finalizers:
            metadata["finalizers"] = [*finalizers, FINALIZER]
        warnings.extend(decision.warnings)

    async def validate_request(
        self,
        body: kopf.Body,
        old: kopf.Body | None,
        operation: str,
        userinfo: dict[str, Any],
        dryrun: bool,
        **_: Any,
    ) -> None:
        raw, before = dict(body), dict(old or {})
        if operation == "DELETE":
            verdict = admit_request_deletion(
                before, _caller(userinfo), self.identity, self.operator, self.key, self.clock.now()
            )
            if not verdict.allowed:
                raise kopf.AdmissionError(verdict.message, code=403)
            await self._authorised(verdict, before, userinfo, "delete")
            if verdict.actor is not None and not dryrun:
                await self._record_deletion(before, verdict)
            return
        if operation == "UPDATE":
            await self._judge_change(raw, before, userinfo, code=422)
            return
        decision = await self._judge_creation(raw, userinfo)
        if not decision.allowed:
            raise kopf.AdmissionError(decision.message, code=422)
        if not attestation_valid(body, self.key):
            raise kopf.AdmissionError(
                "the request changed after the jitaccess mutating webhook admitted it", code=422
            )

    async def stamp_approver(
        self,
        body: kopf.Body,
        old: kopf.Body | None,
        operation: str,
        userinfo: dict[str, Any],
        patch: kopf.Patch,
        **_: Any,
    ) -> None:
        decision = admit_approval_identity(
            operation, dict(body), dict(old) if old else None, _caller(userinfo), self.identity, self.operator
        )
        if not decision.allowed:
            raise kopf.AdmissionError(decision.message, code=403)
        if operation != "CREATE":
            return
        raw = dict(body)
        spec = {**spec_of(raw), **decision.stamp}
        namespace = metadata_of(raw).get("namespace", "")
        request_name = str(spec.get("request") or "")
        # Asked afresh, never from the watch cache: the approval is pinned to the object as it is.
        kube = self.reconciler.kube
        request = await kube.get_request(namespace, request_name) if request_name else None
        grant_name = spec_of(request).get("grant")
        grant = (
            await self.reconciler.grant(grant_name) if isinstance(grant_name, str) and grant_name else None
        )
        held = read_records(metadata_of(request), self.key).held if request is not None else None
        chat = CHAT_IDENTITY in (metadata_of(raw).get("annotations") or {})
        verdict = admit_approval(spec, request, grant, held, via_chat=chat)
        if not verdict.allowed:
            raise kopf.AdmissionError(verdict.message, code=403)
        patch.setdefault("spec", {}).update({**decision.stamp, **verdict.stamp})
        patch.setdefault("metadata", {}).setdefault("annotations", {})[ATTESTATION] = attestation(
            {**raw, "spec": {**spec, **verdict.stamp}}, self.key
        )

    async def _judge_creation(self, body: dict[str, Any], userinfo: dict[str, Any]) -> Admission:
        spec = body.get("spec")
        named = spec.get("grant") if isinstance(spec, Mapping) else None
        # Only a well-formed name is looked up; anything else is refused by admit_request below.
        grant_name = named if is_kubernetes_name(named) else ""
        grant = await self.reconciler.grant(grant_name) if grant_name else None
        conditions = status_of(self.reconciler.cache.grant_bodies.get(grant_name)).get("conditions") or []
        ready = any(c.get("type") == READY and c.get("status") == "True" for c in conditions)
        extends = spec.get("extends") if isinstance(spec, Mapping) else None
        predecessor = None
        if is_kubernetes_name(extends):  # asked afresh: what it extends must be Active now
            found = await self.reconciler.kube.get_request(
                str(metadata_of(body).get("namespace", "")), str(extends)
            )
            predecessor = read_state(found, self.key) if found is not None else None
        return admit_request(
            "CREATE",
            body,
            None,
            _caller(userinfo),
            self.identity,
            grant,
            ready,
            self.clock.now(),
            predecessor,
        )

    async def _judge_change(
        self, new: dict[str, Any], old: dict[str, Any], userinfo: dict[str, Any], code: int
    ) -> Admission:
        verdict = admit_request_change(
            new, old, _caller(userinfo), self.identity, self.operator, self.key, self.clock.now()
        )
        if not verdict.allowed:
            raise kopf.AdmissionError(verdict.message, code=code)
        await self._authorised(verdict, old, userinfo, "revoke")
        return verdict

    async def _authorised(
        self, verdict: Admission, old: Mapping[str, Any], userinfo: dict[str, Any], action: str
    ) -> None:
        """Refuse unless the caller holds the verb the verdict says they need on this request."""
        if verdict.needs is None:
            return
        metadata = metadata_of(old)
        allowed = await self.reconciler.kube.may(
            str(userinfo.get("username", "")),
            list(userinfo.get("groups") or []),
            str(userinfo.get("uid") or ""),
            dict(userinfo.get("extra") or {}),
            verdict.needs,
            str(metadata.get("namespace", "")),
            str(metadata.get("name", "")),
        )
        if not allowed:
            raise kopf.AdmissionError(revoke_refusal(old, _caller(userinfo), action), code=403)

    async def _record_deletion(self, old: Mapping[str, Any], verdict: Admission) -> None:
        """Seal who deleted the request onto it before the API server marks it deleting, so that
        its end names them. Until it is marked, the latest caller is recorded (a deletion refused
        after this webhook leaves a record the next one replaces); once it is, the first stays.
        A failure to record does not block."""
        assert verdict.actor is not None
        metadata = metadata_of(old)
        if metadata.get("deletionTimestamp") and read_records(metadata, self.key).deleted_by is not None:
            return
        who = Identity(
            str(metadata.get("namespace", "")), str(metadata.get("name", "")), str(metadata.get("uid", ""))
        )
        value = seal_record(DELETED_BY, actor_payload(verdict.actor), who, self.key)
        try:
            await self.reconciler.kube.patch_request(
                who.namespace, who.name, {"metadata": {"annotations": {DELETED_BY: value}}}
            )
        except ApiException as error:
            log.warning("could not record who deleted %s/%s: %s", who.namespace, who.name, error.reason)


def _caller(userinfo: Mapping[str, Any]) -> Caller:
    return Caller(str(userinfo.get("username", "")), tuple(userinfo.get("groups") or ()))
