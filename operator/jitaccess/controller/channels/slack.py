"""Slack: Block Kit messages through a bot token (slack_sdk), with Approve / Deny buttons.

One thread per request in the grant's channel (`spec.notify.slackChannel`) or the default one:
the first notice starts it, later ones reply in it, and each outcome also rewrites the first
message, so its buttons go once nobody can act on them. Button clicks come back to the operator's
interactivity endpoint (controller/slack_actions.py). What people typed goes into `plain_text`
objects, which Slack never parses for mentions, links or formatting.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from jitaccess.controller.channels import Retryable, Undeliverable
from jitaccess.controller.channels.render import facts, inert
from jitaccess.policy.notices import Told

APPROVE, DENY = "jitaccess-approve", "jitaccess-deny"
# Errors no retry mends: the token, the scopes, the channel.
PERMANENT = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_blocks",
        "msg_too_long",
    }
)


class SlackChannel:
    name = "slack"

    def __init__(self, client: AsyncWebClient, default_channel: str | None) -> None:
        self.client = client
        self.default_channel = default_channel

    def channel_for(self, told: Told) -> str | None:
        return told.slack_channel or self.default_channel

    def wants(self, told: Told) -> bool:
        return self.channel_for(told) is not None

    async def send(self, told: Told, ledger: Mapping[str, Any]) -> dict[str, Any]:
        channel = self.channel_for(told)
        assert channel is not None
        root = thread_of(ledger)
        try:
            if root is None:
                posted = await self.client.chat_postMessage(
                    channel=channel, text=told.headline, blocks=blocks(told)
                )
                return {"channel": posted["channel"], "ts": posted["ts"], "root": True}
            posted = await self.client.chat_postMessage(
                channel=root["channel"],
                thread_ts=root["ts"],
                text=told.headline,
                blocks=blocks(told, buttons=False),
            )
            if not told.answerable:
                # The first message loses its buttons and says how it stands now.
                await self.client.chat_update(
                    channel=root["channel"],
                    ts=root["ts"],
                    text=told.headline,
                    blocks=blocks(told, buttons=False),
                )
            return {"channel": posted["channel"], "ts": posted["ts"]}
        except SlackApiError as error:
            code = str(error.response.get("error", ""))[:80]
            if code in PERMANENT:
                raise Undeliverable(f"Slack refused it: {code}") from error
            raise Retryable(f"Slack answered {code or 'an error'}") from error


def thread_of(ledger: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The Slack message that started this request's thread, if one was sent."""
    for entry in ledger.values():
        sent = (entry.get("channels") or {}).get(SlackChannel.name) if isinstance(entry, Mapping) else None
        if isinstance(sent, Mapping) and sent.get("root") and sent.get("ts") and sent.get("channel"):
            return sent
    return None


def blocks(told: Told, buttons: bool = True) -> list[dict[str, Any]]:
    """The message: headline, what happened, the facts (user text as plain_text), the buttons."""
    fields = [
        {"type": "plain_text", "text": inert(f"{label}: {value}", 1900)}
        for label, value in facts(told)
        if label != "Justification"
    ]
    found: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": inert(told.headline, 150)}},
        {"type": "section", "text": {"type": "plain_text", "text": inert(told.notice.message, 2900) or " "}},
        {"type": "section", "fields": fields[:10]},
        {
            "type": "section",
            "text": {"type": "plain_text", "text": "Justification: " + inert(told.justification, 2800)},
        },
    ]
    if buttons and told.answerable:
        value = json.dumps(
            {"namespace": told.namespace, "name": told.name, "uid": told.uid, "digest": told.digest},
            separators=(",", ":"),
        )
        found.append(
            {
                "type": "actions",
                "block_id": "jitaccess-decision",
                "elements": [
                    _button("Approve", APPROVE, value, "primary"),
                    _button("Deny", DENY, value, "danger"),
                ],
            }
        )
    commands = " · ".join(told.commands())
    found.append({"type": "context", "elements": [{"type": "plain_text", "text": inert(commands, 2900)}]})
    return found


def _button(label: str, action: str, value: str, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action,
        "value": value,
        "style": style,
    }
