"""Telling people what happened: Events on the request, the audit log, notifications.

Each is written from the operator's sealed records and the status a step itself wrote, never
from the status as stored (anyone who may write status could have put an approver there). The
audit line is written at once, since it is the durable record; Events are posted off the hot
path, in order per request; notifications go to the configured sender.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from jitaccess.api.bodies import spec_of, status_of
from jitaccess.api.reasons import Reason
from jitaccess.clock import Clock
from jitaccess.controller.audit import AuditLog, Told, audit_record, told
from jitaccess.controller.cache import RequestKey, key_of
from jitaccess.controller.kube import Kube
from jitaccess.controller.notify import KINDS, NoSender, Sender, notification
from jitaccess.policy.conditions import APPROVED
from jitaccess.policy.steps import Event, Step

log = logging.getLogger(__name__)


class Recorder:
    def __init__(
        self,
        kube: Kube,
        clock: Clock,
        attestation_key: bytes,
        resource_of: Callable[[str], str | None],
        audit: AuditLog | None = None,
        notifier: Sender | None = None,
    ) -> None:
        self.kube, self.clock, self.key = kube, clock, attestation_key
        self.resource_of = resource_of  # a grant's name -> its resource, for records before a write
        self.audit = audit
        self.notifier: Sender = notifier or NoSender()
        self._posts: dict[RequestKey, asyncio.Task[None]] = {}

    def event(self, body: Mapping[str, Any], event: Event, written: Mapping[str, Any] | None = None) -> None:
        """The audit line now, the Event after the request's previous one. `written`: the status
        the step that this tells of wrote (empty for events that change no status)."""
        key = key_of(body)
        if self.audit is not None:
            self.audit.record(audit_record(body, event, self.clock.now(), self._account(body, written or {})))
        previous = self._posts.get(key)

        async def post() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            await self.kube.post_event(dict(body), event)

        task = asyncio.create_task(post(), name=f"event {key[0]}/{key[1]} {event.reason}")
        self._posts[key] = task
        task.add_done_callback(lambda done: self._posted(key, done))

    def notify(self, before: Mapping[str, Any], body: Mapping[str, Any], step: Step) -> None:
        """Notifications for the step that turned `before` into `body`: approved, and its Event's kind."""
        assert step.event is not None and step.status is not None
        account = self._account(body, step.status)
        if _approved(step.status.get("conditions") or []) and not _approved(
            status_of(before).get("conditions") or []
        ):
            self.notifier.publish(
                notification("approved", body, Reason.APPROVED, "the request was approved", account)
            )
        kind = KINDS.get(step.event.reason)
        if kind is not None:
            self.notifier.publish(notification(kind, body, step.event.reason, step.event.message, account))

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


def _approved(conditions: Any) -> bool:
    return any(
        isinstance(c, Mapping) and c.get("type") == APPROVED and c.get("status") == "True" for c in conditions
    )
