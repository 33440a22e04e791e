"""Apply a set of binding changes to one resource's policy: all of them, or none.

Read (v3) → change in memory → write with the etag. A stale etag (409) redoes the whole cycle
with jittered backoff; quota (429) and server errors (5xx, connection failures) back off and
retry; other errors (400, 403, 404) are permanent and reported with Google's message.
`PolicyWriter` does one such cycle per call; `batcher.BatchingWriter` folds the changes of many
callers into one cycle. A change that
would alter nothing is not written (a restart with nothing to do causes no IAM writes).

A change says, for one request: "on this resource, the bindings carrying this request's
reference are exactly these" (none, to remove them). So a retry after a write that landed
unnoticed replaces it instead of adding a second one, and nothing without the request's exact
reference (its keyed MAC included) is ever touched.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import requests
from google.api_core import exceptions as google_errors
from google.iam.v1 import policy_pb2
from google.type import expr_pb2

from jitaccess.api.bindings import Binding, Reference, parse_reference
from jitaccess.iam.store import PolicyStore
from jitaccess.stats import LATENCY_BUCKETS, Distribution

log = logging.getLogger(__name__)

# Worth another read-modify-write: a stale etag (409) and quota (429), which Google answers as
# 4xx, and the server or the network failing. Every other 4xx is a refusal that will not change.
RETRIED_CLIENT_ERRORS = (google_errors.Conflict, google_errors.TooManyRequests)
UNAVAILABLE = (google_errors.ServerError, requests.exceptions.ConnectionError, requests.exceptions.Timeout)
REMEMBERED_POLICIES = 256  # policies kept for their etag (each up to Google's 64 KB cap)
METHODS = ("getIamPolicy", "setIamPolicy")
T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    ok: bool
    permanent: bool = False
    message: str = ""
    wrote: bool = False
    code: int = 0  # the HTTP status of a permanent failure


@dataclass
class RetryPolicy:
    attempts: int = 8
    conflict_base_s: float = 0.05
    quota_base_s: float = 2.0
    server_base_s: float = 0.2
    cap_s: float = 30.0


class IamWriter(Protocol):
    """What the reconciler needs of a writer: apply one request's changes, learn the outcome."""

    @property
    def stats(self) -> dict[str, int]: ...

    @property
    def outcomes(self) -> Counter[tuple[str, str]]:
        """IAM calls by (method, outcome): ok, conflict, quota, unavailable, refused."""
        ...

    @property
    def batch_sizes(self) -> Distribution | None:
        """Changes per read-modify-write, where writes are batched."""
        ...

    @property
    def durations(self) -> dict[str, Distribution]:
        """Seconds each IAM call took, by method, whatever its outcome."""
        ...

    async def apply(
        self, resource: str, owners: Sequence[Reference], hold: Sequence[Binding] = ()
    ) -> Outcome: ...


@dataclass(frozen=True)
class Change:
    """On one resource, the bindings carrying one of `owners`' references become exactly `hold`:
    applied whole or not at all."""

    owners: tuple[Reference, ...]
    hold: tuple[Binding, ...] = ()

    def check_ours(self) -> None:
        if not self.owners or not all(isinstance(owner, Reference) for owner in self.owners):
            raise ValueError("a change names whose bindings it replaces (the references of one request)")
        for binding in self.hold:
            if parse_reference(binding.condition()) not in self.owners:
                raise ValueError(f"refusing to write a binding without its owner's reference: {binding}")


