"""Notifications: a JSON event per lifecycle moment, posted to a configured URL (e.g. a chat webhook).

`publish` never waits: events go into a bounded queue that one background task drains, retrying
each delivery with backoff. When the receiver is down for long, the oldest events are dropped
(and logged) rather than holding memory or reconciliation hostage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp

from jitaccess.api.bodies import metadata_of, spec_of, status_of
from jitaccess.api.reasons import Reason
from jitaccess.controller.audit import Told

log = logging.getLogger(__name__)

# Event reasons of the lifecycle, and the notification each one is.
KINDS = {
    Reason.APPROVAL_REQUIRED: "approval-needed",
    Reason.DENIED: "denied",
    Reason.ACTIVATED: "activated",
    Reason.EXPIRED: "expired",
    Reason.APPROVAL_TIMEOUT: "expired",
    Reason.REVOKED_BY_REQUESTER: "revoked",
    Reason.REVOKED_BY_ADMIN: "revoked",
    Reason.REVOKED: "revoked",
    Reason.ELIGIBILITY_REMOVED: "revoked",
    Reason.ELIGIBILITY_CHANGED: "revoked",
    Reason.RECORD_TAMPERED: "revoked",
    Reason.DELETED: "revoked",
    Reason.REVOCATION_FAILING: "revocation-failing",
    Reason.ELIGIBILITY_EXPIRED: "revoked",
    Reason.REVOKED_BY_REVIEWER: "revoked",
    Reason.EXTENDED: "extended",
    Reason.BREAK_GLASS_ACTIVATED: "break-glass",
    Reason.REVIEW_OVERDUE: "review-overdue",
    Reason.REVIEWED: "reviewed",
}


class Sender(Protocol):
    def publish(self, event: Mapping[str, Any]) -> None: ...


class NoSender:
    def publish(self, event: Mapping[str, Any]) -> None:
        return None


class HttpSender:
    def __init__(
        self,
        url: str,
        *,
        attempts: int = 5,
        backoff_s: float = 1.0,
        timeout_s: float = 5.0,
        capacity: int = 1000,
    ) -> None:
        self.url = url
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.queue: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue(maxsize=capacity)
        self.delivered = 0
        self.dropped = 0

    def publish(self, event: Mapping[str, Any]) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
            log.warning("notification queue full; dropped the oldest event")
        self.queue.put_nowait(event)

    async def run(self) -> None:
        async with aiohttp.ClientSession(timeout=self.timeout) as session:
            while True:
                event = await self.queue.get()
                await self._deliver(session, event)

    async def _deliver(self, session: aiohttp.ClientSession, event: Mapping[str, Any]) -> None:
        for attempt in range(self.attempts):
            try:
                async with session.post(self.url, json=event) as answer:
                    if answer.status < 300:
                        self.delivered += 1
                        return
                    problem = f"HTTP {answer.status}"
            except (aiohttp.ClientError, TimeoutError) as error:
                problem = f"{type(error).__name__}: {error}"
            log.info(
                "notification %s not delivered (attempt %d): %s", event.get("type"), attempt + 1, problem
            )
            await asyncio.sleep(self.backoff_s * 2**attempt)
        self.dropped += 1
        log.warning("notification %s dropped after %d attempts", event.get("type"), self.attempts)


def notification(
    kind: str, body: Mapping[str, Any], reason: str, message: str, account: Told
) -> dict[str, Any]:
    """The JSON a receiver gets: what happened, to which request, for whom, why."""
    metadata, spec = metadata_of(body), spec_of(body)
    return {
        "type": kind,
        "reason": reason,
        "message": message,
        "phase": account.phase or status_of(body).get("phase"),
        "request": {
            "namespace": metadata.get("namespace"),
            "name": metadata.get("name"),
            "uid": metadata.get("uid"),
        },
        "requester": spec.get("requester"),
        "grant": spec.get("grant"),
        "roles": spec.get("roles"),
        "resource": account.resource,
        "justification": spec.get("justification"),
        "approvers": account.approvers,
        "expiresAt": account.end,
    }
