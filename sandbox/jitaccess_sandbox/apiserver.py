"""A Kubernetes API server for one machine: kmock's KubernetesEmulator, made to behave like the real one.

kmock keeps objects and serves list/watch/get; this subclass adds what kubectl and a real
operator notice: `uid`, `creationTimestamp`, `resourceVersion` and `generation` stamped on
writes; the status subresource (status only through /status, never on create); structural
schema and CEL validation of our CRDs with `422 Invalid` answers; `kind: XList` lists with
label and field selectors; `Table` answers for `kubectl get`; OpenAPI v3 for `kubectl apply`
and `kubectl explain`. Each write is computed here in full, then handed to kmock as the merge
patch that turns the old object into the new one, so kmock's store and watch streams stay the
single source of truth.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import itertools
import json
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import enums, rendering

from jitaccess_sandbox import openapi, protobuf
from jitaccess_sandbox.admission import WebhookDispatcher
from jitaccess_sandbox.crds import Crd, load_crds
from jitaccess_sandbox.rbac import (
    SERVICE_ACCOUNT_PREFIX,
    Attributes,
    Decision,
    RbacAuthorizer,
    bootstrap_policy,
    forbidden_message,
)
from jitaccess_sandbox.store import CORE_RESOURCES, VERBS, IndexedObjects, selected
from jitaccess_sandbox.tables import core_table, table
from jitaccess_sandbox.validation import validate
from jitaccess_sandbox.writes import (
    ApiRejection,
    check_name,
    check_precondition,
    merge_diff,
    merge_patch,
    patched,
)

_SELF_SUBJECT_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
# SubjectAccessReview (another's rights) and SelfSubjectAccessReview (`kubectl auth can-i`): path -> kind.
_ACCESS_REVIEWS = {
    "/apis/authorization.k8s.io/v1/subjectaccessreviews": "SubjectAccessReview",
    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews": "SelfSubjectAccessReview",
    "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews": "SelfSubjectRulesReview",  # can-i --list
}
_NAMESPACE_PATH = re.compile(r"/api/v1/namespaces(?:/([^/]+))?/?")


@attrs.define(kw_only=True)
class SandboxApi(kmock.KubernetesEmulator):
    crds: tuple[Crd, ...] = attrs.field(factory=load_crds)
    admission: WebhookDispatcher | None = None
    # The cluster's time, for the timestamps it stamps; the sandbox shares its clock with the operator.
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    _versions: Any = attrs.field(factory=lambda: itertools.count(1), init=False)
    # Writes of one object are serialised (admission included), writes of different ones are not.
    _writes: dict[tuple[Any, ...], tuple[asyncio.Lock, int]] = attrs.field(factory=dict, init=False)
    namespaces: dict[str, dict[str, Any]] = attrs.field(factory=dict, init=False)
    _warnings: dict[int, list[str]] = attrs.field(factory=dict, init=False)
    store: IndexedObjects = attrs.field(factory=IndexedObjects, init=False)
    # Who did what: (user, verb, resource, subresource) -> count, in RBAC's terms. How tests and
    # benchmarks learn which calls the operator makes (and so what its ClusterRole must allow).
    served: collections.Counter[tuple[str, str, str, str]] = attrs.field(
        factory=collections.Counter, init=False
    )
    # The people authentication knows, with their groups (set by the sandbox runner).
    users: dict[str, list[str]] = attrs.field(factory=dict, init=False)
    # RBAC over the stored Roles and bindings: answers SubjectAccessReviews (not yet enforced).
    rbac: RbacAuthorizer = attrs.field(init=False)

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
        if raw_request.content_type == protobuf.CONTENT_TYPE:  # what kubectl sends for built-in kinds
            try:
                body = protobuf.decode(await raw_request.read())
            except protobuf.ProtobufError as error:
                return ApiRejection(415, "UnsupportedMediaType", str(error)).response()
            # aiohttp's buffer of the body, which read(), text() and json() (and so kmock) return.
            raw_request._read_bytes = json.dumps(body).encode()
        if raw_request.path == _SELF_SUBJECT_REVIEWS and raw_request.method == "POST":
            return self._who_am_i(raw_request)
        if raw_request.path in _ACCESS_REVIEWS:
            return await self._review_access(raw_request, _ACCESS_REVIEWS[raw_request.path])
        # kmock cannot parse /api/v1/namespaces[/NAME] (it reads "namespaces" as the namespace
        # prefix of a path), so Namespace objects are served here, before kmock parses anything.
        match = _NAMESPACE_PATH.fullmatch(raw_request.path)
        if match is None:
            return await super().__call__(raw_request)
        return await self._serve_namespace(raw_request, match.group(1))

    def _who_am_i(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """SelfSubjectReview (`kubectl auth whoami`): the caller as authentication saw them."""
        token = str(raw.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        user = token.removeprefix("sandbox:") if token.startswith("sandbox:") else "system:anonymous"
        groups = [*self.users.get(user, []), "system:authenticated"] if user in self.users else []
        self.served[user, "create", "selfsubjectreviews.authentication.k8s.io", ""] += 1
        return aiohttp.web.json_response(
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "SelfSubjectReview",
                "metadata": {"creationTimestamp": None},
                "status": {"userInfo": {"username": user, "groups": groups}},
            },
            status=201,
        )

    def caller(self, headers: Mapping[str, str]) -> tuple[str, tuple[str, ...]]:
        """The user a request acts as, with their groups, as authentication and impersonation hand
        them to the authorizer: the bearer token's user, or the one `Impersonate-User` names (with
        the `Impersonate-Group`s) if the token's user may impersonate them (else 403, as kube does)."""
        token = str(headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        if not token.startswith("sandbox:"):
            user, groups = "system:anonymous", ("system:unauthenticated",)
        else:
            user = token.removeprefix("sandbox:")
            groups = (*self.users.get(user, []), "system:authenticated")
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

    async def _review_access(self, raw: aiohttp.web.BaseRequest, kind: str) -> aiohttp.web.StreamResponse:
        """SubjectAccessReview, SelfSubjectAccessReview and SelfSubjectRulesReview, answered by the
        RBAC authorizer (201, the request echoed with `status` added, as kube-apiserver answers)."""
        if raw.method != "POST":
            return ApiRejection(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            ).response()
        try:
            caller, caller_groups = self.caller(raw.headers)
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

    def authorize(self, request: rendering.Request) -> Decision:
        """Would RBAC allow this request? (Not enforced yet: the call `_handle` would make.)"""
        return self.rbac.authorize(self.request_attributes(request))

    def enforce_rbac(self, request: rendering.Request) -> None:
        """Refuse, as kube-apiserver does (403 Forbidden), a request RBAC does not allow."""
        attributes = self.request_attributes(request)
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
        if raw.method == "GET" and name is None:
            items = sorted(self.namespaces.values(), key=lambda ns: ns["metadata"]["name"])
            if "as=Table" in raw.headers.get("Accept", ""):
                return aiohttp.web.json_response(core_table(items, self.resource_version()))
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
            if not name:
                return ApiRejection(422, "Invalid", "metadata.name: Required value").response()
            if name in self.namespaces:
                return ApiRejection(409, "AlreadyExists", f'namespaces "{name}" already exists').response()
            self.add_namespace(name)
            return aiohttp.web.json_response(self.namespaces[name], status=201)
        if name is None or name not in self.namespaces:
            return ApiRejection(404, "NotFound", f'namespaces "{name}" not found').response()
        if raw.method == "GET":
            if "as=Table" in raw.headers.get("Accept", ""):
                return aiohttp.web.json_response(core_table([self.namespaces[name]], self.resource_version()))
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

    def _KubernetesEmulator__get_objs(self, request: rendering.Request, strict: bool) -> list[Any]:
        """kmock's object lookup, by key instead of by comparing every stored object's address.

        kmock scans all objects for every get, patch and list; see IndexedObjects.
        """
        resource, namespace, name = request.resource, request.namespace, request.name
        if resource is None:
            return []
        if name is not None and (strict or namespace is not None):
            found = self.store.get((resource, namespace, name))
            return [found] if found is not None else []
        return [
            obj
            for (_, space, label), obj in self.store.of_kind(resource)
            if (namespace is None or space == namespace) and (name is None or label == name)
        ]

    def seed(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store an object as if it had been written long ago, bypassing admission (benchmarks)."""
        metadata = body.setdefault("metadata", {})
        metadata.setdefault("uid", str(uuid.uuid4()))
        metadata.setdefault("creationTimestamp", self.timestamp())
        metadata["resourceVersion"] = self.resource_version()
        self.objects[resource, metadata.get("namespace"), metadata["name"]] = body
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
        return str(next(self._versions))

    def _record(self, request: rendering.Request) -> None:
        resource = request.resource
        if resource is None or resource.plural is None:
            return
        token = str(request.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        user = token.removeprefix("sandbox:") if token.startswith("sandbox:") else "system:anonymous"
        plural = f"{resource.plural}.{resource.group}" if resource.group else str(resource.plural)
        self.served[user, _verb(request), plural, request.subresource or ""] += 1

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        self._record(request)
        try:
            path = request.url.path
            if path.startswith("/openapi/"):
                return self._serve_openapi(path)
            if request.resource is None or request.resource.plural is None:  # discovery, /version, …
                return await self._route(request)
            if request.method == enums.method.PUT:
                raise ApiRejection(
                    405,
                    "MethodNotAllowed",
                    "PUT is not supported by the sandbox; use kubectl apply or kubectl patch",
                )
            if request.action in (enums.action.CREATE, enums.action.UPDATE, enums.action.DELETE):
                try:
                    if request.action == enums.action.DELETE:
                        # Before the object's lock: a webhook may write this very object while it
                        # reviews the deletion (a side effect such as recording who deleted it).
                        await self._admit_delete(request)
                    async with self._object_lock(request):
                        # For a DELETE, read again under the lock: what is deleted is the object as
                        # it is now, the admitted one plus whatever the webhooks wrote meanwhile.
                        before = self._current(request) if request.action != enums.action.CREATE else None
                        request = await self._prepare_write(request)
                        if request.action == enums.action.DELETE and before is not None and _dry_run(request):
                            response = aiohttp.web.json_response(before)  # validated, not deleted
                        else:
                            response = await self._route(request)
                        if before is not None and self._current(request) is None:
                            await self._collect_dependents(before["metadata"]["uid"])
                finally:
                    warnings = self._warnings.pop(id(request), [])
                for warning in warnings:  # as kube-apiserver relays admission warnings to kubectl
                    response.headers.add("Warning", f'299 - "{warning}"')
                if request.action == enums.action.CREATE and response.status == 200:
                    response.set_status(201)  # Created, as kube-apiserver answers (clients rely on it)
                return response
            if request.action == enums.action.LIST:
                return self._serve_listing(request)
            if request.action == enums.action.FETCH and _wants_table(request):
                obj = self._current(request)
                if obj is None:
                    raise ApiRejection(
                        404, "NotFound", f'{request.resource.plural} "{request.name}" not found'
                    )
                return self._table_response(request, [obj])
            return await self._route(request)
        except ApiRejection as rejection:
            return rejection.response()

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

    # -- writes ------------------------------------------------------------------------------

    async def _prepare_write(self, request: rendering.Request) -> rendering.Request:
        crd = self.crd_for(request)
        old = self._current(request) if request.action != enums.action.CREATE else None
        kind = crd.kind if crd else request.resource.plural if request.resource else "object"
        if request.action == enums.action.CREATE:
            new = self._stamp_new(copy.deepcopy(request.data or {}), request)
            name = new["metadata"]["name"]
            check_name(kind, name)
            if self._exists(request, new["metadata"].get("namespace"), name):
                raise ApiRejection(
                    409,
                    "AlreadyExists",
                    f'{request.resource.plural}.{request.resource.group} "{name}" already exists',
                )
            if crd is not None:
                new.pop("status", None)
        elif request.action == enums.action.UPDATE:
            if old is None:
                raise ApiRejection(404, "NotFound", f'{request.resource.plural} "{request.name}" not found')
            check_precondition(request, old)
            new = patched(old, request, crd, self.resource_version)
        else:  # kmock marks or removes the object itself, and tells the watchers
            if old is None:
                raise ApiRejection(404, "NotFound", f'{request.resource.plural} "{request.name}" not found')
            metadata = old.get("metadata") or {}
            if _dry_run(request):
                return request
            if metadata.get("finalizers") and not metadata.get("deletionTimestamp"):
                # kmock marks it deleting; like any write, that is a new version (watchers compare them).
                stored = self.store[request.resource, request.namespace, request.name]
                stored.patch({"metadata": {"resourceVersion": self.resource_version()}})
            return request
        if crd is not None and self.admission is not None and request.subresource is None:
            new, denial = await self.admission.admit(
                "CREATE" if old is None else "UPDATE",
                crd,
                new,
                old,
                request.namespace,
                request.headers.get("Authorization"),
                self._warnings.setdefault(id(request), []),
            )
            if denial:
                raise ApiRejection(403, "Forbidden", denial)
        if crd is not None:
            errors = validate(crd.schema, new, old if old is not None else _MISSING_OLD)
            if errors:
                name = new.get("metadata", {}).get("name", "")
                causes = [
                    {"reason": "FieldValueInvalid", "field": field, "message": message.strip()}
                    for field, _, message in (error.partition(": ") for error in errors)
                ]
                raise ApiRejection(
                    422,
                    "Invalid",
                    f'{kind}.{crd.group} "{name}" is invalid: ' + ", ".join(errors),
                    causes,
                    {"name": name, "group": crd.group, "kind": kind},
                )
        return _with_data(
            request, new if request.action == enums.action.CREATE else merge_diff(old or {}, new)
        )

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
        _, denial = await self.admission.admit(
            "DELETE",
            crd,
            None,
            old,
            request.namespace,
            request.headers.get("Authorization"),
            self._warnings.setdefault(id(request), []),
            options=options,
            dry_run="All" in (options.get("dryRun") or []),
        )
        if denial:
            raise ApiRejection(403, "Forbidden", denial)

    def _stamp_new(self, obj: dict[str, Any], request: rendering.Request | None) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        if request is not None and request.namespace:
            meta["namespace"] = request.namespace
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
                async with self._lock:
                    obj.delete()
                    await self._buses[resource].put({"type": "DELETED", "object": raw})
                await self._collect_dependents(raw["metadata"].get("uid", ""))

    # -- reads -------------------------------------------------------------------------------

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
                "metadata": {"resourceVersion": self.resource_version()},
                "items": items,
            }
        )

    def _table_response(
        self, request: rendering.Request, items: list[dict[str, Any]]
    ) -> aiohttp.web.Response:
        crd = self.crd_for(request)
        version = self.resource_version()
        body = table(crd, items, version) if crd else core_table(items, version)
        return aiohttp.web.json_response(body)

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
    """The request's verb in RBAC's terms."""
    method = str(getattr(request.method, "value", request.method)).upper()
    if method == "GET":
        if request.params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if request.name else "list"
    if method == "DELETE" and not request.name:
        return "deletecollection"
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
