"""Watch streams as kube-apiserver serves them: every change of a kind gets the next
resourceVersion and goes to a bounded log; a watch from resourceVersion N replays what came after
N, then follows live changes; a watch without one (or from "0") starts with an ADDED event for each
object that exists; a version older than the log answers 410 Gone, as etcd compaction does."""

from __future__ import annotations

import asyncio
import collections
import copy
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from typing import Any


class TooOld(Exception):
    """The version asked for has left the log (kube-apiserver: 410 Gone, "too old resource version")."""


@dataclass(frozen=True)
class Change:
    version: int
    type: str  # ADDED | MODIFIED | DELETED
    object: dict[str, Any]


class ChangeLog:
    def __init__(self, keep: int = 20_000) -> None:
        self._keep = keep
        self._log: dict[Hashable, collections.deque[Change]] = {}
        self._listeners: dict[Hashable, set[asyncio.Queue[Change]]] = {}
        self._compacted: dict[Hashable, int] = {}  # the newest version no longer in the log

    def publish(self, kind: Hashable, type_: str, obj: dict[str, Any]) -> None:
        version = int(str((obj.get("metadata") or {}).get("resourceVersion") or 0) or 0)
        change = Change(version, type_, copy.deepcopy(obj))
        log = self._log.setdefault(kind, collections.deque(maxlen=self._keep))
        if len(log) == log.maxlen:
            self._compacted[kind] = log[0].version
        log.append(change)
        for queue in self._listeners.get(kind, ()):
            queue.put_nowait(change)

    async def follow(
        self,
        kind: Hashable,
        since: int | None,
        existing: Callable[[], list[dict[str, Any]]],
        mark_initial_end: bool = False,
    ) -> AsyncIterator[Change]:
        """The changes of `kind` after version `since`, or (None) the objects that exist now as
        ADDED, then every change as it happens, until the caller stops iterating. With
        `mark_initial_end`, a BOOKMARK change ends the ADDED ones, as
        kube-apiserver's watch-list (`sendInitialEvents=true`) does."""
        queue: asyncio.Queue[Change] = asyncio.Queue()
        self._listeners.setdefault(kind, set()).add(queue)
        try:
            seen = 0
            for change in self._starting(kind, since, existing):
                seen = max(seen, change.version)
                yield change
            if mark_initial_end:
                yield Change(seen, "BOOKMARK", {})
            while True:
                change = await queue.get()
                if change.version > seen or change.version == 0:
                    yield change
        finally:
            self._listeners[kind].discard(queue)

    def _starting(
        self, kind: Hashable, since: int | None, existing: Callable[[], list[dict[str, Any]]]
    ) -> list[Change]:
        if since is None:
            objects = existing()
            return [
                Change(int(str(obj["metadata"].get("resourceVersion") or 0) or 0), "ADDED", obj)
                for obj in sorted(objects, key=lambda o: int(o["metadata"].get("resourceVersion") or 0))
            ]
        compacted = self._compacted.get(kind, 0)
        if since < compacted:
            raise TooOld(f"too old resource version: {since} ({compacted})")
        return [change for change in self._log.get(kind, ()) if change.version > since]
