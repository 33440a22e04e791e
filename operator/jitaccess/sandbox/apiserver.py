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
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
from kmock._internal import enums, rendering

from jitaccess.sandbox import openapi
from jitaccess.sandbox.admission import WebhookDispatcher
from jitaccess.sandbox.crds import Crd, load_crds
from jitaccess.sandbox.tables import core_table, table
from jitaccess.sandbox.validation import validate

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SELF_SUBJECT_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
_NAMESPACE_PATH = re.compile(r"/api/v1/namespaces(?:/([^/]+))?/?")
CORE_RESOURCES = {
    "v1/namespaces": {
        "kind": "Namespace",
        "singular": "namespace",
        "namespaced": False,
        "shortnames": {"ns"},
    },
    "v1/events": {"kind": "Event", "singular": "event", "namespaced": True, "shortnames": {"ev"}},
    "events.k8s.io/v1/events": {
        "kind": "Event",
        "singular": "event",
        "namespaced": True,
        "shortnames": {"ev"},
    },
    "admissionregistration.k8s.io/v1/mutatingwebhookconfigurations": {
        "kind": "MutatingWebhookConfiguration",
        "singular": "mutatingwebhookconfiguration",
        "namespaced": False,
    },
    "admissionregistration.k8s.io/v1/validatingwebhookconfigurations": {
        "kind": "ValidatingWebhookConfiguration",
        "singular": "validatingwebhookconfiguration",
        "namespaced": False,
    },
    "coordination.k8s.io/v1/leases": {"kind": "Lease", "singular": "lease", "namespaced": True},
    "apiextensions.k8s.io/v1/customresourcedefinitions": {
        "kind": "CustomResourceDefinition",
        "singular": "customresourcedefinition",
        "namespaced": False,
        "shortnames": {"crd", "crds"},
    },
}
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete"}


class ApiRejection(Exception):
    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        causes: list[dict[str, str]] | None = None,
        subject: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details: dict[str, Any] = {**(subject or {}), **({"causes": causes} if causes else {})}

    def response(self) -> aiohttp.web.Response:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return aiohttp.web.json_response(body, status=self.code)


