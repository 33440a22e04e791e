"""A Kubernetes API server for one machine: kmock's KubernetesEmulator, made to behave like the real one.

kmock parses requests, keeps objects and serves discovery; this subclass adds what kubectl, GitOps
tools and a real operator notice: authentication by bearer token and RBAC on every call;
`uid`, `creationTimestamp`, `resourceVersion` and `generation` stamped on writes; the status
subresource; admission webhooks; structural schema and CEL validation of our CRDs with `422
Invalid` answers; dry runs, PUT, server-side apply and `generateName`; `kind: XList` lists with
label and field selectors; watches from a resourceVersion (see watch.py); `Table` answers for
`kubectl get`; OpenAPI v3 for `kubectl apply` and `kubectl explain`. Each write is computed here
in full, then handed to kmock as the merge patch that turns the old object into the new one, so
kmock's store stays the single source of truth.

kmock has no hooks for some of this; what is used of its internals (nothing name-mangled), and why:
`_handle` (the one entry point every API request passes), `_serve_create/_update/_delete` and
`_serve_version` (its fallback answers, to find objects by key and to fix discovery),
`_render_error` (its answer to a path it cannot parse: kube's 404, not a traceback),
`_objects._objects` (its store, replaced once by an indexed one: kmock scans every object per
request), `_requests`/`_payloads` (its record of requests, trimmed: see `_route`) and
`rendering.Request._raw_request` (the aiohttp request, for repeated headers and streaming).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import json
import logging
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import enums, rendering

from jitaccess_sandbox import apply, openapi, protobuf
from jitaccess_sandbox.admission import WebhookDispatcher
from jitaccess_sandbox.crds import Crd, load_crds
from jitaccess_sandbox.rbac import (
    SERVICE_ACCOUNT_PREFIX,
    Attributes,
    RbacAuthorizer,
    bootstrap_policy,
    forbidden_message,
)
from jitaccess_sandbox.store import CORE_RESOURCES, VERBS, IndexedObjects, selected
from jitaccess_sandbox.tables import table
from jitaccess_sandbox.validation import validate
from jitaccess_sandbox.watch import ChangeLog, TooOld
from jitaccess_sandbox.writes import (
    SERVER_MANAGED,
    ApiRejection,
    check_metadata,
    check_name,
    check_precondition,
    merge_diff,
    merge_patch,
    moved_on,
    patched,
)

_SELF_SUBJECT_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
# Reviews are answered, never stored: only at their own (cluster-scoped) paths.
_REVIEW_PLURALS = frozenset(
    {"selfsubjectreviews", "subjectaccessreviews", "selfsubjectaccessreviews", "selfsubjectrulesreviews"}
)
# SubjectAccessReview (another's rights) and SelfSubjectAccessReview (`kubectl auth can-i`): path -> kind.
_ACCESS_REVIEWS = {
    "/apis/authorization.k8s.io/v1/subjectaccessreviews": "SubjectAccessReview",
    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews": "SelfSubjectAccessReview",
    "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews": "SelfSubjectRulesReview",  # can-i --list
}
# The Kubernetes release whose API behaviour the sandbox follows (and kubectl's skew check sees).
SERVED_VERSION = "v1.33.0"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_NAMESPACE_PATH = re.compile(r"/api/v1/namespaces(?:/([^/]+))?/?")


@attrs.define(kw_only=True)
class SandboxApi(kmock.KubernetesEmulator):
    crds: tuple[Crd, ...] = attrs.field(factory=load_crds)
    admission: WebhookDispatcher | None = None
    # The cluster's time, for the timestamps it stamps; the sandbox shares its clock with the operator.
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _version: int = attrs.field(default=0, init=False)  # the last resourceVersion given out
    # Writes of one object are serialised (admission included), writes of different ones are not.
    _writes: dict[tuple[Any, ...], tuple[asyncio.Lock, int]] = attrs.field(factory=dict, init=False)
    # From a write's version to its watch event, no other write (admission is over by then).
    _commit: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)
    namespaces: dict[str, dict[str, Any]] = attrs.field(factory=dict, init=False)
    _warnings: dict[int, list[str]] = attrs.field(factory=dict, init=False)
    store: IndexedObjects = attrs.field(factory=IndexedObjects, init=False)
    # Who did what: (user, verb, resource, subresource) -> count, in RBAC's terms. How tests and
    # benchmarks learn which calls the operator makes (and so what its ClusterRole must allow).
    served: collections.Counter[tuple[str, str, str, str]] = attrs.field(
        factory=collections.Counter, init=False
    )
    # The people authentication knows, with their groups, and their bearer tokens (token -> user),
    # like kube-apiserver's --token-auth-file (set by the sandbox runner).
    users: dict[str, list[str]] = attrs.field(factory=dict, init=False)
    tokens: dict[str, str] = attrs.field(factory=dict, init=False)
    # RBAC over the stored Roles and bindings: every request is authorized by it.
    rbac: RbacAuthorizer = attrs.field(init=False)
    changes: ChangeLog = attrs.field(factory=ChangeLog, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.store = IndexedObjects(self._objects._objects)
        object.__setattr__(self._objects, "_objects", self.store)  # kmock's (frozen) ObjectsArray
        for key, info in CORE_RESOURCES.items():
            self.resources[key] = kmock.ResourceInfo(verbs=VERBS, subresources=set(), **info)
        for path, kind in _ACCESS_REVIEWS.items():  # in discovery, as kubectl and clients expect
            self.resources[path.removeprefix("/apis/")] = kmock.ResourceInfo(
                kind=kind, singular=kind.lower(), namespaced=False, verbs={"create"}, subresources=set()
            )
        self.rbac = RbacAuthorizer(self.stored)
        for crd in self.crds:
            self.resources[f"{crd.group}/{crd.version}/{crd.plural}"] = kmock.ResourceInfo(
                kind=crd.kind,
                singular=crd.singular,
                namespaced=crd.namespaced,
                verbs=VERBS,
                shortnames=set(crd.short_names),
                categories=set(crd.categories),
                subresources={"status"},
            )
        for name in ("default", "kube-system"):
            self.add_namespace(name)
        for crd in self.crds:  # kubectl and kopf look the CRDs up too
            self.objects[
                "apiextensions.k8s.io/v1/customresourcedefinitions", None, crd.raw["metadata"]["name"]
            ] = self._stamp_new(copy.deepcopy(crd.raw), None)
        for key, body in bootstrap_policy():  # what kube-apiserver creates when it first starts
            self.objects[key, None, body["metadata"]["name"]] = self._stamp_new(body, None)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        try:
            return await self._serve(raw_request)
        except ApiRejection as rejection:
            return rejection.response()
        except Exception:  # a Status, as kube-apiserver answers, never a traceback
            _log.exception("the sandbox API failed on %s %s", raw_request.method, raw_request.path)
            return ApiRejection(
                500, "InternalError", "Internal error occurred: see the sandbox's log"
            ).response()

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        """kmock's answer to a request it cannot parse (e.g. a path no API has): a Status as
        kube-apiserver's, without kmock's traceback."""
        _log.info("the sandbox API could not serve a request: %r", exc)
        return ApiRejection(404, "NotFound", "the server could not find the requested resource").response()

    async def _serve(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if raw_request.content_type == protobuf.CONTENT_TYPE:  # what kubectl sends for built-in kinds
            try:
                body = protobuf.decode(await raw_request.read())
            except protobuf.ProtobufError as error:
                return ApiRejection(415, "UnsupportedMediaType", str(error)).response()
            # aiohttp's buffer of the body, which read(), text() and json() (and so kmock) return.
            raw_request._read_bytes = json.dumps(body).encode()
        path = raw_request.path.rstrip("/") or "/"
        if path == _SELF_SUBJECT_REVIEWS and raw_request.method == "POST":
            return self._who_am_i(raw_request)
        if path in _ACCESS_REVIEWS:
            return await self._review_access(raw_request, _ACCESS_REVIEWS[path])
        # kmock cannot parse /api/v1/namespaces[/NAME] (it reads "namespaces" as the namespace
        # prefix of a path), so Namespace objects are served here, before kmock parses anything.
        match = _NAMESPACE_PATH.fullmatch(raw_request.path)
        if match is None:
            return await super().__call__(raw_request)
        return await self._serve_namespace(raw_request, match.group(1))

    def _who_am_i(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """SelfSubjectReview (`kubectl auth whoami`): the caller as authentication saw them."""
        try:
            user, groups = self.caller(raw.headers)
            self._enforce(Attributes(user, groups, "create", "authentication.k8s.io", "selfsubjectreviews"))
        except ApiRejection as rejection:
            return rejection.response()
        self.served[user, "create", "selfsubjectreviews.authentication.k8s.io", ""] += 1
        return aiohttp.web.json_response(
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "SelfSubjectReview",
                "metadata": {"creationTimestamp": None},
                "status": {"userInfo": {"username": user, "groups": list(groups)}},
            },
            status=201,
        )

    def caller(self, headers: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
        """The user a request acts as, with their groups, as authentication and impersonation hand
        them to the authorizer: the bearer token's user, or the one `Impersonate-User` names (with
        the `Impersonate-Group`s) if the token's user may impersonate them (else 403, as kube does)."""
        user, groups = self.authenticate(headers)
        wanted = _header_values(headers, "Impersonate-User")
        wanted_groups = tuple(_header_values(headers, "Impersonate-Group"))
        if not wanted:
            if wanted_groups:
                raise ApiRejection(
                    400, "BadRequest", "requested impersonation of groups without impersonating a user"
                )
            return user, groups
        acting = wanted[0]
        checks = [
            Attributes(user, groups, "impersonate", "", "groups", name=group) for group in wanted_groups
        ]
        namespace, _, name = acting.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
        if acting.startswith(SERVICE_ACCOUNT_PREFIX) and name:
            checks.insert(
                0, Attributes(user, groups, "impersonate", "", "serviceaccounts", "", namespace, name)
            )
            if not wanted_groups:  # a service account's groups are known, not asked for
                wanted_groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")
        else:
            checks.insert(0, Attributes(user, groups, "impersonate", "", "users", name=acting))
        for check in checks:
            decision = self.rbac.authorize(check)
            if not decision.allowed:
                raise ApiRejection(
                    403,
                    "Forbidden",
                    forbidden_message(check, decision.reason),
                    subject={"name": check.name, "group": "", "kind": check.resource},
                )
        everyone = "system:unauthenticated" if acting == "system:anonymous" else "system:authenticated"
        return acting, (*dict.fromkeys(wanted_groups), *(() if everyone in wanted_groups else (everyone,)))

    def authenticate(self, headers: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
        """The bearer token's user, or system:anonymous without one; an unknown token is refused
        (401), as kube-apiserver refuses it."""
        authorization = str(headers.get("Authorization") or "")
        if not authorization:
            return "system:anonymous", ("system:unauthenticated",)
        user = self.tokens.get(authorization.removeprefix("Bearer ").strip())
        if user is None:
            raise ApiRejection(401, "Unauthorized", "Unauthorized")
        return user, (*self.users.get(user, []), "system:authenticated")

    async def _review_access(self, raw: aiohttp.web.BaseRequest, kind: str) -> aiohttp.web.StreamResponse:
        """SubjectAccessReview, SelfSubjectAccessReview and SelfSubjectRulesReview, answered by the
        RBAC authorizer (201, the request echoed with `status` added, as kube-apiserver answers)."""
        if raw.method != "POST":
            return ApiRejection(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            ).response()
        try:
            caller, caller_groups = self.caller(raw.headers)
            self._enforce(
                Attributes(caller, caller_groups, "create", "authorization.k8s.io", f"{kind.lower()}s")
            )
        except ApiRejection as rejection:
            return rejection.response()
        self.served[caller, "create", f"{kind.lower()}s.authorization.k8s.io", ""] += 1
        try:
            review = await raw.json()
        except ValueError as error:
            return ApiRejection(400, "BadRequest", f"the request body is not JSON: {error}").response()
        if not isinstance(review, dict):
            review = {}
        spec = review.get("spec") if isinstance(review.get("spec"), dict) else {}
        metadata = review.get("metadata") if isinstance(review.get("metadata"), dict) else {}
        answer = {
            "kind": kind,
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": None, **metadata},
        }
        if kind == "SelfSubjectRulesReview":
            namespace = str(spec.get("namespace") or "")
            status = self._rules_review(caller, caller_groups, namespace)
            return aiohttp.web.json_response(
                {**answer, "spec": {"namespace": namespace}, "status": status}, status=201
            )
        resource, other = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        invalid = _review_problems(resource, other)
        if kind == "SubjectAccessReview":  # about anyone, exactly as described: no groups added
            user, groups = str(spec.get("user") or ""), tuple(str(g) for g in spec.get("groups") or [])
            if not user and not groups:
                invalid.append(
                    'spec.user: Invalid value: "": at least one of user or group must be specified'
                )
        else:
            user, groups = caller, caller_groups
            spec = {key: spec[key] for key in ("resourceAttributes", "nonResourceAttributes") if key in spec}
        if invalid:
            message = invalid[0] if len(invalid) == 1 else f"[{', '.join(invalid)}]"
            return ApiRejection(
                422,
                "Invalid",
                f'{kind}.authorization.k8s.io "" is invalid: {message}',
                subject={"group": "authorization.k8s.io", "kind": kind},
            ).response()
        attributes = _review_attributes(user, groups, resource, other)
        decision = self.rbac.authorize(attributes)
        verdict: dict[str, Any] = {"allowed": decision.allowed}
        if decision.reason:  # omitempty, like `denied` (RBAC never denies: it has no opinion)
            verdict["reason"] = decision.reason
        return aiohttp.web.json_response({**answer, "spec": spec, "status": verdict}, status=201)

    def _rules_review(self, user: str, groups: tuple[str, ...], namespace: str) -> dict[str, Any]:
        """The status of a SelfSubjectRulesReview (`kubectl auth can-i --list`)."""
        rules, errors = self.rbac.rules_for(user, groups, namespace)
        status: dict[str, Any] = {
            "resourceRules": [
                {
                    key: rule[key]
                    for key in ("verbs", "apiGroups", "resources", "resourceNames")
                    if key in rule
                }
                for rule in rules
                if rule.get("resources")
            ],
            "nonResourceRules": [
                {key: rule[key] for key in ("verbs", "nonResourceURLs")}
                for rule in rules
                if rule.get("nonResourceURLs")
            ],
            "incomplete": bool(errors),
        }
        if errors:
            status["evaluationError"] = "; ".join(errors)
        return status

    def request_attributes(self, request: rendering.Request) -> Attributes:
        """What an API request asks, for the authorizer (kube-apiserver's RequestInfo)."""
        raw = request._raw_request  # all its headers: Impersonate-Group may come more than once
        user, groups = self.caller(raw.headers if raw is not None else request.headers)
        resource = request.resource
        if resource is None or resource.plural is None:
            method = str(getattr(request.method, "value", request.method)).lower()
            return Attributes(user, groups, verb=method, resource_request=False, path=request.url.path)
        return Attributes(
            user=user,
            groups=groups,
            verb=_verb(request),
            api_group=resource.group or "",
            api_version=resource.version or "",
            resource=resource.plural,
            subresource=request.subresource or "",
            namespace=request.namespace or "",
            name=request.name or "",
        )

    def enforce_rbac(self, request: rendering.Request) -> None:
        """Refuse, as kube-apiserver does (403 Forbidden), a request RBAC does not allow."""
        self._enforce(self.request_attributes(request))

    def _enforce(self, attributes: Attributes) -> None:
        decision = self.rbac.authorize(attributes)
        if not decision.allowed:
            raise ApiRejection(
                403,
                "Forbidden",
                forbidden_message(attributes, decision.reason),
                subject={"name": attributes.name, "group": attributes.api_group, "kind": attributes.resource},
            )

    async def _serve_namespace(
        self, raw: aiohttp.web.BaseRequest, name: str | None
    ) -> aiohttp.web.StreamResponse:
        verb = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(raw.method)
        if verb is None:
            verb = "watch" if raw.query.get("watch") in ("true", "1") else "get" if name else "list"
        try:
            user, groups = self.caller(raw.headers)
            self._enforce(Attributes(user, groups, verb, "", "namespaces", name=name or ""))
        except ApiRejection as rejection:
            return rejection.response()
        if raw.method == "GET" and name is None:
            items = sorted(self.namespaces.values(), key=lambda ns: ns["metadata"]["name"])
            if "as=Table" in raw.headers.get("Accept", ""):
                return aiohttp.web.json_response(table(None, "Namespace", items, self.clock(), "Metadata"))
            return aiohttp.web.json_response(
                {
                    "apiVersion": "v1",
                    "kind": "NamespaceList",
                    "items": items,
                    "metadata": {"resourceVersion": self.resource_version()},
                }
            )
        if raw.method == "POST" and name is None:
            body = await raw.json()
            name = (body.get("metadata") or {}).get("name")
            if not isinstance(name, str) or not name:
                return ApiRejection(
                    422,
                    "Invalid",
                    'Namespace "" is invalid: metadata.name: Required value: name or generateName is required',
                ).response()
            if len(name) > 63 or _DNS_LABEL.fullmatch(name) is None:
                return ApiRejection(
                    422,
                    "Invalid",
                    f'Namespace "{name[:80]}" is invalid: metadata.name: Invalid value: {json.dumps(name[:80])}: '
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
                    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                ).response()
            if raw.query.get("dryRun") == "All":
                return aiohttp.web.json_response(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, status=201
                )
            if name in self.namespaces:
                return ApiRejection(409, "AlreadyExists", f'namespaces "{name}" already exists').response()
            self.add_namespace(name)
            return aiohttp.web.json_response(self.namespaces[name], status=201)
        if name is None or name not in self.namespaces:
            return ApiRejection(404, "NotFound", f'namespaces "{name}" not found').response()
        if raw.method == "GET":
            if "as=Table" in raw.headers.get("Accept", ""):
                body = table(None, "Namespace", [self.namespaces[name]], self.clock(), "Metadata")
                return aiohttp.web.json_response(body)
            return aiohttp.web.json_response(self.namespaces[name])
        if raw.method == "PATCH":
            self.namespaces[name] = merge_patch(self.namespaces[name], await raw.json())
            return aiohttp.web.json_response(self.namespaces[name])
        if raw.method == "DELETE":
            return aiohttp.web.json_response(self.namespaces.pop(name))
        return ApiRejection(
            405, "MethodNotAllowed", f"{raw.method} is not supported on namespaces"
        ).response()

    def add_namespace(self, name: str) -> None:
        self.namespaces.setdefault(
            name,
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": name,
                    "uid": str(uuid.uuid4()),
                    "creationTimestamp": self.timestamp(),
                    "resourceVersion": self.resource_version(),
                },
                "status": {"phase": "Active"},
            },
        )

    def timestamp(self) -> str:
        return self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")

    def stored(self, key: str) -> list[dict[str, Any]]:
        """Every live object of one resource, e.g. the webhook configurations."""
        return [obj.raw for _, obj in self.store.of_kind(kmock.resource(key)) if not obj.deleted]

    @contextlib.asynccontextmanager
    async def _object_lock(self, request: rendering.Request) -> AsyncIterator[None]:
        data = request.data if isinstance(request.data, dict) else {}
        name = request.name or (data.get("metadata") or {}).get("name") or ""
        key = (request.resource, request.namespace, name)
        lock, users = self._writes.get(key) or (asyncio.Lock(), 0)
        self._writes[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._writes[key]
            if users == 1:
                del self._writes[key]
            else:
                self._writes[key] = (lock, users - 1)

    def seed(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store an object as if it had been written long ago, bypassing admission (benchmarks)."""
        metadata = body.setdefault("metadata", {})
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("creationTimestamp", self.timestamp())
        metadata["resourceVersion"] = self.resource_version()
        key = (kmock.resource(resource), metadata.get("namespace"), metadata["name"])
        existed = key in self.store and not self.store[key].deleted
        self.objects[key] = body
        self.changes.publish(self.store.kind(key[0]), "MODIFIED" if existed else "ADDED", body)
        return body

    def crd_for(self, request: rendering.Request) -> Crd | None:
        resource = request.resource
        if resource is None:
            return None
        for crd in self.crds:
            if (resource.group, resource.version, resource.plural) == (crd.group, crd.version, crd.plural):
                return crd
        return None

    def resource_version(self) -> str:
        """The next resourceVersion (one sequence for all objects, as etcd's revision)."""
        self._version += 1
        return str(self._version)

    def _record(self, request: rendering.Request) -> None:
        resource = request.resource
        if resource is None or resource.plural is None:
            return
        try:
            user = self.authenticate(request.headers)[0]
        except ApiRejection:
            user = "(unauthenticated)"
        plural = f"{resource.plural}.{resource.group}" if resource.group else str(resource.plural)
        self.served[user, _verb(request), plural, request.subresource or ""] += 1

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        try:
            self._record(request)
            self.enforce_rbac(request)
            path = request.url.path
            if path.startswith("/openapi/"):
                return self._serve_openapi(path)
            if request.resource is None or request.resource.plural is None:  # discovery, /version, …
                return await self._route(request)
            return await self._serve_resource(request)
        except ApiRejection as rejection:
            return rejection.response()
        except Exception:  # a Status, as kube-apiserver answers, never a traceback
            _log.exception("the sandbox API failed on %s %s", request.method, request.url.path)
            return ApiRejection(
                500, "InternalError", "Internal error occurred: see the sandbox's log"
            ).response()

    async def _serve_resource(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """A request about objects, by its verb in RBAC's terms (what was authorized is what is done)."""
        assert request.resource is not None
        info = self.resources.get(request.resource)
        if (
            info is None
            or request.resource.plural in _REVIEW_PLURALS
            or (request.namespace and not info.namespaced)
        ):
            raise ApiRejection(404, "NotFound", "the server could not find the requested resource")
        verb = _verb(request)
        if verb in ("create", "update", "patch", "delete"):
            if verb == "create" and request.name:
                raise ApiRejection(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            if verb == "update":  # kmock gives a PUT no action; to kube-apiserver it is a replacement
                object.__setattr__(request, "action", enums.action.UPDATE)
            return await self._write(request)
        if verb == "watch":
            return await self._serve_watch_stream(request)
        if verb == "list":
            return self._serve_listing(request)
        if verb == "get":
            return self._serve_object(request)
        raise ApiRejection(405, "MethodNotAllowed", f"{verb} is not supported by the sandbox API")

    async def _write(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """One create, patch or delete: admitted, validated, stored (unless a dry run), and told
        to the watchers."""
        try:
            if request.action == enums.action.DELETE:
                # Before the object's lock: a webhook may write this very object while it
                # reviews the deletion (a side effect such as recording who deleted it).
                await self._admit_delete(request)
            async with self._object_lock(request):
                # For a DELETE, read again under the lock: what is deleted is the object as
                # it is now, the admitted one plus whatever the webhooks wrote meanwhile.
                before = self._current(request) if request.action != enums.action.CREATE else None
                request, new = await self._prepare_write(request, before)
                if _dry_run(request):  # admitted and validated, not stored
                    response = aiohttp.web.json_response(new if new is not None else before)
                else:
                    # Versioned as stored, as etcd versions a write as it commits it: a version
                    # given before the webhooks answered could reach the watchers after a later
                    # one, and a watch resumed past that one would never see this write.
                    async with self._commit:
                        request, new = self._versioned(request, before, new)
                        response = await self._route(request)
                        await self._after_write(request, before, new)
        finally:
            warnings = self._warnings.pop(id(request), [])
        for warning in warnings:  # as kube-apiserver relays admission warnings to kubectl
            response.headers.add("Warning", f'299 - "{warning}"')
        if request.action == enums.action.CREATE and response.status == 200:
            response.set_status(201)  # Created, as kube-apiserver answers (clients rely on it)
        return response

    async def _after_write(
        self, request: rendering.Request, before: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> None:
        assert request.resource is not None
        metadata = (new if new is not None else before or {}).get("metadata") or {}
        key = (request.resource, metadata.get("namespace") or request.namespace, metadata.get("name"))
        stored = self.store.get(key)
        after = copy.deepcopy(stored.raw) if stored is not None and not stored.deleted else None
        if stored is not None and after is not None and _only_collector_finalizers(after):
            # The garbage collector's finalizers are its to remove (the sandbox has no collector
            # of its own): collect the dependents, then the object, as kube's would.
            stored.delete()
            self._publish_deleted(request.resource, after)
            await self._collect_dependents(after["metadata"]["uid"])
            return
        if after is not None:
            unchanged = before is not None and before["metadata"].get("resourceVersion") == after[
                "metadata"
            ].get("resourceVersion")
            if not unchanged:
                self.changes.publish(
                    self.store.kind(request.resource), "MODIFIED" if before else "ADDED", after
                )
        elif before is not None:
            self._publish_deleted(request.resource, before)
            await self._collect_dependents(before["metadata"]["uid"])

    def _publish_deleted(self, resource: Any, last: dict[str, Any]) -> None:
        gone = copy.deepcopy(last)
        gone["metadata"]["resourceVersion"] = self.resource_version()
        self.changes.publish(self.store.kind(resource), "DELETED", gone)

    def _serve_object(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        obj = self._current(request)
        if obj is None:
            raise not_found(request.resource, request.name)
        if _wants_table(request):
            return self._table_response(request, [obj])
        return aiohttp.web.json_response(obj)

    async def _serve_watch_stream(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """A watch (kubectl get -w, informers, kopf): JSON lines of {type, object}, from the
        resourceVersion asked for, filtered by namespace, name and selectors; Tables for kubectl."""
        assert request.resource is not None and request._raw_request is not None
        since_text = str(request.params.get("resourceVersion") or "")
        if since_text and not since_text.isdigit():
            raise ApiRejection(400, "BadRequest", f"invalid resource version: {since_text!r}")
        # The watch-list of newer clients (kubectl 1.32+): every object, then a bookmark.
        initial = str(request.params.get("sendInitialEvents") or "") == "true"
        since = int(since_text) if since_text not in ("", "0") and not initial else None
        timeout = str(request.params.get("timeoutSeconds") or "")
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request._raw_request)
        kind = self.store.kind(request.resource)
        first = True

        def existing() -> list[dict[str, Any]]:
            return [
                copy.deepcopy(obj.raw) for _, obj in self.store.of_kind(request.resource) if not obj.deleted
            ]

        changes = self.changes.follow(kind, since, existing, mark_initial_end=initial)
        with contextlib.suppress(ConnectionError, TimeoutError, asyncio.CancelledError):
            async with asyncio.timeout(int(timeout) if timeout.isdigit() else None):
                try:
                    async for change in changes:
                        if change.type == "BOOKMARK":
                            event = {"type": "BOOKMARK", "object": self._bookmark(request)}
                        elif not self._watched(request, change.object):
                            continue
                        elif _wants_table(request):
                            event = {
                                "type": change.type,
                                "object": self._table_body(request, [change.object], headers=first),
                            }
                            first = False
                        else:
                            event = {"type": change.type, "object": change.object}
                        await response.write(json.dumps(event).encode() + b"\n")
                except TooOld as expired:
                    status = ApiRejection(410, "Expired", str(expired)).status()
                    await response.write(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
        return response

    def _bookmark(self, request: rendering.Request) -> dict[str, Any]:
        assert request.resource is not None
        group = request.resource.group
        return {
            "kind": self.resources[request.resource].kind,
            "apiVersion": f"{group}/{request.resource.version}" if group else request.resource.version,
            "metadata": {
                "resourceVersion": str(self._version),
                "annotations": {"k8s.io/initial-events-end": "true"},
            },
        }

    def _watched(self, request: rendering.Request, obj: dict[str, Any]) -> bool:
        metadata = obj.get("metadata") or {}
        if request.namespace is not None and metadata.get("namespace") != request.namespace:
            return False
        if request.name is not None and metadata.get("name") != request.name:
            return False
        return selected(obj, request.params)

    async def _route(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """kmock's own handling. To route a request, kmock looks for it by identity in its record of
        every request ever served, filtering that record once per reaction: each request would cost
        as much as all before it. Routing is synchronous up to the reaction, so the record need only
        hold this request then (and each reaction's own record, which nothing here reads, is dropped).
        """
        self._requests[:] = [request]
        for reaction in self._payloads:
            reaction._requests.clear()
        return await super()._handle(request)

    # kmock's answers to a create, patch or delete look the object up by comparing the address of
    # every stored object; these find it by key (see IndexedObjects). The store is kmock's own.
    async def _serve_create(self, request: rendering.Request) -> rendering.Payload:
        data = request.data if isinstance(request.data, dict) else {}
        metadata = data.get("metadata") or {}
        key = (
            request.resource,
            request.namespace or metadata.get("namespace"),
            request.name or metadata.get("name"),
        )
        return self.store[key].raw

    async def _serve_update(self, request: rendering.Request) -> rendering.Payload:
        return self.store[request.resource, request.namespace, request.name].last.raw

    async def _serve_delete(self, request: rendering.Request) -> rendering.Payload:
        return self.store[request.resource, request.namespace, request.name].last.raw

    # -- writes ------------------------------------------------------------------------------

    async def _prepare_write(
        self, request: rendering.Request, old: dict[str, Any] | None
    ) -> tuple[rendering.Request, dict[str, Any] | None]:
        """The request as kmock is to store it, and the object as it will be (None for a delete)."""
        assert request.resource is not None
        crd = self.crd_for(request)
        if request.action == enums.action.DELETE:  # kmock marks or removes the object itself
            if old is None:
                raise not_found(request.resource, request.name)
            return request, None
        if request.action == enums.action.UPDATE and apply.is_apply(request.headers.get("Content-Type")):
            request, new = self._applied(request, old)
        elif request.action == enums.action.CREATE:
            new = self._created(request, copy.deepcopy(request.data or {}))
        else:
            if old is None:
                raise not_found(request.resource, request.name)
            if request.method == enums.method.PUT and isinstance(request.data, dict):
                _same_names(request, request.data)
            check_precondition(request, old)
            new = patched(old, request, crd, self.resource_version)
        if crd is not None:
            new = await self._admit(request, crd, new, old)
            invalid(crd, new, old)
        data = new if request.action == enums.action.CREATE else merge_diff(old or {}, new)
        return _with_data(request, data), new

    def _versioned(
        self, request: rendering.Request, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> tuple[rendering.Request, dict[str, Any] | None]:
        """The admitted write with the version it is stored at, given now (a write that, admitted,
        changes nothing keeps the version the object has, as kube-apiserver's no-op writes do)."""
        assert request.resource is not None
        if request.action == enums.action.DELETE:
            metadata = (old or {}).get("metadata") or {}
            if metadata.get("finalizers") and not metadata.get("deletionTimestamp"):
                # kmock marks it deleting; like any write, that is a new version (watchers compare them).
                stored = self.store[request.resource, request.namespace, request.name]
                stored.patch({"metadata": {"resourceVersion": self.resource_version()}})
            return request, None
        assert new is not None
        unchanged = old is not None and _unversioned(new) == _unversioned(old)
        new["metadata"]["resourceVersion"] = (
            old["metadata"].get("resourceVersion")
            if old is not None and unchanged
            else self.resource_version()
        )
        data = new if request.action == enums.action.CREATE else merge_diff(old or {}, new)
        return _with_data(request, data), new

    def _created(self, request: rendering.Request, body: dict[str, Any]) -> dict[str, Any]:
        """A new object, named and stamped, in a namespace that exists."""
        assert request.resource is not None
        new = self._stamp_new(body, request)
        info = self.resources[request.resource]
        name, namespace = new["metadata"]["name"], new["metadata"].get("namespace")
        check_name(info.kind, name)
        if info.namespaced and namespace not in self.namespaces:
            raise not_found(kmock.resource("v1/namespaces"), namespace)
        if self._exists(request, namespace, name):
            raise ApiRejection(
                409,
                "AlreadyExists",
                f'{_qualified(request.resource)} "{name}" already exists',
                subject={
                    "name": name,
                    "group": request.resource.group or "",
                    "kind": request.resource.plural,
                },
            )
        if self.crd_for(request) is not None:
            new.pop("status", None)
        return new

    def _applied(
        self, request: rendering.Request, old: dict[str, Any] | None
    ) -> tuple[rendering.Request, dict[str, Any]]:
        """Server-side apply: a create when the object does not exist, else a merge by manager."""
        assert request.resource is not None
        config = apply.configuration(request.body, request.data)
        manager = str(request.params.get("fieldManager") or "")
        if not manager:
            raise ApiRejection(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
            )
        _same_names(request, config)
        group, version = request.resource.group, request.resource.version
        api_version = f"{group}/{version}" if group else str(version)
        if old is None:
            # An apply that creates needs the right to create, as in kube-apiserver.
            self._enforce(replace(self.request_attributes(request), verb="create"))
            object.__setattr__(request, "action", enums.action.CREATE)
            body = apply.created(config, manager, api_version, self.timestamp())
            body.setdefault("metadata", {}).setdefault("name", request.name)
            return request, self._created(request, body)
        check_precondition(_with_data(request, config), old)
        new = apply.apply(old, config, manager, api_version, self.timestamp())
        return request, moved_on(old, new, self.resource_version)

    async def _admit(
        self, request: rendering.Request, crd: Crd, new: dict[str, Any], old: dict[str, Any] | None
    ) -> dict[str, Any]:
        """`new` after the admission webhooks (status writes are not sent to them, as in kube)."""
        if self.admission is None or request.subresource is not None:
            return new
        user, groups = self.caller(_all_headers(request))
        admitted, refusal = await self.admission.admit(
            "CREATE" if old is None else "UPDATE",
            crd,
            new,
            old,
            request.namespace,
            {"username": user, "groups": list(groups)},
            self._warnings.setdefault(id(request), []),
            dry_run=_dry_run(request),
        )
        if refusal is not None:
            raise refusal
        return dict(admitted)

    async def _admit_delete(self, request: rendering.Request) -> None:
        """Validating admission of a DELETE, as kube-apiserver sends it: no object, the stored one as
        oldObject, the DeleteOptions. (Mutating webhooks are not called for deletions.)"""
        crd = self.crd_for(request)
        if crd is None or self.admission is None or request.subresource is not None or not request.name:
            return
        old = self._current(request)
        if old is None:
            return  # _prepare_write answers 404
        options = delete_options(request)
        user, groups = self.caller(_all_headers(request))
        _, refusal = await self.admission.admit(
            "DELETE",
            crd,
            None,
            old,
            request.namespace,
            {"username": user, "groups": list(groups)},
            self._warnings.setdefault(id(request), []),
            options=options,
            dry_run="All" in (options.get("dryRun") or []),
        )
        if refusal is not None:
            raise refusal

    def _stamp_new(self, obj: dict[str, Any], request: rendering.Request | None) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            # As kube-apiserver names it: the prefix cut to 58 characters, then 5 random ones.
            meta["name"] = str(meta["generateName"])[:58] + "".join(
                secrets.choice(_NAME_ALPHABET) for _ in range(5)
            )
        if request is not None and request.namespace:
            meta["namespace"] = request.namespace
        for key in SERVER_MANAGED:
            if key not in ("name", "namespace"):
                meta.pop(key, None)
        check_metadata(obj)
        meta.update(
            uid=str(uuid.uuid4()),
            creationTimestamp=self.timestamp(),
            resourceVersion=self.resource_version(),
            generation=1,
        )
        if request is not None and request.resource is not None:
            info = self.resources[request.resource]
            group = request.resource.group
            obj.setdefault(
                "apiVersion", f"{group}/{request.resource.version}" if group else request.resource.version
            )
            obj.setdefault("kind", info.kind)
        return obj

    def _exists(self, request: rendering.Request, namespace: str | None, name: str) -> bool:
        key = (request.resource, request.namespace or namespace, name)
        return key in self.objects and not self.objects[key].deleted

    def _current(self, request: rendering.Request) -> dict[str, Any] | None:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].raw)

    async def _collect_dependents(self, owner_uid: str) -> None:
        """Garbage collection (background propagation): what the gone object owned goes too."""
        for (resource, _, _), obj in list(self.objects.items()):
            owners = (obj.get("metadata") or {}).get("ownerReferences") or [] if not obj.deleted else []
            if any(owner.get("uid") == owner_uid for owner in owners):
                raw = copy.deepcopy(obj.raw)
                obj.delete()
                self._publish_deleted(resource, raw)
                await self._collect_dependents(raw["metadata"].get("uid", ""))

    # -- reads -------------------------------------------------------------------------------

    async def _serve_server_version(self, request: rendering.Request) -> rendering.Payload:
        """`kubectl version`: the Kubernetes release whose API behaviour the sandbox follows."""
        major, minor, _ = SERVED_VERSION.removeprefix("v").split(".", 2)
        return {
            "major": major,
            "minor": minor,
            "gitVersion": f"{SERVED_VERSION}+jitaccess-sandbox",
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "",
            "compiler": "python",
            "platform": "linux/amd64",
        }

    async def _serve_version(self, request: rendering.Request) -> rendering.Payload:
        """Discovery, where subresources carry no short names or categories (as in a real server)."""
        payload: Any = await super()._serve_version(request)
        payload["groupVersion"] = payload.get("groupVersion", "").lstrip("/")  # core is "v1", not "/v1"
        for entry in payload.get("resources", []):
            if "/" in entry["name"]:
                entry.update(shortNames=[], categories=[], verbs=["get", "patch", "update"])
        return payload

    def _serve_listing(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if request.resource not in self.resources:
            raise ApiRejection(404, "NotFound", "the server could not find the requested resource")
        items = [
            copy.deepcopy(obj.raw)
            for (_, namespace, _), obj in self.store.of_kind(request.resource)
            if not obj.deleted and (request.namespace is None or namespace == request.namespace)
        ]
        items = [item for item in items if selected(item, request.params)]
        items.sort(key=lambda item: (item["metadata"].get("namespace") or "", item["metadata"].get("name")))
        if _wants_table(request):
            return self._table_response(request, items)
        info = self.resources[request.resource]
        group = request.resource.group
        return aiohttp.web.json_response(
            {
                "apiVersion": f"{group}/{request.resource.version}" if group else request.resource.version,
                "kind": f"{info.kind}List",
                "metadata": {"resourceVersion": str(self._version)},
                "items": items,
            }
        )

    def _table_response(
        self, request: rendering.Request, items: list[dict[str, Any]]
    ) -> aiohttp.web.Response:
        return aiohttp.web.json_response(self._table_body(request, items))

    def _table_body(
        self, request: rendering.Request, items: list[dict[str, Any]], headers: bool = True
    ) -> dict[str, Any]:
        """A meta.k8s.io Table of `items`, rows carrying what `?includeObject=` asks for."""
        assert request.resource is not None
        include = str(request.params.get("includeObject") or "Metadata")
        found = table(
            self.crd_for(request), self.resources[request.resource].kind, items, self.clock(), include
        )
        found["metadata"] = {"resourceVersion": str(self._version)}
        if not headers:  # later events of a watch: kubectl printed the header with the first
            found["columnDefinitions"] = []
        return found

    def _serve_openapi(self, path: str) -> aiohttp.web.StreamResponse:
        if path.rstrip("/") == "/openapi/v3":
            return aiohttp.web.json_response(openapi.index(self.crds))
        if path.rstrip("/") == "/openapi/v3/api/v1":
            return aiohttp.web.json_response(openapi.core_document())
        parts = path.removeprefix("/openapi/v3/apis/").strip("/").split("/")
        document = None
        if len(parts) == 2:
            document = openapi.document(self.crds, parts[0], parts[1]) or openapi.builtin_document(*parts)
        if document is None:
            raise ApiRejection(404, "NotFound", f"no OpenAPI document at {path}")
        return aiohttp.web.json_response(document)


_MISSING_OLD: Any = object()
_log = logging.getLogger(__name__)
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _qualified(resource: Any) -> str:
    """activationrequests.jitaccess.dev, or events for the core group: how kube names a resource."""
    return f"{resource.plural}.{resource.group}" if resource.group else str(resource.plural)


def not_found(resource: Any, name: str | None) -> ApiRejection:
    return ApiRejection(
        404,
        "NotFound",
        f'{_qualified(resource)} "{name}" not found',
        subject={"name": name or "", "group": resource.group or "", "kind": resource.plural},
    )


def invalid(crd: Crd, new: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Refuse (422 Invalid, a cause per field) what the CRD's schema and CEL rules refuse."""
    errors = validate(crd.schema, new, old if old is not None else _MISSING_OLD)
    if not errors:
        return
    name = new.get("metadata", {}).get("name", "")
    causes = [
        {"reason": "FieldValueInvalid", "field": field, "message": message.strip()}
        for field, _, message in (error.partition(": ") for error in errors)
    ]
    raise ApiRejection(
        422,
        "Invalid",
        f'{crd.kind}.{crd.group} "{name}" is invalid: ' + ", ".join(errors),
        causes,
        {"name": name, "group": crd.group, "kind": crd.kind},
    )


_COLLECTOR_FINALIZERS = frozenset({"foregroundDeletion", "orphan"})


def _only_collector_finalizers(obj: dict[str, Any]) -> bool:
    metadata = obj.get("metadata") or {}
    finalizers = set(metadata.get("finalizers") or ())
    return (
        bool(metadata.get("deletionTimestamp")) and bool(finalizers) and finalizers <= _COLLECTOR_FINALIZERS
    )


def _same_names(request: rendering.Request, body: Mapping[str, Any]) -> None:
    """A body that names another object than its URL is refused (400), as kube-apiserver does."""
    metadata = body.get("metadata") if isinstance(body.get("metadata"), Mapping) else {}
    name, namespace = metadata.get("name"), metadata.get("namespace")
    if name is not None and name != request.name:
        raise ApiRejection(
            400,
            "BadRequest",
            f"the name of the object ({name}) does not match the name on the URL ({request.name})",
        )
    if namespace is not None and request.namespace is not None and namespace != request.namespace:
        raise ApiRejection(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        )


def _all_headers(request: rendering.Request) -> Mapping[str, str]:
    """Every header, repeated ones too (Impersonate-Group may come more than once)."""
    raw = request._raw_request
    return raw.headers if raw is not None else request.headers


def _unversioned(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "resourceVersion"}
    return {**obj, "metadata": metadata}


def _with_data(request: rendering.Request, data: Any) -> rendering.Request:
    """Replace the body kmock will store. In place, because kmock routes requests by identity."""
    object.__setattr__(request, "data", data)
    return request


def _header_values(headers: Mapping[str, str], name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return [str(value) for value in getall(name, [])]
    return [str(value) for key, value in headers.items() if key.lower() == name.lower()]


def _verb(request: rendering.Request) -> str:
    """The request's verb in RBAC's terms: what is authorized, and so what is done."""
    method = str(getattr(request.method, "value", request.method)).upper()
    if method == "GET":
        if str(request.params.get("watch") or "").lower() in ("true", "1"):
            return "watch"
        return "get" if request.name else "list"
    if method == "DELETE" and not request.name:
        return "deletecollection"
    if method in ("PUT", "PATCH") and not request.name:
        return "update-collection"  # nothing kube serves
    return {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(
        method, method.lower()
    )


def delete_options(request: rendering.Request) -> dict[str, Any]:
    """The DeleteOptions of a DELETE (body and query), as admission webhooks are sent them."""
    body = request.data if isinstance(request.data, dict) else {}
    options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"}
    for field in ("gracePeriodSeconds", "preconditions", "orphanDependents", "propagationPolicy", "dryRun"):
        if body.get(field) is not None:
            options[field] = body[field]
    params = request.params
    if "propagationPolicy" not in options and params.get("propagationPolicy"):
        options["propagationPolicy"] = params["propagationPolicy"]
    if "gracePeriodSeconds" not in options and str(params.get("gracePeriodSeconds") or "").isdigit():
        options["gracePeriodSeconds"] = int(params["gracePeriodSeconds"])
    if "dryRun" not in options and params.get("dryRun"):
        options["dryRun"] = [params["dryRun"]]
    return options


def _dry_run(request: rendering.Request) -> bool:
    return "All" in (delete_options(request).get("dryRun") or [])


def _wants_table(request: rendering.Request) -> bool:
    return "as=Table" in (request.headers.get("Accept") or request.headers.get("accept") or "")


def _review_problems(resource: object, other: object) -> list[str]:
    """What kube-apiserver says is invalid about an access review's attributes."""
    invalid = []
    if resource is not None and other is not None:
        invalid.append(
            "spec.nonResourceAttributes: Invalid value: ...: "
            "cannot be specified in combination with resourceAttributes"
        )
    if resource is None and other is None:
        invalid.append(
            'spec.resourceAttributes: Invalid value: "null": '
            "exactly one of nonResourceAttributes or resourceAttributes must be specified"
        )
    return invalid


def _review_attributes(user: str, groups: tuple[str, ...], resource: object, other: object) -> Attributes:
    """The authorizer's attributes for an access review's resource or non-resource attributes."""
    if isinstance(resource, dict):
        return Attributes(
            user=user,
            groups=groups,
            verb=str(resource.get("verb") or ""),
            api_group=str(resource.get("group") or ""),
            api_version=str(resource.get("version") or ""),
            resource=str(resource.get("resource") or ""),
            subresource=str(resource.get("subresource") or ""),
            namespace=str(resource.get("namespace") or ""),
            name=str(resource.get("name") or ""),
        )
    other = other if isinstance(other, dict) else {}
    return Attributes(
        user=user,
        groups=groups,
        verb=str(other.get("verb") or ""),
        resource_request=False,
        path=str(other.get("path") or ""),
    )
