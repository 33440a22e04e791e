"""The console's HTTP server: who is asking (IAP) and whether they meant it (CSRF) before anything,
security headers on every answer, the page and its script, and the live event stream.

Plain HTTP: TLS ends at Google's load balancer, and IAP stands in front of it. `/healthz` and
`/readyz` answer without an identity (the kubelet and the load balancer's health check call them);
everything else, the page itself included, needs a verified IAP assertion. The JSON API is
`console.api`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from kubernetes import client

from jitaccess.console.api import add_routes
from jitaccess.console.backend_services import resolve_audience
from jitaccess.console.csrf import CsrfGuard, foreign_read
from jitaccess.console.iap import (
    GOOGLE_KEYS,
    IapKeys,
    IapVerifier,
    KeysUnavailable,
    Person,
    Unauthenticated,
    sent_assertion,
)
from jitaccess.console.kube import Kube
from jitaccess.console.mirror import Mirror
from jitaccess.console.replies import PERSON, error, invalid_as_400

STATIC = Path(__file__).parent / "static"
PAGES = ("/", "/grants", "/requests", "/approvals", "/requests/{namespace}/{name}")
OPEN = frozenset({"/healthz", "/readyz", "/favicon.ico"})
# No inline script or style, nothing from elsewhere, never in a frame.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}
STREAM_S = 240.0  # an event stream ends after this (or when the assertion expires); the browser reopens it
KEEPALIVE_S = 15.0
# Open event streams one person may hold on one replica (a page holds one; a stream whose page went
# is noticed only at its next keepalive): one more ends their oldest, so that nobody can hold every
# connection of a replica, and a person who reloads often still gets a live page.
MAX_STREAMS_PER_PERSON = 10
log = logging.getLogger(__name__)


@dataclass
class ConsoleSettings:
    csrf_key: bytes
    audience: str | None = None  # /projects/NUMBER/global/backendServices/ID
    # Or found at start: (project, project number, NAMESPACE/SERVICE, compute endpoint).
    backend_service_of: tuple[str, str, str, str] | None = None
    keys_url: str = GOOGLE_KEYS
    requests_namespace: str = "jitaccess-requests"
    namespaces: tuple[str, ...] = ()  # watched (default: all)
    host: str = "0.0.0.0"
    port: int = 8080


@dataclass
class Console:
    """One console process: its mirror of the cluster, its verifiers and its server."""

    settings: ConsoleSettings
    configuration: client.Configuration
    clock: Callable[[], float] = time.time
    kube: Kube = field(init=False)
    mirror: Mirror = field(init=False)
    verifier: IapVerifier = field(init=False)
    csrf: CsrfGuard = field(init=False)
    port: int = field(init=False, default=0)
    closing: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _runner: web.AppRunner | None = field(init=False, default=None)
    # Each person's open event streams, oldest first (set one to end it).
    _streams: dict[str, list[asyncio.Event]] = field(init=False, default_factory=dict)
    # Finding the IAP audience at start (--iap-backend-service-of); fails only when it is ambiguous.
    resolving: asyncio.Task[None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.kube = Kube(self.configuration)
        self.mirror = Mirror(self.kube, self.settings.namespaces)
        self.verifier = IapVerifier(self.settings.audience, IapKeys(self.settings.keys_url), clock=self.clock)
        self.csrf = CsrfGuard(self.settings.csrf_key, clock=self.clock)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    @property
    def ready(self) -> bool:
        return self.verifier.audience is not None and self.mirror.synced

    async def start(self) -> int:
        self.mirror.start()
        if self.settings.audience is None and self.settings.backend_service_of is not None:
            self.resolving = asyncio.create_task(self._resolve())
        app = web.Application(middlewares=[self._authenticate, invalid_as_400])
        app.on_response_prepare.append(_secure)
        add_routes(app, self)
        for page in PAGES:
            app.router.add_get(page, _page)
        app.router.add_get("/static/{file}", _static)
        app.router.add_get("/healthz", _healthz)
        app.router.add_get("/favicon.ico", _no_icon)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/api/stream", self._stream)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        log.info("console listening on %s:%d", self.settings.host, self.port)
        return self.port

    async def _resolve(self) -> None:
        assert self.settings.backend_service_of is not None
        project, number, service, endpoint = self.settings.backend_service_of
        self.verifier.audience = await resolve_audience(project, number, service, endpoint)

    async def stop(self) -> None:
        self.closing.set()
        if self.resolving is not None and not self.resolving.done():
            self.resolving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.resolving
        if self._runner is not None:
            await self._runner.cleanup()
        await self.mirror.stop()
        await self.kube.close()
        await self.verifier.keys.close()

    # -- who is asking -----------------------------------------------------------------------

    @web.middleware
    async def _authenticate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path in OPEN:
            return await handler(request)
        try:
            person = await self.verifier.verify(sent_assertion(request.headers))
        except Unauthenticated as why:
            return error(401, str(why))
        except KeysUnavailable as why:
            return error(503, str(why))
        if request.method not in ("GET", "HEAD"):
            if (problem := self.csrf.problem(request.headers, person.member)) is not None:
                return error(403, f"refused (cross-site request forgery protection): {problem}")
        elif request.path.startswith("/api/") and (problem := foreign_read(request.headers)) is not None:
            return error(403, f"refused: {problem}")
        if not self.mirror.synced:
            return error(503, "the console is still reading the cluster; try again in a moment")
        request[PERSON] = person
        return await handler(request)

    async def _readyz(self, _: web.Request) -> web.Response:
        if self.ready:
            return web.Response(text="ok")
        return web.Response(status=503, text="not ready: reading the cluster or finding the IAP audience")

    # -- live updates ------------------------------------------------------------------------

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: `change` whenever anything the console mirrors changed (the page
        then asks again for what it shows). It carries no data of anyone's, so it needs no filter."""
        person: Person = request[PERSON]
        mine = self._streams.setdefault(person.member, [])
        if len(mine) >= MAX_STREAMS_PER_PERSON:
            mine.pop(0).set()  # the oldest ends; a page still listening there opens a new one
        stop = asyncio.Event()
        mine.append(stop)
        try:
            return await self._follow(request, person, stop)
        finally:
            if stop in mine:
                mine.remove(stop)
            if not mine and self._streams.get(person.member) is mine:
                del self._streams[person.member]

    async def _follow(self, request: web.Request, person: Person, stop: asyncio.Event) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        await response.write(b"retry: 2000\nevent: ready\ndata: {}\n\n")
        waiter = self.mirror.subscribe()
        ends = min(person.expires, self.clock() + STREAM_S)
        try:
            while not self.closing.is_set() and self.clock() < ends:
                wait = min(KEEPALIVE_S, max(0.0, ends - self.clock()))
                woke = await _either(waiter.wait(), self.closing.wait(), stop.wait(), timeout=wait)
                if stop.is_set():
                    break
                if woke and waiter.is_set():
                    await asyncio.sleep(0.1)  # changes that come together are told once
                    waiter.clear()
                    await response.write(f"event: change\ndata: {self.mirror.revision}\n\n".encode())
                else:
                    await response.write(b": keepalive\n\n")
        except ConnectionError:
            pass  # the page went
        finally:
            self.mirror.unsubscribe(waiter)
        return response


async def _either(*waits: Awaitable[Any], timeout: float) -> bool:
    """Whether any of `waits` finished within `timeout` (the others are cancelled)."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    done, pending = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return bool(done)


async def _secure(_: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="ok")


async def _no_icon(_: web.Request) -> web.Response:
    """Browsers ask for one; there is none (and nothing to authenticate for)."""
    return web.Response(status=204)


async def _page(_: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Content-Type": "text/html; charset=utf-8"})


STATIC_TYPES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


async def _static(request: web.Request) -> web.FileResponse:
    name = request.match_info["file"]
    if name not in STATIC_TYPES:
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC / name, headers={"Content-Type": STATIC_TYPES[name]})
