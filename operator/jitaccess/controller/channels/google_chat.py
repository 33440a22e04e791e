"""Google Chat: a card per notice through an incoming webhook (notify only: a webhook cannot
receive clicks). Notices of one request share a thread (`threadKey`)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import aiohttp

from jitaccess.controller.channels import http_problem
from jitaccess.controller.channels.render import facts, inert
from jitaccess.policy.notices import Told


class GoogleChatChannel:
    name = "google-chat"

    def __init__(self, webhook_url: str, timeout_s: float = 10.0) -> None:
        self.url = webhook_url  # holds the webhook's key: a secret, never logged
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    def wants(self, told: Told) -> bool:
        return True

    async def send(self, told: Told, ledger: Mapping[str, Any]) -> dict[str, Any]:
        params = {
            "threadKey": f"jitaccess-{told.uid}",
            "messageReplyOption": "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD",
        }
        async with aiohttp.ClientSession(timeout=self.timeout) as session:
            async with session.post(self.url, params=params, json=card(told)) as answer:
                if answer.status >= 300:
                    raise http_problem(answer.status, "Google Chat")
                posted = await answer.json(content_type=None)
        return {"message": str((posted or {}).get("name", ""))}


def card(told: Told) -> dict[str, Any]:
    """A cardsV2 message; card text is Chat's small HTML subset, so every value is escaped."""
    widgets: list[dict[str, Any]] = [
        {"decoratedText": {"topLabel": html.escape(label), "text": html.escape(value), "wrapText": True}}
        for label, value in facts(told)
    ]
    widgets.append({"textParagraph": {"text": "<br>".join(html.escape(c) for c in told.commands())}})
    return {
        "text": inert(told.headline, 200),
        "cardsV2": [
            {
                "cardId": f"{told.uid}-{told.notice.key}",
                "card": {
                    "header": {
                        "title": html.escape(inert(told.headline, 200)),
                        "subtitle": html.escape(inert(told.notice.message, 300)),
                    },
                    "sections": [{"widgets": widgets}],
                },
            }
        ],
    }
