"""When to reconcile what: a due-time queue driven by the injectable clock.

Every reconcile says when it next needs to run (expiry, scheduled start, approval timeout,
retry). One loop wakes for the earliest due key, never sleeping longer than a tick so that a
test clock that jumps is noticed at once, and runs due keys with bounded concurrency.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Hashable
from datetime import datetime

from jitaccess.clock import Clock

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(
        self,
        work: Callable[[Hashable], Awaitable[None]],
        clock: Clock,
        *,
        tick_s: float = 0.5,
        concurrency: int = 32,
    ) -> None:
        self._work = work
        self._clock = clock
        self._tick_s = tick_s
        self._heap: list[tuple[datetime, int, Hashable]] = []
        self._due: dict[Hashable, datetime] = {}
        self._order = itertools.count()
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._running: set[asyncio.Task[None]] = set()
        self.paused = False

    def pause(self) -> None:
        """A standby replica: forget what is due and take nothing new (the leader does the work;
        whoever becomes the leader schedules everything it knows afresh)."""
        self.paused = True
        self._heap.clear()
        self._due.clear()

    def resume(self) -> None:
        self.paused = False

    def schedule(self, key: Hashable, when: datetime | None = None) -> None:
        """Run `key` at `when` (now if None); an earlier time replaces a later one."""
        if self.paused:
            return
        when = when or self._clock.now()
        current = self._due.get(key)
        if current is not None and current <= when:
            return
        self._due[key] = when
        heapq.heappush(self._heap, (when, next(self._order), key))
        self._wakeup.set()

    def due(self, key: Hashable) -> datetime | None:
        """When `key` is next to run; None when it is not scheduled."""
        return self._due.get(key)

    def cancel(self, key: Hashable) -> None:
        self._due.pop(key, None)

    async def run(self) -> None:
        """Run due keys until cancelled; cancelling also cancels the reconciles in flight (a
        replica that lost the leadership must stop acting at once)."""
        try:
            await self._loop()
        finally:
            for task in list(self._running):
                task.cancel()

    async def _loop(self) -> None:
        while not self.paused:
            now = self._clock.now()
            while self._heap and self._heap[0][0] <= now:
                when, _, key = heapq.heappop(self._heap)
                if self._due.get(key) != when:
                    continue  # superseded by an earlier schedule, or cancelled
                del self._due[key]
                await self._slots.acquire()
                if self.paused:  # stood down while waiting for a slot
                    self._slots.release()
                    return
                task = asyncio.create_task(self._run_one(key))
                self._running.add(task)
                task.add_done_callback(self._finished)
            delay = self._tick_s
            if self._heap:
                delay = max(0.0, min(delay, (self._heap[0][0] - now).total_seconds()))
            self._wakeup.clear()
            # asyncio.timeout, not wait_for: in Python 3.11, wait_for swallows a cancellation that
            # arrives as the wakeup does, and a replica that lost the Lease would go on acting.
            try:
                async with asyncio.timeout(delay):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    async def _run_one(self, key: Hashable) -> None:
        try:
            await self._work(key)
        except Exception:
            log.exception("reconciling %s failed", key)

    def _finished(self, task: asyncio.Task[None]) -> None:
        # Here, not in _run_one: a task cancelled before it started never runs its finally.
        self._running.discard(task)
        self._slots.release()

    @property
    def pending(self) -> int:
        return len(self._due)

    @property
    def busy(self) -> int:
        """Keys due now or being worked on: 0 when everything known has been reconciled."""
        now = self._clock.now()
        return len(self._running) + sum(1 for when in self._due.values() if when <= now)
