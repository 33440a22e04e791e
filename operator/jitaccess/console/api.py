"""The console's JSON API, for its page and for scripts (with an IAP assertion and the CSRF token).

Reads answer from the mirror, filtered to what the signed-in person may see. Writes are filed by
the console's service account in that person's name (`console.actions`) and judged by admission
exactly as kubectl's are; an API server refusal comes back with its status and its words (admission's
without the API server's "admission webhook ... denied the request: ").

    GET  /api/me                                     who I am, my CSRF token, where I file
    GET  /api/grants                                 what I may activate (and what only groups may)
    GET  /api/requests                               my requests, newest first
    GET  /api/requests/{namespace}/{name}            one request: terms, progress, decisions, Events
    GET  /api/approvals                              what waits for my decision or review
    POST /api/requests                               file a request
    POST /api/requests/{namespace}/{name}/revoke     end my access (or withdraw my request)
    POST /api/requests/{namespace}/{name}/extend     more time for my Active access
    POST /api/requests/{namespace}/{name}/decisions  Approve, Deny, Review or Revoke (break-glass)
    GET  /api/stream                                 server-sent events: something changed
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from jitaccess.api.bodies import spec_of
from jitaccess.api.objects import Grant, is_kubernetes_name
from jitaccess.console.actions import decision, extension, new_request, revocation
from jitaccess.console.detail import request_detail
from jitaccess.console.kube import KubeError, collection
from jitaccess.console.mirror import APPROVALS, REQUESTS
from jitaccess.console.replies import PERSON, error
from jitaccess.console.views import (
    is_mine,
    may_see,
    my_grants,
    my_requests,
    parsed_grants,
    pending_for,
    request_summary,
)

if TYPE_CHECKING:
    from jitaccess.console.server import Console

GROUPS_NOTE = (
    "Identity-Aware Proxy proves who you are, not which groups you are in: here you act as your "
    "user alone, so grants that name you only through a group cannot be used from the console."
)


def add_routes(app: web.Application, console: Console) -> None:
    api = Api(console)
    app.router.add_get("/api/me", api.me)
    app.router.add_get("/api/grants", api.grants)
    app.router.add_get("/api/requests", api.requests)
    app.router.add_get("/api/requests/{namespace}/{name}", api.request)
    app.router.add_get("/api/approvals", api.approvals)
    app.router.add_post("/api/requests", api.file_request)
    app.router.add_post("/api/requests/{namespace}/{name}/revoke", api.revoke)
    app.router.add_post("/api/requests/{namespace}/{name}/extend", api.extend)
    app.router.add_post("/api/requests/{namespace}/{name}/decisions", api.decide)


class Api:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.objects = console.mirror.objects

    def _grants(self) -> dict[str, Grant]:
        return parsed_grants(self.objects["grants"].values())

    async def me(self, request: web.Request) -> web.Response:
        person = request[PERSON]
        return web.json_response(
            {
                "email": person.email,
                "member": person.member,
                "csrfToken": self.console.csrf.token(person.member),
                "requestsNamespace": self.console.settings.requests_namespace,
                "groups": GROUPS_NOTE,
            }
        )

    async def grants(self, request: web.Request) -> web.Response:
        return web.json_response(my_grants(self._grants(), request[PERSON].member, self.console.now()))

    async def requests(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"requests": my_requests(self.objects["requests"].values(), request[PERSON].member)}
        )

    async def approvals(self, request: web.Request) -> web.Response:
        pending = pending_for(
            request[PERSON].member,
            self.objects["requests"].values(),
            self._grants(),
            self.objects["approvals"].values(),
        )
        return web.json_response({"pending": pending})

    async def _found(self, request: web.Request) -> dict[str, Any] | None:
        """The request named in the path as this person may see it (None: absent or not theirs to see)."""
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        if not (is_kubernetes_name(namespace) and is_kubernetes_name(name)):
            return None  # nothing else goes into a path to the API server
        body = self.objects["requests"].get((namespace, name))
        if body is None:  # just filed, perhaps through the other replica: ask the API once
            try:
                body = await self.console.kube.get(f"{collection(REQUESTS.plural, namespace)}/{name}")
            except KubeError:
                body = None
        if body is None:
            return None
        grant = self._grants().get(str(spec_of(body).get("grant")))
        visible = may_see(body, grant, request[PERSON].member, self.objects["approvals"].values())
        return body if visible else None

    async def request(self, request: web.Request) -> web.Response:
        body = await self._found(request)
        if body is None:
            return error(404, "no such request, or not one of yours to see")
        grant = self._grants().get(str(spec_of(body).get("grant")))
        detail = request_detail(
            body,
            grant,
            self.objects["approvals"].values(),
            self.objects["events"].values(),
            request[PERSON].member,
        )
        return web.json_response(detail)

    async def file_request(self, request: web.Request) -> web.Response:
        person = request[PERSON]
        body = new_request(await _json(request), person.member, self.console.settings.requests_namespace)
        return await self._create(REQUESTS.plural, body, 201)

    async def extend(self, request: web.Request) -> web.Response:
        person = request[PERSON]
        found = await self._found(request)
        if found is None or not is_mine(found, person.member):
            return error(403, "only the requester extends their access")
        return await self._create(REQUESTS.plural, extension(await _json(request), found, person.member), 201)

    async def decide(self, request: web.Request) -> web.Response:
        person = request[PERSON]
        found = await self._found(request)
        if found is None:
            return error(404, "no such request, or not one you decide on")
        return await self._create(APPROVALS.plural, decision(await _json(request), found, person.member), 201)

    async def revoke(self, request: web.Request) -> web.Response:
        person = request[PERSON]
        await _json(request)  # a JSON body, as every call that changes something
        found = await self._found(request)
        if found is None or not is_mine(found, person.member):
            return error(403, "through the console a person revokes only their own access")
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        try:
            patched = await self.console.kube.patch(
                f"{collection(REQUESTS.plural, namespace)}/{name}", revocation(person.member)
            )
        except KubeError as refused:
            return _refused(refused)
        return web.json_response({"request": request_summary(patched)})

    async def _create(self, plural: str, body: dict[str, Any], status: int) -> web.Response:
        namespace = body["metadata"]["namespace"]
        try:
            created = await self.console.kube.create(collection(plural, namespace), body)
        except KubeError as refused:
            return _refused(refused)
        kind = REQUESTS if plural == REQUESTS.plural else APPROVALS
        self.console.mirror.remember(kind, created)
        shown = request_summary(created) if kind is REQUESTS else {"name": created["metadata"]["name"]}
        return web.json_response({"created": shown}, status=status)


# How the API server wraps what admission said: it names a webhook, which means nothing to a person.
WEBHOOK_DENIED = re.compile(r'^admission webhook "[^"]*" denied the request: ')


def _refused(refused: KubeError) -> web.Response:
    """The API server's refusal, as admission (or RBAC) worded it."""
    return error(refused.status, WEBHOOK_DENIED.sub("", refused.message))


async def _json(request: web.Request) -> Any:
    """The body as JSON; 400 for anything that is not (bad bytes, a charset nobody knows, nesting
    deeper than the parser goes). Its size aiohttp limits (413 past client_max_size, 1 MiB)."""
    try:
        return await request.json()
    except (ValueError, LookupError, RecursionError):  # JSONDecodeError, UnicodeDecodeError are ValueErrors
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "the body must be JSON"}), content_type="application/json"
        ) from None
