"""Sending notices once: persisted on the request, delivered per channel, never in the way.

What was decided and what was sent is kept in the request's `jitaccess.dev/notified` annotation
(only the operator may write `jitaccess.dev/` metadata), one entry per notice:

    {"activated": {"notice": {...}, "channels": {"email": {"state": "sent", "to": 1},
                                                 "slack": {"state": "queued"}}}}

A notice is recorded `queued` for every channel that wants it before anything is sent; each
channel marks it `sending` before it tries and `sent` or `failed` after. A replica that becomes
the leader sends what is `queued`, and does not resend what is `sending` (it may have gone out
before the last leader stopped): at most once, never twice. Each channel sends on its own, with
bounded concurrency and retries with backoff, so a dead SMTP server delays neither Slack nor
reconciliation, which only ever puts notices in a queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from jitaccess.api.bodies import metadata_of
from jitaccess.api.objects import Grant
from jitaccess.api.times import parse_time
from jitaccess.controller.cache import Cache, RequestKey
from jitaccess.controller.channels import Channel, Retryable, Undeliverable
from jitaccess.controller.kube import Kube
from jitaccess.policy.notices import Notice, notice_from_record, told
from jitaccess.policy.steps import RequestState, read_state

log = logging.getLogger(__name__)
LEDGER = "jitaccess.dev/notified"
QUEUED, SENDING, SENT, FAILED, IN_DOUBT, NOBODY = "queued", "sending", "sent", "failed", "in-doubt", "nobody"
RECORDED, GONE, ERROR = "recorded", "gone", "error"
PERSIST_ATTEMPTS = 3
Ledger = dict[str, dict[str, Any]]


def read_ledger(body: Mapping[str, Any]) -> Ledger:
    raw = (metadata_of(body).get("annotations") or {}).get(LEDGER)
    try:
        found = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}
    return {k: v for k, v in found.items() if isinstance(v, dict)} if isinstance(found, dict) else {}


class Outbox:
    def __init__(
        self,
        kube: Kube,
        channels: Sequence[Channel],
        cache: Cache,
        attestation_key: bytes,
        *,
        attempts: int = 5,
        backoff_s: float = 2.0,
        concurrency: int = 8,
    ) -> None:
        self.kube = kube
        self.channels = {channel.name: channel for channel in channels}
        self.cache, self.key = cache, attestation_key
        self.attempts, self.backoff_s = attempts, backoff_s
        self.outcomes: Counter[tuple[str, str, str]] = Counter()  # (channel, kind, outcome)
        self._ledgers: dict[RequestKey, Ledger] = {}
        self._locks: dict[RequestKey, asyncio.Lock] = {}
        self._slots = {name: asyncio.Semaphore(concurrency) for name in self.channels}
        self._tasks: set[asyncio.Task[None]] = set()
        self._last: dict[tuple[RequestKey, str], asyncio.Task[None]] = {}  # per request and channel
        self._known: dict[RequestKey, tuple[dict[str, Any] | None, RequestState | None, Grant | None]] = {}
        self._forgotten: set[RequestKey] = set()  # deleted, kept until their last send is done
        self._working: dict[RequestKey, int] = {}  # tasks recording or sending for each request
        self._adopted: set[RequestKey] = set()  # requests whose recorded notices this term looked at

    def submit(self, key: RequestKey, notices: Sequence[Notice]) -> None:
        """Record the notices and send them, in the background: never waits, never raises."""
        if notices and self.channels:
            self._spawn(self._record(key, notices), f"notices {key[0]}/{key[1]}", key)

    def adopt(self, key: RequestKey) -> None:
        """Once a term, on a request's first reconcile: send what an earlier leader left queued."""
        body = self.cache.requests.get(key)
        if body is not None and key not in self._adopted:
            self._adopted.add(key)
            self.resume({key: body})

    def read(self, key: RequestKey) -> tuple[dict[str, Any] | None, RequestState | None, Grant | None]:
        """A request's body, state and grant, as the operator knows them now."""
        body = self.cache.requests.get(key)
        if body is None:
            return None, None, None
        state = read_state(body, self.key)
        grant = self.cache.grants.get(state.spec.grant) if state.spec is not None else None
        return body, state, grant

    def resume(self, bodies: Mapping[RequestKey, Mapping[str, Any]]) -> None:
        """As a replica becomes the leader: send what is queued; what was being sent when the last
        leader stopped may have gone out, so it is marked in doubt, not sent again."""
        for key, body in bodies.items():
            ledger = read_ledger(body)
            doubtful = [
                (notice_key, name)
                for notice_key, entry in ledger.items()
                for name, sent in (entry.get("channels") or {}).items()
                if isinstance(sent, dict) and sent.get("state") == SENDING
            ]
            queued = [
                (notice_key, name)
                for notice_key, entry in ledger.items()
                for name, sent in (entry.get("channels") or {}).items()
                if isinstance(sent, dict) and sent.get("state") == QUEUED and name in self.channels
            ]
            if doubtful or queued:
                self._spawn(self._resume(key, doubtful, queued), f"resume notices {key[0]}/{key[1]}", key)

    async def stop(self, grace_s: float = 0.0) -> None:
        """Stop sending: after `grace_s` for what is under way, the rest is cancelled (what was
        queued stays queued for the next leader; what was being sent is in doubt)."""
        if self._tasks and grace_s > 0:
            await asyncio.wait(list(self._tasks), timeout=grace_s)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        for kept in (self._ledgers, self._last, self._known, self._forgotten, self._working, self._adopted):
            kept.clear()

    async def settled(self) -> None:
        """Until nothing is being recorded or sent (for shutdown and tests)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    # -- the ledger ---------------------------------------------------------------------------

    async def _record(self, key: RequestKey, notices: Sequence[Notice]) -> None:
        async with self._lock(key):
            ledger = self._ledger(key)
            fresh: list[tuple[Notice, str]] = []
            for notice in notices:
                if notice.key in ledger:
                    continue  # told already (a step carried out twice tells once)
                wanted = self._wanted(key, notice)
                ledger[notice.key] = {
                    "notice": notice.as_record(),
                    "channels": {name: {"state": QUEUED} for name in wanted},
                }
                fresh += [(notice, name) for name in wanted]
                if not wanted:
                    self.outcomes["none", notice.kind, NOBODY] += 1
            if await self._persist(key, ledger) == ERROR:
                return  # not recorded, so not sent: a duplicate later would be worse than this loss
        for notice, name in fresh:
            self._send_in_order(key, notice.key, name)

    def _inputs(self, key: RequestKey) -> tuple[dict[str, Any] | None, RequestState | None, Grant | None]:
        """The request as known now, or as last known (a request deleted meanwhile is still told
        of its end)."""
        found = self.read(key)
        if found[0] is not None:
            self._known[key] = found
            return found
        return self._known.get(key, found)

    def forget(self, key: RequestKey) -> None:
        """The request is gone: drop what is kept for it once nothing is being sent for it."""
        self._adopted.discard(key)
        if self._working.get(key):
            self._forgotten.add(key)
            return
        for kept in (self._known, self._ledgers, self._locks):
            kept.pop(key, None)  # type: ignore[attr-defined]
        self._forgotten.discard(key)

    def _wanted(self, key: RequestKey, notice: Notice) -> list[str]:
        _, state, grant = self._inputs(key)
        account = told(notice, state, grant) if state is not None else None
        if account is None:
            return []
        return [name for name, channel in self.channels.items() if channel.wants(account)]

    async def _resume(
        self, key: RequestKey, doubtful: list[tuple[str, str]], queued: list[tuple[str, str]]
    ) -> None:
        async with self._lock(key):
            ledger = self._ledger(key)
            for notice_key, name in doubtful:
                ledger[notice_key]["channels"][name]["state"] = IN_DOUBT
                kind = str((ledger[notice_key].get("notice") or {}).get("kind"))
                self.outcomes[name, kind, IN_DOUBT] += 1
                log.warning(
                    "notice %s of %s/%s via %s may or may not have been sent; not resent",
                    notice_key,
                    *key,
                    name,
                )
            if doubtful and await self._persist(key, ledger) == ERROR:
                return
        for notice_key, name in queued:
            self._send_in_order(key, notice_key, name)

    async def _mark(
        self, key: RequestKey, notice_key: str, name: str, state: str, detail: Mapping[str, Any]
    ) -> str:
        async with self._lock(key):
            entry = self._ledger(key).get(notice_key)
            if entry is None:
                return GONE  # the request went, and what was kept for it with it
            entry.setdefault("channels", {})[name] = {"state": state, **detail}
            return await self._persist(key, self._ledger(key))

    async def _persist(self, key: RequestKey, ledger: Ledger) -> str:
        """Write the ledger: RECORDED, GONE (the request was deleted: there is nothing left that a
        later leader could send again from) or ERROR (the API would not take it, after retries)."""
        value = json.dumps(ledger, separators=(",", ":"), sort_keys=True)
        patch = {"metadata": {"annotations": {LEDGER: value}}}
        for attempt in range(PERSIST_ATTEMPTS):
            try:
                updated = await self.kube.patch_request(key[0], key[1], patch)
            except Exception as error:
                log.warning("could not record notices on %s/%s (attempt %d): %s", *key, attempt + 1, error)
                await asyncio.sleep(self.backoff_s * 2**attempt)
                continue
            return RECORDED if updated is not None else GONE
        return ERROR

    def _ledger(self, key: RequestKey) -> Ledger:
        if key not in self._ledgers:
            body, _, _ = self._inputs(key)
            self._ledgers[key] = read_ledger(body or {})
        return self._ledgers[key]

    def _lock(self, key: RequestKey) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    # -- sending ------------------------------------------------------------------------------

    def _send_in_order(self, key: RequestKey, notice_key: str, name: str) -> None:
        """One request's notices reach each channel in the order they happened (approved before
        activated), each after the one before it on that channel."""
        previous = self._last.get((key, name))

        async def send() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await self._deliver(key, notice_key, name)

        task = self._spawn(send(), f"{name} {notice_key} {key[0]}/{key[1]}", key)
        self._last[key, name] = task

        def sent(done: asyncio.Task[None]) -> None:
            if self._last.get((key, name)) is done:
                del self._last[key, name]

        task.add_done_callback(sent)

    async def _deliver(self, key: RequestKey, notice_key: str, name: str) -> None:
        channel = self.channels[name]
        async with self._slots[name]:
            entry = self._ledger(key).get(notice_key) or {}
            notice = notice_from_record(entry.get("notice") or {}, parse_time)
            _, state, grant = self._inputs(key)
            account = told(notice, state, grant) if notice is not None and state is not None else None
            if notice is None or account is None:
                await self._mark(
                    key, notice_key, name, FAILED, {"error": "the request cannot be read any more"}
                )
                return
            if await self._mark(key, notice_key, name, SENDING, {}) == ERROR:
                return  # still queued on the request: the next leader sends it
            state_after, detail = await self._attempts(channel, account, key)
            await self._mark(key, notice_key, name, state_after, detail)
            self.outcomes[name, notice.kind, state_after] += 1

    async def _attempts(self, channel: Channel, account: Any, key: RequestKey) -> tuple[str, dict[str, Any]]:
        problem = ""
        for attempt in range(self.attempts):
            try:
                return SENT, await channel.send(account, dict(self._ledger(key)))
            except Undeliverable as error:
                problem = str(error)
                break
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the receiver's or the network's fault: try again
                problem = str(error) if isinstance(error, Retryable) else type(error).__name__
                log.info(
                    "%s notice for %s/%s not sent (attempt %d): %s", channel.name, *key, attempt + 1, problem
                )
                if attempt + 1 < self.attempts:
                    await asyncio.sleep(self.backoff_s * 2**attempt)
        log.warning("%s notice for %s/%s not sent: %s", channel.name, *key, problem)
        return FAILED, {"error": problem[:300]}

    def _spawn(self, work: Any, name: str, key: RequestKey) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        self._working[key] = self._working.get(key, 0) + 1

        def finished(done: asyncio.Task[None]) -> None:
            left = self._working.get(key, 1) - 1
            if left:
                self._working[key] = left
                return
            self._working.pop(key, None)
            if key in self._forgotten:
                self.forget(key)

        task.add_done_callback(finished)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("sending notices failed: %s", task.exception())
