"""A Slack stand-in on loopback: the Web API methods the operator calls, and button clicks
signed as Slack signs them.

The operator talks to it through the real slack_sdk client (`--slack-api-url`). It answers like
slack.com: `{"ok": false, "error": "..."}` with HTTP 200 for API errors, `invalid_auth` for a
wrong token, `channel_not_found` for an unknown channel, `user_not_found`; and it keeps what was
posted, so a test or the demo can read it back and click a button on it. `click` builds the
`block_actions` payload Slack would send for a button of a posted message and signs it (v0 HMAC
of `v0:{timestamp}:{body}` with the app's signing secret), as
https://api.slack.com/authentication/verifying-requests-from-slack describes.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web


@dataclass
class SlackUser:
    id: str
    email: str | None
    is_bot: bool = False
    deleted: bool = False
    is_restricted: bool = False  # a guest

    def as_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "team_id": "T0SANDBOX",
            "name": (self.email or self.id).partition("@")[0],
            "deleted": self.deleted,
            "is_bot": self.is_bot,
            "is_restricted": self.is_restricted,
            "is_ultra_restricted": False,
            "profile": {"email": self.email} if self.email else {},
        }


@dataclass
class SlackStandIn:
    token: str = "xoxb-sandbox-token"
    signing_secret: str = "sandbox-signing-secret"
    team_id: str = "T0SANDBOX"
    channels: set[str] = field(default_factory=lambda: {"C0JITACCESS"})
    users: dict[str, SlackUser] = field(default_factory=dict)
    messages: list[dict[str, Any]] = field(default_factory=list)  # chat.postMessage, as stored
    updates: list[dict[str, Any]] = field(default_factory=list)  # chat.update calls
    ephemeral: list[dict[str, Any]] = field(default_factory=list)  # chat.postEphemeral calls
    calls: list[str] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add_user(self, user_id: str, email: str | None, **flags: bool) -> None:
        self.users[user_id] = SlackUser(user_id, email, **flags)

    async def start(self) -> SlackStandIn:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/api/"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls.append(method)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        args: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                args.update(await request.json())
            else:
                args.update(await request.post())
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        return web.json_response(handler(args))

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "team_id": self.team_id, "user_id": "UBOT"}

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = str(args.get("channel"))
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        ts = f"1700000000.{next(self._ts):06d}"
        message = {"channel": channel, "ts": ts, **{k: v for k, v in args.items() if k != "channel"}}
        self.messages.append(message)
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        found = [
            m for m in self.messages if m["channel"] == args.get("channel") and m["ts"] == args.get("ts")
        ]
        if not found:
            return {"ok": False, "error": "message_not_found"}
        found[0].update({k: v for k, v in args.items() if k in ("text", "blocks")})
        self.updates.append(dict(args))
        return {"ok": True, "channel": args["channel"], "ts": args["ts"]}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if str(args.get("channel")) not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        self.ephemeral.append(dict(args))
        return {"ok": True, "message_ts": f"1700000000.{next(self._ts):06d}"}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(args.get("user")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": user.as_api()}

    # -- what Slack sends the app when someone clicks ------------------------------------------

    def click(
        self,
        message: dict[str, Any],
        user_id: str,
        action_id: str,
        timestamp: int,
        team_id: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """The signed request Slack sends to the app's interactivity URL when `user_id` clicks the
        button `action_id` on `message` (one of `messages`)."""
        actions = [b for b in message.get("blocks") or [] if b.get("type") == "actions"]
        (button,) = [e for block in actions for e in block["elements"] if e["action_id"] == action_id]
        payload = {
            "type": "block_actions",
            "team": {"id": team_id or self.team_id},
            "user": {"id": user_id},
            "channel": {"id": message["channel"]},
            "message": {"ts": message["ts"]},
            "actions": [{"action_id": action_id, "block_id": "jitaccess-decision", "value": button["value"]}],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return body, self.sign(body, timestamp)

    def sign(self, body: bytes, timestamp: int, secret: str | None = None) -> dict[str, str]:
        base = f"v0:{timestamp}:".encode() + body
        mac = hmac.new((secret or self.signing_secret).encode(), base, hashlib.sha256).hexdigest()
        return {
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": f"v0={mac}",
            "Content-Type": "application/x-www-form-urlencoded",
        }