class ReadModifyWrite:
    """The retrying read-modify-write cycle both writers are built on.

    `before_cycle` runs before each read (the batching writer takes a rate-limit token there);
    `on_quota` is told of every 429 with the backoff chosen, so a shared limiter can pause too.

    With `reuse_written`, the policy Google returned from our last setIamPolicy (bindings and new
    etag) stands in for the next read of that resource: if anyone else wrote since, the etag is
    stale, Google answers 409 and the retry reads afresh, so nothing foreign is ever overwritten.
    That halves the calls, and the time, of every cycle on a resource the operator keeps writing.
    A change that looks like a no-op against the remembered policy is checked on a fresh read:
    another tool may have added or removed the binding since, and no write means no 409.
    """

    def __init__(
        self,
        store: PolicyStore,
        retry: RetryPolicy | None = None,
        *,
        before_cycle: Callable[[], Awaitable[None]] | None = None,
        on_quota: Callable[[float], None] | None = None,
        reuse_written: bool = False,
    ) -> None:
        self.store = store
        self.retry = retry or RetryPolicy()
        self.before_cycle = before_cycle
        self.on_quota = on_quota
        self.reuse_written = reuse_written
        self._written: dict[str, policy_pb2.Policy] = {}
        self.stats = {"get": 0, "set": 0, "conflicts": 0, "quota": 0}
        # (method, outcome): ok, conflict (409), quota (429), unavailable (5xx, network), refused (4xx)
        self.outcomes: Counter[tuple[str, str]] = Counter()
        # Seconds per call by method, failures too, as the event loop waits for it (a call queued
        # for a worker thread counts its wait).
        self.durations = {method: Distribution(LATENCY_BUCKETS) for method in METHODS}

    async def run(self, resource: str, changes: Sequence[Change], *, token_held: bool = False) -> Outcome:
        """Apply every change in order in one write; idempotent; a no-op is not written.

        `token_held`: the caller already passed `before_cycle` for the first attempt.
        """
        last_error = ""
        for attempt in range(self.retry.attempts):
            method = "getIamPolicy"  # the call a failure below belongs to
            try:
                if self.before_cycle is not None and not (token_held and attempt == 0):
                    await self.before_cycle()
                policy, remembered = await self._read(resource)
                changed = _apply_all(policy, changes)
                if not changed and remembered:
                    # Our own last write says there is nothing to do, but someone may have
                    # written since without us writing again: only a fresh read can tell.
                    policy = await self._get(resource)
                    changed = _apply_all(policy, changes)
                if not changed:
                    self._remember(resource, policy)  # unchanged, so its etag is still current
                    return Outcome(ok=True)
                self.stats["set"] += 1
                method = "setIamPolicy"
                self._remember(resource, await self._timed(method, self.store.set, resource, policy))
                self.outcomes["setIamPolicy", "ok"] += 1
                return Outcome(ok=True, wrote=True)
            except google_errors.ClientError as error:
                self._written.pop(resource, None)
                self.outcomes[method, _outcome(error)] += 1
                if not isinstance(error, RETRIED_CLIENT_ERRORS):
                    return Outcome(ok=False, permanent=True, message=_message(error), code=error.code or 0)
                last_error = _message(error)
                await self._back_off(error, attempt)
            except UNAVAILABLE as error:
                self._written.pop(resource, None)
                self.outcomes[method, "unavailable"] += 1
                last_error = _message(error)
                log.info("IAM call on %s failed (attempt %d): %s", resource, attempt + 1, last_error)
                await self._back_off(error, attempt)
        return Outcome(
            ok=False, permanent=False, message=f"gave up after {self.retry.attempts} attempts: {last_error}"
        )

    def _remember(self, resource: str, policy: policy_pb2.Policy) -> None:
        if not self.reuse_written or not policy.etag:
            return
        self._written[resource] = policy
        while len(self._written) > REMEMBERED_POLICIES:  # the least recently used go first
            del self._written[next(iter(self._written))]

    async def _read(self, resource: str) -> tuple[policy_pb2.Policy, bool]:
        """The policy to change, and whether it is our remembered last write (not a fresh read)."""
        written = self._written.pop(resource, None)
        if written is not None:
            return written, True  # popped: if this cycle fails, the next one reads
        return await self._get(resource), False

    async def _get(self, resource: str) -> policy_pb2.Policy:
        self.stats["get"] += 1
        policy = await self._timed("getIamPolicy", self.store.get, resource)
        self.outcomes["getIamPolicy", "ok"] += 1
        return policy

    async def _timed(self, method: str, call: Callable[..., T], *args: object) -> T:
        """`call` in a worker thread (the client is synchronous), its time kept under `method`."""
        started = time.monotonic()
        try:
            return await asyncio.to_thread(call, *args)
        finally:
            self.durations[method].observe(time.monotonic() - started)

    async def _back_off(self, error: Exception, attempt: int) -> None:
        if isinstance(error, google_errors.Conflict):
            self.stats["conflicts"] += 1
            base = self.retry.conflict_base_s
        elif isinstance(error, google_errors.TooManyRequests):
            self.stats["quota"] += 1
            base = self.retry.quota_base_s
        else:
            base = self.retry.server_base_s
        delay = min(self.retry.cap_s, base * 2**attempt) * random.uniform(0.5, 1.0)
        if isinstance(error, google_errors.TooManyRequests) and self.on_quota is not None:
            self.on_quota(delay)
        if attempt + 1 < self.retry.attempts:  # no point waiting after the last attempt
            await asyncio.sleep(delay)


