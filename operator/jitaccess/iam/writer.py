"""Apply a set of binding changes to one resource's policy: all of them, or none.

Read (v3) → change in memory → write with the etag. A stale etag (409) redoes the whole cycle
with jittered backoff; quota (429) and server errors (5xx, connection failures) back off and
retry; other errors (400, 403, 404) are permanent and reported with Google's message. Writes
of the same resource are serialised here so the operator never races itself. A change that
would alter nothing is not written (a restart with nothing to do causes no IAM writes).
Removal only ever touches bindings whose condition carries our reference (bindings.reference_of).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass

import requests
from google.api_core import exceptions as google_errors
from google.iam.v1 import policy_pb2
from google.type import expr_pb2

from jitaccess.iam.bindings import Binding, reference_of
from jitaccess.iam.store import PolicyStore

log = logging.getLogger(__name__)

TRANSIENT = (
    google_errors.Conflict,
    google_errors.TooManyRequests,
    google_errors.ServerError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
)
PERMANENT = (google_errors.ClientError,)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    permanent: bool = False
    message: str = ""
    wrote: bool = False


@dataclass
class RetryPolicy:
    attempts: int = 8
    conflict_base_s: float = 0.05
    quota_base_s: float = 2.0
    server_base_s: float = 0.2
    cap_s: float = 30.0


class PolicyWriter:
    def __init__(self, store: PolicyStore, retry: RetryPolicy | None = None) -> None:
        self.store = store
        self.retry = retry or RetryPolicy()
        self._locks: dict[str, asyncio.Lock] = {}
        self.stats = {"get": 0, "set": 0, "conflicts": 0}

    async def apply(
        self, resource: str, add: Sequence[Binding] = (), remove: Sequence[Binding] = ()
    ) -> Outcome:
        """Add `add` and remove `remove` on `resource` in one write; idempotent."""
        for binding in remove:
            if reference_of(binding.condition()) is None:
                raise ValueError(f"refusing to remove a binding that is not ours: {binding}")
        lock = self._locks.setdefault(resource, asyncio.Lock())
        async with lock:
            return await self._apply_locked(resource, add, remove)

    async def _apply_locked(
        self, resource: str, add: Sequence[Binding], remove: Sequence[Binding]
    ) -> Outcome:
        last_error = ""
        for attempt in range(self.retry.attempts):
            try:
                self.stats["get"] += 1
                policy = await asyncio.to_thread(self.store.get, resource)
                if not change_policy(policy, add, remove):
                    return Outcome(ok=True)
                self.stats["set"] += 1
                await asyncio.to_thread(self.store.set, resource, policy)
                return Outcome(ok=True, wrote=True)
            except PERMANENT as error:
                if isinstance(error, google_errors.Conflict | google_errors.TooManyRequests):
                    last_error = _message(error)
                    if isinstance(error, google_errors.Conflict):
                        self.stats["conflicts"] += 1
                    await asyncio.sleep(self._backoff(error, attempt))
                    continue
                return Outcome(ok=False, permanent=True, message=_message(error))
            except TRANSIENT as error:
                last_error = _message(error)
                log.info("IAM call on %s failed (attempt %d): %s", resource, attempt + 1, last_error)
                await asyncio.sleep(self._backoff(error, attempt))
        return Outcome(
            ok=False, permanent=False, message=f"gave up after {self.retry.attempts} attempts: {last_error}"
        )

    def _backoff(self, error: Exception, attempt: int) -> float:
        if isinstance(error, google_errors.Conflict):
            base = self.retry.conflict_base_s
        elif isinstance(error, google_errors.TooManyRequests):
            base = self.retry.quota_base_s
        else:
            base = self.retry.server_base_s
        return min(self.retry.cap_s, base * 2**attempt) * random.uniform(0.5, 1.0)


def change_policy(policy: policy_pb2.Policy, add: Sequence[Binding], remove: Sequence[Binding]) -> bool:
    """Apply the changes to `policy` in place; True if anything changed."""
    changed = False
    for binding in remove:
        for existing in list(policy.bindings):
            if _same(existing, binding) and binding.member in existing.members:
                existing.members.remove(binding.member)
                if not existing.members:
                    policy.bindings.remove(existing)
                changed = True
    for binding in add:
        if any(
            _same(existing, binding) and binding.member in existing.members for existing in policy.bindings
        ):
            continue
        policy.bindings.append(
            policy_pb2.Binding(
                role=binding.role,
                members=[binding.member],
                condition=expr_pb2.Expr(
                    title=binding.title, description=binding.description, expression=binding.expression
                ),
            )
        )
        changed = True
    return changed


def _same(existing: policy_pb2.Binding, binding: Binding) -> bool:
    condition = existing.condition
    return (
        existing.role == binding.role
        and condition.title == binding.title
        and condition.description == binding.description
        and condition.expression == binding.expression
    )


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
