"""Telling people what happened: Events on the request, the audit log, notices.

Each is written from the operator's sealed records and the status a step itself wrote, never
from the status as stored (anyone who may write status could have put an approver there). The
audit line is written at once, since it is the durable record; Events are posted off the hot
path, in order per request; notices go to the outbox, which sends each once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from jitaccess.api.bodies import spec_of
from jitaccess.clock import Clock
from jitaccess.controller.audit import AuditLog, Told, audit_record, told
from jitaccess.controller.cache import RequestKey, key_of
from jitaccess.controller.kube import Kube
from jitaccess.controller.outbox import Outbox
from jitaccess.policy.notices import notices_for
from jitaccess.policy.steps import Event, Step, read_state

log = logging.getLogger(__name__)


class Recorder:
    def __init__(
        self,
        kube: Kube,
        clock: Clock,
        attestation_key: bytes,
        resource_of: Callable[[str], str | None],
        audit: AuditLog | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self.kube, self.clock, self.key = kube, clock, attestation_key
        self.resource_of = resource_of  # a grant's name -> its resource, for records before a write
        self.audit = audit
        self.outbox = outbox
        self._posts: dict[RequestKey, asyncio.Task[None]] = {}

    def event(self, body: Mapping[str, Any], event: Event, written: Mapping[str, Any] | None = None) -> None:
        """The audit line now, the Event after the request's previous one. `written`: the status
        the step that this tells of wrote (empty for events that change no status)."""
        key = key_of(body)
        if self.audit is not None:
            self.audit.record(audit_record(body, event, self.clock.now(), self._account(body, written or {})))
        if not event.posted:
            return
        previous = self._posts.get(key)

        async def post() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await self.kube.post_event(dict(body), event)

        task = asyncio.create_task(post(), name=f"event {key[0]}/{key[1]} {event.reason}")
        self._posts[key] = task
        task.add_done_callback(lambda done: self._posted(key, done))

    def notify(self, before: Mapping[str, Any], body: Mapping[str, Any], step: Step) -> None:
        """The notices of the step that turned `before` into `body`, to the outbox."""
        if self.outbox is None:
            return
        notices = notices_for(read_state(before, self.key), step, self.clock.now())
        if notices:
            self.outbox.submit(key_of(body), notices)

    async def flush(self, timeout_s: float = 5.0) -> None:
        """At shutdown: give the Events still being posted a moment to land."""
        pending = list(self._posts.values())
        if pending:
            await asyncio.wait(pending, timeout=timeout_s)

    def _account(self, body: Mapping[str, Any], written: Mapping[str, Any]) -> Told:
        grant = str(spec_of(body).get("grant") or "")
        return told(body, written, self.key, self.resource_of(grant))

    def _posted(self, key: RequestKey, task: asyncio.Task[None]) -> None:
        if self._posts.get(key) is task:
            del self._posts[key]
        if not task.cancelled() and task.exception() is not None:
            log.warning("posting an Event for %s/%s failed: %s", *key, task.exception())