class PolicyWriter:
    """One read-modify-write per call, as Google's JIT Access does per activation.

    `serialise` (the default) queues writes of the same resource behind each other so the
    operator never races itself; without it concurrent calls race on the etag and retry on 409,
    which is the `--iam-write-mode=per-activation` baseline the benchmarks compare against.
    """

    def __init__(
        self, store: PolicyStore, retry: RetryPolicy | None = None, *, serialise: bool = True
    ) -> None:
        self.cycle = ReadModifyWrite(store, retry)
        self.serialise = serialise
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def stats(self) -> dict[str, int]:
        return self.cycle.stats

    @property
    def outcomes(self) -> Counter[tuple[str, str]]:
        return self.cycle.outcomes

    @property
    def batch_sizes(self) -> Distribution | None:
        return None  # one change per write

    @property
    def durations(self) -> dict[str, Distribution]:
        return self.cycle.durations

    async def apply(
        self, resource: str, owners: Sequence[Reference], hold: Sequence[Binding] = ()
    ) -> Outcome:
        """Make `owners`' bindings on `resource` exactly `hold`, in one write; idempotent."""
        change = Change(tuple(owners), tuple(hold))
        change.check_ours()
        if not self.serialise:
            return await self.cycle.run(resource, [change])
        async with self._locks.setdefault(resource, asyncio.Lock()):
            return await self.cycle.run(resource, [change])


def _outcome(error: Exception) -> str:
    if isinstance(error, google_errors.Conflict):
        return "conflict"
    if isinstance(error, google_errors.TooManyRequests):
        return "quota"
    return "refused"


def _apply_all(policy: policy_pb2.Policy, changes: Sequence[Change]) -> bool:
    index = _Index(policy)
    changed = False
    for change in changes:
        changed = index.apply(change) or changed
    index.drop_removed()
    return changed


_Shape = tuple[str, str, str, str, frozenset[str]]


class _Index:
    """The policy's bindings by the reference they carry, so a batch of N changes costs
    O(N + bindings): each description is parsed once per cycle, not once per change. Bindings
    are kept by position (protobuf hands out a new wrapper object on every access)."""

    def __init__(self, policy: policy_pb2.Policy) -> None:
        self.policy = policy
        self.by_owner: dict[Reference, list[int]] = {}
        for position, existing in enumerate(policy.bindings):
            condition = existing.condition
            owner = parse_reference({"title": condition.title, "description": condition.description})
            if owner is not None:
                self.by_owner.setdefault(owner, []).append(position)
        self.removed: set[int] = set()

    def apply(self, change: Change) -> bool:
        current = [p for owner in dict.fromkeys(change.owners) for p in self.by_owner.get(owner, ())]
        shapes = [_shape(self.policy.bindings[p]) for p in current]
        wanted = {_wanted(b) for b in change.hold}
        if set(shapes) == wanted and len(shapes) == len(wanted):
            return False
        self.removed.update(current)
        for owner in change.owners:
            self.by_owner.pop(owner, None)
        for binding in dict.fromkeys(change.hold):
            self.policy.bindings.append(
                policy_pb2.Binding(
                    role=binding.role,
                    members=[binding.member],
                    condition=expr_pb2.Expr(
                        title=binding.title, description=binding.description, expression=binding.expression
                    ),
                )
            )
            owner = parse_reference(binding.condition())
            assert owner is not None  # Change.check_ours
            self.by_owner.setdefault(owner, []).append(len(self.policy.bindings) - 1)
        return True

    def drop_removed(self) -> None:
        if not self.removed:
            return
        kept = [
            binding for position, binding in enumerate(self.policy.bindings) if position not in self.removed
        ]
        del self.policy.bindings[:]
        self.policy.bindings.extend(kept)


def _shape(binding: policy_pb2.Binding) -> _Shape:
    condition = binding.condition
    return (
        binding.role,
        condition.title,
        condition.description,
        condition.expression,
        frozenset(binding.members),
    )


def _wanted(binding: Binding) -> _Shape:
    return (binding.role, binding.title, binding.description, binding.expression, frozenset({binding.member}))


def _message(error: Exception) -> str:
    """Google's own words for the error (without the request URL the REST client prefixes)."""
    if isinstance(error, google_errors.GoogleAPICallError):
        response = getattr(error, "response", None)
        try:
            text = response.json()["error"]["message"] if response is not None else error.message
        except (ValueError, KeyError, TypeError):
            text = error.message
        return f"{error.code} {text}" if error.code else str(text)
    return f"{type(error).__name__}: {error}"
