"""A generic webhook: each notice as a CloudEvents 1.0 structured JSON event (`cloudevents`),
optionally signed, so a receiver can tell it came from this operator.

Signature (when a secret is configured): `X-Jitaccess-Signature: v1=HEX` where HEX is
HMAC-SHA256(secret, "{X-Jitaccess-Timestamp}.{body}"), like Slack's and Stripe's: the receiver
recomputes it, compares in constant time and refuses old timestamps. The event `id` is stable per
request and notice, so a receiver can also drop a repeat.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

import aiohttp
from cloudevents.core.bindings.http import to_structured_event
from cloudevents.core.v1.event import CloudEvent

from jitaccess.api.objects import GROUP, VERSION
from jitaccess.clock import Clock
from jitaccess.controller.channels import http_problem
from jitaccess.policy.notices import Told

TYPE_PREFIX = "dev.jitaccess.request."
SIGNATURE, TIMESTAMP = "X-Jitaccess-Signature", "X-Jitaccess-Timestamp"


class WebhookChannel:
    name = "webhook"

    def __init__(self, url: str, clock: Clock, secret: str | None = None, timeout_s: float = 10.0) -> None:
        self.url, self.clock, self.secret = url, clock, secret
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    def wants(self, told: Told) -> bool:
        return True

    def request(self, told: Told) -> tuple[dict[str, str], bytes]:
        """The headers and body of the event, signed when a secret is configured."""
        source = f"/apis/{GROUP}/{VERSION}/namespaces/{told.namespace}/activationrequests/{told.name}"
        event = CloudEvent(
            attributes={
                "type": TYPE_PREFIX + told.notice.kind,
                "source": source,
                "id": f"{told.uid}/{told.notice.key}",
                "subject": told.requester,
                "time": told.notice.at,
                "datacontenttype": "application/json",
            },
            data=told.as_data(),
        )
        message = to_structured_event(event)
        headers = dict(message.headers)
        if self.secret:
            stamp = str(int(self.clock.now().timestamp()))
            mac = hmac.new(self.secret.encode(), f"{stamp}.".encode() + message.body, hashlib.sha256)
            headers[TIMESTAMP], headers[SIGNATURE] = stamp, "v1=" + mac.hexdigest()
        return headers, message.body

    async def send(self, told: Told, ledger: Mapping[str, Any]) -> dict[str, Any]:
        headers, body = self.request(told)
        async with aiohttp.ClientSession(timeout=self.timeout) as session:
            async with session.post(self.url, data=body, headers=headers) as answer:
                if answer.status >= 300:
                    raise http_problem(answer.status, "the webhook")
        return {}
