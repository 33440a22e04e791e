"""Where notices are sent: e-mail, Slack, Google Chat, a CloudEvents webhook.

Each channel turns a `Told` (policy/notices.py: the facts, who is told, how they act) into its
own message and sends it; the outbox (controller/outbox.py) decides when, retries, and records
what was sent. A channel raises `Undeliverable` for what no retry can fix (a bad address, a
revoked token) and anything else for what may pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from jitaccess.policy.notices import Told


class Undeliverable(Exception):
    """Sending cannot succeed by trying again (configuration or address), so it is not retried."""


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
