"""What the console shows, as the API holds it: grants, requests, approvals and the requests'
Events, kept current by watches (list once, then follow; list again only when the API server says
the version is too old). Pages are answered from here, so a hundred open pages cost the API
server nothing more than one console does; every change wakes the pages' event streams.

It holds nothing of its own: killing the console loses nothing, and each replica mirrors the same.
It is never evidence for anything: admission judges every write afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from jitaccess.api.bodies import metadata_of
from jitaccess.console.kube import Kube, KubeError, collection

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (namespace, name); namespace "" for the cluster-scoped grants


@dataclass(frozen=True)
class Kind:
    name: str
    plural: str
    group: str
    namespaced: bool = True
    selector: str = ""  # fieldSelector


GRANTS = Kind("grants", "eligiblegrants", "/apis/jitaccess.dev/v1alpha1", namespaced=False)
REQUESTS = Kind("requests", "activationrequests", "/apis/jitaccess.dev/v1alpha1")
APPROVALS = Kind("approvals", "activationapprovals", "/apis/jitaccess.dev/v1alpha1")
EVENTS = Kind("events", "events", "/api/v1", selector="involvedObject.kind=ActivationRequest")
KINDS = (GRANTS, REQUESTS, APPROVALS, EVENTS)


def key_of(body: Mapping[str, Any]) -> Key:
    metadata = metadata_of(body)
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


class Mirror:
    def __init__(self, kube: Kube, namespaces: tuple[str, ...] = ()) -> None:
        self.kube = kube
        self.namespaces = namespaces  # () for all
        self.objects: dict[str, dict[Key, dict[str, Any]]] = {kind.name: {} for kind in KINDS}
        self.revision = 0
        self._synced: dict[tuple[str, str | None], asyncio.Event] = {}
        self._waiters: set[asyncio.Event] = set()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def synced(self) -> bool:
        return bool(self._synced) and all(event.is_set() for event in self._synced.values())

    def start(self) -> None:
        scopes: tuple[str | None, ...] = self.namespaces or (None,)
        for kind in KINDS:
            for scope in scopes if kind.namespaced else (None,):
                self._synced[kind.name, scope] = asyncio.Event()
                self._tasks.append(
                    asyncio.create_task(self._follow(kind, scope), name=f"watch {kind.plural}")
                )

    async def wait_synced(self) -> None:
        await asyncio.gather(*(event.wait() for event in self._synced.values()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # -- what changed ------------------------------------------------------------------------

    def _changed(self) -> None:
        self.revision += 1
        for waiter in self._waiters:
            waiter.set()

    def subscribe(self) -> asyncio.Event:
        """An event set at every change from now on (the subscriber clears it)."""
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        return waiter

    def unsubscribe(self, waiter: asyncio.Event) -> None:
        self._waiters.discard(waiter)

    def remember(self, kind: Kind, body: Mapping[str, Any]) -> None:
        """An object this console just wrote, until the watch brings it (never over what it brought)."""
        self.objects[kind.name].setdefault(key_of(body), dict(body))
        self._changed()

    # -- following the API -------------------------------------------------------------------

    async def _follow(self, kind: Kind, scope: str | None) -> None:
        path = collection(kind.plural, scope, kind.group)
        params = {"fieldSelector": kind.selector} if kind.selector else {}
        pause = 0.5
        while True:
            try:
                version = await self._list(kind, scope, path, params)
                pause = 0.5
                while version is not None:
                    version = await self._watch(kind, path, params, version)
            except (KubeError, aiohttp.ClientError, TimeoutError, OSError) as error:
                log.warning("watching %s: %s; listing again in %.1fs", kind.plural, error, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)

    async def _list(self, kind: Kind, scope: str | None, path: str, params: Mapping[str, str]) -> str:
        listed = await self.kube.list(path, params)
        store = self.objects[kind.name]
        fresh = {key_of(item): item for item in listed.get("items") or () if isinstance(item, dict)}
        for key in [key for key in store if scope is None or key[0] == scope]:
            if key not in fresh:
                del store[key]
        store.update(fresh)
        self._synced[kind.name, scope].set()
        self._changed()
        return str(metadata_of(listed).get("resourceVersion") or "")

    async def _watch(self, kind: Kind, path: str, params: Mapping[str, str], version: str) -> str | None:
        """Follow from `version` until the stream ends; the version to go on from, or None to list
        again (the version is too old)."""
        store = self.objects[kind.name]
        async for event in self.kube.watch(path, version, params):
            kind_of, body = event.get("type"), event.get("object")
            if not isinstance(body, dict):
                continue
            if kind_of == "ERROR":
                return None  # 410 Gone, usually: list again
            version = str(metadata_of(body).get("resourceVersion") or version)
            if kind_of == "BOOKMARK":
                continue
            if kind_of == "DELETED":
                store.pop(key_of(body), None)
            else:
                store[key_of(body)] = body
            self._changed()
        return version
