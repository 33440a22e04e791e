"""Call admission webhooks like kube-apiserver does: from the stored webhook configurations.

On each create or update of a matching resource: every MutatingWebhookConfiguration webhook
whose rules and `matchConditions` (CEL over `request`, `object`, `oldObject`) match is sent an
AdmissionReview over HTTPS (trusting its caBundle), its JSON patch is applied; then every
ValidatingWebhookConfiguration webhook. A deletion goes to the validating
webhooks only, with `object: null` and the stored object as `oldObject`. A denial, or a webhook
that cannot be reached under `failurePolicy: Fail`, refuses the write. `userInfo` is the caller
the request's bearer token names (the sandbox kubeconfig's users); `options` are the request's
Create-, Update- or DeleteOptions.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import re
import ssl
import uuid
from typing import Any

import aiohttp
import celpy
import jsonpatch

from jitaccess_sandbox.crds import Crd
from jitaccess_sandbox.validation import cel_program
from jitaccess_sandbox.writes import ApiRejection

MUTATING = "admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
VALIDATING = "admissionregistration.k8s.io/v1/validatingwebhookconfigurations"


class WebhookDispatcher:
    def __init__(self, configurations: Any, timeout_s: float = 10) -> None:
        self._configurations = configurations  # callable(key) -> list of stored configuration bodies
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.enabled = True
        # Kept open, as kube-apiserver keeps its connections to webhooks: a TLS handshake per
        # admission review would cost more than the review.
        self._session: aiohttp.ClientSession | None = None
        self._contexts: dict[str, ssl.SSLContext] = {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def admit(
        self,
        operation: str,
        crd: Crd,
        new: dict[str, Any] | None,
        old: dict[str, Any] | None,
        namespace: str | None,
        user: dict[str, Any],
        warnings: list[str] | None = None,
        *,
        options: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[Any, ApiRejection | None]:
        """The object after mutation (None for DELETE), or the refusal kube-apiserver would
        answer; the webhooks' warnings go to `warnings`. `user` is the caller's userInfo."""
        if not self.enabled:
            return new, None
        # Kubernetes never calls mutating webhooks for DELETE: there is no object to mutate.
        kinds = (VALIDATING,) if operation == "DELETE" else (MUTATING, VALIDATING)
        for kind in kinds:
            for configuration in self._configurations(kind):
                for webhook in configuration.get("webhooks", []):
                    if not _matches(webhook, crd, operation):
                        continue
                    review = _review(operation, crd, new, old, namespace, user, options, dry_run)
                    try:
                        if not _conditions_match(webhook, review["request"]):
                            continue
                        response = await self._call(webhook, review)
                    except (aiohttp.ClientError, TimeoutError, ssl.SSLError, MatchConditionError) as error:
                        if webhook.get("failurePolicy", "Fail") == "Ignore":
                            continue
                        return new, ApiRejection(
                            500,
                            "InternalError",
                            f'Internal error occurred: failed calling webhook "{webhook["name"]}": '
                            f"failed to call webhook: {type(error).__name__}: {error}",
                        )
                    if warnings is not None:
                        warnings.extend(response.get("warnings") or [])
                    if not response.get("allowed"):
                        status = response.get("status") or {}
                        message = status.get("message") or "denied"
                        return new, ApiRejection(
                            int(status.get("code") or 403),
                            str(status.get("reason") or "Forbidden"),
                            f'admission webhook "{webhook["name"]}" denied the request: {message}',
                        )
                    if kind == MUTATING and response.get("patch"):
                        patch = jsonpatch.JsonPatch.from_string(base64.b64decode(response["patch"]).decode())
                        new = patch.apply(copy.deepcopy(new))
        return new, None

    async def _call(self, webhook: dict[str, Any], review: dict[str, Any]) -> dict[str, Any]:
        client = webhook["clientConfig"]
        bundle = str(client.get("caBundle") or "")
        context = self._contexts.get(bundle)
        if context is None:
            context = self._contexts[bundle] = (
                ssl.create_default_context(cadata=base64.b64decode(bundle).decode())
                if bundle
                else ssl.create_default_context()
            )
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        async with self._session.post(client["url"], json=review, ssl=context) as answer:
            answer.raise_for_status()
            return dict((await answer.json()).get("response") or {})


def _matches(webhook: dict[str, Any], crd: Crd, operation: str) -> bool:
    for rule in webhook.get("rules", []):
        if (
            _any(rule.get("apiGroups"), crd.group)
            and _any(rule.get("apiVersions"), crd.version)
            and _any(rule.get("resources"), crd.plural)
            and _any(rule.get("operations"), operation)
        ):
            return True
    return False


class MatchConditionError(Exception):
    """A matchCondition that could not be evaluated to a bool: the webhook's call failed."""


