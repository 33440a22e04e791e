"""Coalesce the IAM changes of many requests into one read-modify-write per resource.

Every write of a policy races every other write of it, and Google allows about 10 writes a
second for the whole operator. So changes for the same resource that arrive while a write is
in flight (or within `window_s` of the first) wait and go together in the next cycle: 500
activations on one project during an incident cost a handful of writes, not 500 racing ones.

Each caller still learns its own outcome. A batch Google refuses as invalid (400) is split in
halves and retried until the offending change stands alone, so one bad binding fails only its
own request, never its neighbours'. Other permanent errors (403, 404) concern the resource and
fail the whole batch. Each change is applied whole or not at all; nothing is half-granted.

Resources are independent: each has its own queue and worker, and only the shared token bucket
(the quota is per operator, not per resource) links them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from jitaccess.api.bindings import Binding, Reference
from jitaccess.iam.ratelimit import TokenBucket
from jitaccess.iam.store import PolicyStore
from jitaccess.iam.writer import Change, Outcome, ReadModifyWrite, RetryPolicy
from jitaccess.stats import BATCH_BUCKETS, Distribution

log = logging.getLogger(__name__)
INVALID_ARGUMENT = 400


@dataclass
class _Pending:
    change: Change
    done: asyncio.Future[Outcome]


@dataclass
class _Queue:
    waiting: list[_Pending] = field(default_factory=list)
    worker: asyncio.Task[None] | None = None


class BatchingWriter:
    def __init__(
        self,
        store: PolicyStore,
        retry: RetryPolicy | None = None,
        *,
        bucket: TokenBucket | None = None,
        window_s: float = 0.02,
        max_batch: int = 500,
    ) -> None:
        self.bucket = bucket or TokenBucket(8.0)
        self.cycle = ReadModifyWrite(
            store, retry, before_cycle=self.bucket.take, on_quota=self.bucket.pause, reuse_written=True
        )
        self.window_s = window_s
        self.max_batch = max_batch
        self._queues: dict[str, _Queue] = {}
        self.batches = 0
        self.largest_batch = 0
        self.batch_sizes = Distribution(BATCH_BUCKETS)

    @property
    def stats(self) -> dict[str, int]:
        return self.cycle.stats

    @property
    def outcomes(self) -> Counter[tuple[str, str]]:
        return self.cycle.outcomes

    @property
    def durations(self) -> dict[str, Distribution]:
        return self.cycle.durations

    def queued(self, resource: str) -> int:
        """Changes for `resource` waiting for its next cycle (not counting one in flight)."""
        queue = self._queues.get(resource)
        return len(queue.waiting) if queue is not None else 0

    async def apply(
        self, resource: str, owners: Sequence[Reference], hold: Sequence[Binding] = ()
    ) -> Outcome:
        """Make `owners`' bindings on `resource` exactly `hold`, together with whatever else is waiting."""
        change = Change(tuple(owners), tuple(hold))
        change.check_ours()
        pending = _Pending(change, asyncio.get_running_loop().create_future())
        queue = self._queues.setdefault(resource, _Queue())
        queue.waiting.append(pending)
        if queue.worker is None or queue.worker.done():
            queue.worker = asyncio.create_task(self._drain(resource, queue), name=f"iam-batch {resource}")
        # A caller that gives up (shutdown) must not cancel the batch its neighbours are in.
        return await asyncio.shield(pending.done)

    async def _drain(self, resource: str, queue: _Queue) -> None:
        try:
            while queue.waiting:
                if self.window_s > 0:
                    await asyncio.sleep(self.window_s)
                # The token first, the batch after: what arrives while we wait for our turn rides
                # along, instead of waiting a whole further turn.
                await self.bucket.take()
                batch, queue.waiting = queue.waiting[: self.max_batch], queue.waiting[self.max_batch :]
                self.batches += 1
                self.largest_batch = max(self.largest_batch, len(batch))
                self.batch_sizes.observe(len(batch))
                await self._write(resource, batch, token_held=True)
        except BaseException as error:  # cancelled at shutdown, or a bug: nobody waits forever
            for pending in queue.waiting:
                _settle(pending, Outcome(ok=False, message=f"IAM writer stopped: {error!r}"))
            queue.waiting = []
            raise
        finally:
            if self._queues.get(resource) is queue and not queue.waiting:
                del self._queues[resource]

    async def _write(self, resource: str, batch: list[_Pending], token_held: bool = False) -> None:
        try:
            outcome = await self.cycle.run(
                resource, [pending.change for pending in batch], token_held=token_held
            )
        except BaseException as error:
            for pending in batch:
                _settle(pending, Outcome(ok=False, message=f"IAM writer stopped: {error!r}"))
            raise
        if outcome.ok or not outcome.permanent or outcome.code != INVALID_ARGUMENT or len(batch) == 1:
            for pending in batch:
                _settle(pending, outcome)
            return
        log.info(
            "IAM refused a batch of %d on %s (%s); isolating the offender",
            len(batch),
            resource,
            outcome.message,
        )
        middle = len(batch) // 2
        await self._write(resource, batch[:middle])
        await self._write(resource, batch[middle:])


def _settle(pending: _Pending, outcome: Outcome) -> None:
    if not pending.done.done():
        pending.done.set_result(outcome)