class IndexedObjects(dict[tuple[Any, str | None, str], Any]):
    """kmock's object store, plus an index by resource kind, kept as kmock writes.

    kmock finds objects by scanning all of them (comparing each address by parsing resource
    names); with thousands of objects and Events that scan, not the operator, was the bottleneck.
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.by_kind: dict[tuple[str | None, str | None, str | None], dict[Any, None]] = {}
        for key in self:
            self._index(key)

    @staticmethod
    def kind(resource: Any) -> tuple[str | None, str | None, str | None]:
        return (resource.group, resource.version, resource.plural)

    def _index(self, key: tuple[Any, str | None, str]) -> None:
        self.by_kind.setdefault(self.kind(key[0]), {})[key] = None

    def __setitem__(self, key: tuple[Any, str | None, str], value: Any) -> None:
        super().__setitem__(key, value)
        self._index(key)

    def __delitem__(self, key: tuple[Any, str | None, str]) -> None:
        super().__delitem__(key)
        self.by_kind.get(self.kind(key[0]), {}).pop(key, None)

    def clear(self) -> None:
        super().clear()
        self.by_kind.clear()

    def of_kind(self, resource: Any) -> list[tuple[tuple[Any, str | None, str], Any]]:
        return [(key, self[key]) for key in self.by_kind.get(self.kind(resource), {})]


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

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.store = IndexedObjects(self._objects._objects)
        object.__setattr__(self._objects, "_objects", self.store)  # kmock's (frozen) ObjectsArray
        for key, info in CORE_RESOURCES.items():
            self.resources[key] = kmock.ResourceInfo(verbs=VERBS, subresources=set(), **info)
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
        for name in ("default", "kube-system", "jitaccess-system"):
            self.add_namespace(name)
        for crd in self.crds:  # kubectl and kopf look the CRDs up too
            self.objects[
                "apiextensions.k8s.io/v1/customresourcedefinitions", None, crd.raw["metadata"]["name"]
            ] = self._stamp_new(copy.deepcopy(crd.raw), None)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # kmock cannot parse /api/v1/namespaces[/NAME] (it reads "namespaces" as the namespace
        # prefix of a path), so Namespace objects are served here, before kmock parses anything.
        if raw_request.path == _SELF_SUBJECT_REVIEWS and raw_request.method == "POST":
            return self._who_am_i(raw_request)
        match = _NAMESPACE_PATH.fullmatch(raw_request.path)
        if match is None:
            return await super().__call__(raw_request)
        return await self._serve_namespace(raw_request, match.group(1))

    def _who_am_i(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """SelfSubjectReview (`kubectl auth whoami`): the caller as authentication saw them."""
        token = str(raw.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        user = token.removeprefix("sandbox:") if token.startswith("sandbox:") else "system:anonymous"
        groups = [*self.users.get(user, []), "system:authenticated"] if user in self.users else []
        return aiohttp.web.json_response(
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "SelfSubjectReview",
                "metadata": {"creationTimestamp": None},
                "status": {"userInfo": {"username": user, "groups": groups}},
            },
            status=201,
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
        method = str(getattr(request.method, "value", request.method)).upper()
        if method == "GET":
            verb = (
                "get" if request.name else "watch" if request.params.get("watch") in ("true", "1") else "list"
            )
        else:
            verb = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(
                method, method
            )
        plural = f"{resource.plural}.{resource.group}" if resource.group else str(resource.plural)
        self.served[user, verb, plural, request.subresource or ""] += 1

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
                async with self._object_lock(request):
                    before = self._current(request) if request.action != enums.action.CREATE else None
                    try:
                        request = await self._prepare_write(request)
                        response = await self._route(request)
                    finally:
                        warnings = self._warnings.pop(id(request), [])
                    if before is not None and self._current(request) is None:
                        await self._collect_dependents(before["metadata"]["uid"])
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
            if not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
                raise ApiRejection(
                    422,
                    "Invalid",
                    f'{kind} "{str(name)[:80]}" is invalid: metadata.name: Invalid value: '
                    f"{json.dumps(str(name)[:80])}: a lowercase RFC 1123 subdomain must consist of lower case "
                    "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                    "character (e.g. 'example.com'), at most 253 characters",
                )
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
            _check_precondition(request, old)
            new = self._patched(old, request, crd)
        else:  # kmock marks or removes the object itself, and tells the watchers
            if old is None:
                raise ApiRejection(404, "NotFound", f'{request.resource.plural} "{request.name}" not found')
            metadata = old.get("metadata") or {}
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

    def _patched(self, old: dict[str, Any], request: rendering.Request, crd: Crd | None) -> dict[str, Any]:
        body = request.data
        if isinstance(body, list):
            try:
                new = jsonpatch.apply_patch(copy.deepcopy(old), body)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
                raise ApiRejection(422, "Invalid", f"the JSON patch cannot be applied: {error}") from None
        elif isinstance(body, dict):
            new = merge_patch(old, body)
        else:
            raise ApiRejection(415, "UnsupportedMediaType", "send a JSON merge patch or a JSON patch")
        if crd is not None:  # the status subresource: each side changes only its own part
            if request.subresource == "status":
                new = (
                    {**old, "status": new.get("status")}
                    if "status" in new
                    else {k: v for k, v in old.items() if k != "status"}
                )
                new["metadata"] = copy.deepcopy(old["metadata"])
            else:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
        meta = new.setdefault("metadata", {})
        for key in ("uid", "creationTimestamp", "name", "namespace", "deletionTimestamp"):
            if key in old.get("metadata", {}):
                meta[key] = old["metadata"][key]
        if new.get("spec") != old.get("spec"):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if new != old:
            meta["resourceVersion"] = self.resource_version()
        return new

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
        items = [item for item in items if _selected(item, request.params)]
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
        document = openapi.document(self.crds, parts[0], parts[1]) if len(parts) == 2 else None
        if document is None:
            raise ApiRejection(404, "NotFound", f"no OpenAPI document at {path}")
        return aiohttp.web.json_response(document)


_MISSING_OLD: Any = object()


def _check_precondition(request: rendering.Request, old: dict[str, Any]) -> None:
    """A patch that names a resourceVersion applies only to that version, as in kube-apiserver:
    optimistic concurrency (how leader election and other read-modify-writes stay safe)."""
    data = request.data
    wanted = ((data.get("metadata") or {}).get("resourceVersion") if isinstance(data, dict) else None) or ""
    current = str((old.get("metadata") or {}).get("resourceVersion", ""))
    if wanted and str(wanted) != current:
        resource = request.resource
        plural = f"{resource.plural}.{resource.group}" if resource and resource.group else str(resource)
        raise ApiRejection(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {plural} "{request.name}": the object has been modified; '
            "please apply your changes to the latest version and try again",
        )


def _with_data(request: rendering.Request, data: Any) -> rendering.Request:
    """Replace the body kmock will store. In place, because kmock routes requests by identity."""
    object.__setattr__(request, "data", data)
    return request


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def merge_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The merge patch that turns `old` into `new` (lists and scalars are replaced whole)."""
    diff: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        diff[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_diff(before, value)
            if nested:
                diff[key] = nested
        elif key not in old or before != value:
            diff[key] = value
    return diff


def _selected(item: dict[str, Any], params: Any) -> bool:
    """labelSelector (k=v, k!=v, k) and fieldSelector (dotted paths, = and !=)."""
    labels = item.get("metadata", {}).get("labels") or {}
    for term in filter(None, (params.get("labelSelector") or "").split(",")):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.strip() not in labels:
            return False
    for term in filter(None, (params.get("fieldSelector") or "").split(",")):
        negate = "!=" in term
        key, value = term.replace("!=", "=").replace("==", "=").split("=", 1)
        actual: Any = item
        for part in key.strip().split("."):
            actual = actual.get(part) if isinstance(actual, dict) else None
        if (str(actual if actual is not None else "") == value.strip()) == negate:
            return False
    return True


def _wants_table(request: rendering.Request) -> bool:
    return "as=Table" in (request.headers.get("Accept") or request.headers.get("accept") or "")


def dumps(obj: Any) -> str:
    return json.dumps(obj)