def _conditions_match(webhook: dict[str, Any], request: dict[str, Any]) -> bool:
    """kube-apiserver's rule: a condition that is false skips the webhook; otherwise one that errs
    fails the call (as `failurePolicy` says); all true calls it."""
    failed = ""
    for condition in webhook.get("matchConditions") or []:
        expression = str(condition.get("expression", ""))
        result = _evaluate(expression, request)
        if isinstance(result, bool):
            if not result:
                return False
        elif not failed:
            failed = f'matchCondition "{condition.get("name")}": {result}'
    if failed:
        raise MatchConditionError(failed)
    return True


def _evaluate(expression: str, request: dict[str, Any]) -> bool | str:
    """The condition's value, or why it has none. An expression that reads only fields of `request`
    is evaluated once per distinct value of those fields: cel-python takes about a millisecond."""
    paths = _request_paths(expression)
    if paths is None:
        return _evaluate_now(expression, request)
    key = (expression, json.dumps([_reached(request, path) for path in paths], sort_keys=True, default=str))
    if key not in _EVALUATED:
        if len(_EVALUATED) >= 4096:
            _EVALUATED.clear()
        _EVALUATED[key] = _evaluate_now(expression, request)
    return _EVALUATED[key]


_EVALUATED: dict[tuple[str, str], bool | str] = {}


def _evaluate_now(expression: str, request: dict[str, Any]) -> bool | str:
    try:
        result = cel_program(expression).evaluate(_variables(expression, request))
    except Exception as error:  # compile and runtime errors alike
        return str(error) or type(error).__name__
    if isinstance(result, bool | celpy.celtypes.BoolType):
        return bool(result)
    return str(result)


@functools.cache
def _request_paths(expression: str) -> tuple[tuple[str, ...], ...] | None:
    """The `request.a.b` fields the expression reads, when it reads nothing else; else None."""
    if re.search(r"\b(object|oldObject|authorizer|variables|params)\b", expression):
        return None
    if re.search(r"\brequest\b(?!\s*\.\s*[A-Za-z_])", expression):  # request whole, or request[...]
        return None
    paths = set()
    for found in re.finditer(r"\brequest\s*\.\s*([A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)*)(\s*\()?", expression):
        path = tuple(re.split(r"\s*\.\s*", found.group(1)))
        # `a.b.size()`: size is a method of b, not a key of it (a map may have a key of that name).
        paths.add(path[:-1] if found.group(2) else path)
    return tuple(sorted(paths))


def _reached(request: dict[str, Any], path: tuple[str, ...]) -> tuple[int, Any]:
    """How far down `path` the request goes, and the value there: all that an expression can read
    through it (the depth tells a missing key from a parent that looks like the value)."""
    value: Any = request
    depth = 0
    for name in path:
        if not isinstance(value, dict) or name not in value:
            break
        value = value[name]
        depth += 1
    return depth, value


def _variables(expression: str, request: dict[str, Any]) -> dict[str, Any]:
    """The CEL variables a matchCondition names (only those: an object may be large to convert)."""
    variables: dict[str, Any] = {}
    if "request" in expression:
        variables["request"] = celpy.json_to_cel(
            {k: v for k, v in request.items() if k not in ("object", "oldObject")}
        )
    for name in ("object", "oldObject"):
        if name in expression:
            variables[name] = celpy.json_to_cel(request.get(name))
    return variables


def _any(allowed: list[str] | None, value: str) -> bool:
    return not allowed or "*" in allowed or value in allowed


def _review(
    operation: str,
    crd: Crd,
    new: dict[str, Any] | None,
    old: dict[str, Any] | None,
    namespace: str | None,
    user: dict[str, Any],
    options: dict[str, Any] | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    gvk = {"group": crd.group, "version": crd.version, "kind": crd.kind}
    gvr = {"group": crd.group, "version": crd.version, "resource": crd.plural}
    if options is None:  # what kube-apiserver sends when the request carried none
        kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions"}.get(operation, "DeleteOptions")
        options = {"kind": kind, "apiVersion": "meta.k8s.io/v1"}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": ((new if new is not None else old or {}).get("metadata") or {}).get("name"),
            "namespace": namespace,
            "operation": operation,
            "userInfo": user,
            "object": new,
            "oldObject": old,
            "dryRun": dry_run,
            "options": options,
        },
    }
