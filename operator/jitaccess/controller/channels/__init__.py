"""Where notices are sent: e-mail, Slack, Google Chat, a CloudEvents webhook.

Each channel turns a `Told` (policy/notices.py: the facts, who is told, how they act) into its
own message and sends it; the outbox (controller/outbox.py) decides when, retries, and records
what was sent. A channel raises `Undeliverable` for what no retry can fix (a bad address, a
revoked token) and `Retryable` (or anything else) for what may pass. The messages of those two
are recorded on the request, which anyone who may read it sees, so they never carry a URL, a
token or a server's answer; of any other error only its type is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from jitaccess.policy.notices import Told


class Undeliverable(Exception):
    """Sending cannot succeed by trying again (configuration or address), so it is not retried."""


class Retryable(Exception):
    """Sending failed in a way that may pass (a 5xx, a timeout): tried again later."""


def http_problem(status: int, service: str) -> Exception:
    """The error for an HTTP answer, naming only its status (the URL may hold a key)."""
    if status in (400, 401, 403, 404, 410, 413):
        return Undeliverable(f"{service} refused it: HTTP {status}")
    return Retryable(f"{service} answered HTTP {status}")


class Channel(Protocol):
    name: str

    def wants(self, told: Told) -> bool:
        """Does this channel carry this notice to anyone (it has addresses, a channel, a URL)?"""
        ...

    async def send(self, told: Told, ledger: Mapping[str, Any]) -> dict[str, Any]:
        """Send it; what is returned is recorded beside it (e.g. the Slack message to update
        later). `ledger` holds what was recorded for this request's earlier notices."""
        ...


def read_secret(path: str | None, what: str) -> str | None:
    """A secret from a file (a mounted Secret), never from a flag: flags show in `ps` and logs."""
    if not path:
        return None
    with open(path, encoding="utf-8") as file:
        value = file.read().strip()
    if not value:
        raise ValueError(f"{what}: the file {path} is empty")
    return value
