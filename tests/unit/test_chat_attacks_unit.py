"""Attacks on Slack approvals and notices that need no cluster: each test asserts the SAFE
behaviour, so it fails while the hole is there."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from jitaccess import cli
from jitaccess.clock import ManualClock
from jitaccess.controller.channels.slack import APPROVE
from jitaccess.controller.slack_actions import SlackActions

SECRET = "unit-signing-secret"
TEAM = "T0UNIT"


class FakeSlackClient:
    def __init__(self, users: dict[str, dict[str, Any]], fail: Exception | None = None) -> None:
        self.users, self.fail = users, fail
        self.ephemeral: list[dict[str, Any]] = []

    async def users_info(self, user: str) -> dict[str, Any]:
        if self.fail is not None:
            raise self.fail
        return {"ok": True, "user": self.users[user]}

    async def chat_postEphemeral(self, **args: Any) -> dict[str, Any]:
        self.ephemeral.append(args)
        return {"ok": True}


class FakeKube:
    def __init__(self) -> None:
        self.filed: list[tuple[str, dict[str, Any]]] = []

    async def create_approval(self, namespace: str, body: dict[str, Any]):
        self.filed.append((namespace, body))
        return body, ""


def person(email: str) -> dict[str, Any]:
    return {"id": "U1", "deleted": False, "is_bot": False, "profile": {"email": email}}


def sign(body: bytes, timestamp: int, secret: str = SECRET) -> dict[str, str]:
    mac = hmac.new(secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": f"v0={mac}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def click_body(value: Any = None, user: str = "U1", payload: Any = None) -> bytes:
    if payload is None:
        payload = {
            "type": "block_actions",
            "team": {"id": TEAM},
            "user": {"id": user},
            "channel": {"id": "C0JITACCESS"},
            "actions": [
                {
                    "action_id": APPROVE,
                    "value": json.dumps(
                        value or {"namespace": "team-sre", "name": "r", "uid": "u", "digest": "d"}
                    ),
                }
            ],
        }
    return urlencode({"payload": payload if isinstance(payload, str) else json.dumps(payload)}).encode()


def actions(clock: ManualClock, client: Any = None, team: str | None = TEAM) -> SlackActions:
    return SlackActions(FakeKube(), client or FakeSlackClient({}), SECRET, clock, team)  # type: ignore[arg-type]


# -- replay --------------------------------------------------------------------------------------


def test_a_future_dated_click_cannot_be_replayed_after_the_cache_forgets_it():
    """Slack's clock 4 minutes ahead of the operator's (or a request held back): the signature is
    valid until timestamp+5min, so the replay cache must remember it that long, not 5 minutes
    from receipt."""
    clock = ManualClock()
    handler = actions(clock)
    now = int(clock.now().timestamp())
    body = click_body()
    headers = sign(body, now + 240)
    stamp = headers["X-Slack-Request-Timestamp"]
    assert handler._authentic(body, headers) and handler._first_time(headers["X-Slack-Signature"], stamp)
    # 5 min 1 s later: the signature is still within its window (61 s old)...
    clock.advance(timedelta(seconds=301))
    still_valid = handler._authentic(body, headers)
    first_again = handler._first_time(headers["X-Slack-Signature"], stamp)
    assert not (still_valid and first_again), "a captured click was accepted twice"


def test_replay_cache_is_keyed_on_something_an_attacker_cannot_vary():
    """The same signed click with the signature's hex upper-cased must not slip past as 'new'."""
    clock = ManualClock()
    handler = actions(clock)
    now = int(clock.now().timestamp())
    body = click_body()
    headers = sign(body, now)
    stamp = headers["X-Slack-Request-Timestamp"]
    assert handler._authentic(body, headers) and handler._first_time(headers["X-Slack-Signature"], stamp)
    upper = {**headers, "X-Slack-Signature": "v0=" + headers["X-Slack-Signature"][3:].upper()}
    # Either refused as forged or as a replay: never accepted.
    assert not (handler._authentic(body, upper) and handler._first_time(upper["X-Slack-Signature"], stamp))


# -- who clicked -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email, impersonated",
    [
        ("\u212aate@example.com", "user:kate@example.com"),  # KELVIN SIGN lower()s to ASCII 'k'
        ("bob@example.com\u200b", "user:bob@example.com"),  # zero-width space
        (" bob@example.com", "user:bob@example.com"),
    ],
)
async def test_a_non_ascii_slack_email_never_becomes_an_ascii_identity(email, impersonated):
    handler = actions(ManualClock(), FakeSlackClient({"U1": person(email)}))
    member, _ = await handler._member("U1")
    assert member != impersonated, f"Slack e-mail {email!r} was taken as {member}"


# -- malformed but signed requests -------------------------------------------------------------------


async def _post(handler: SlackActions, body: bytes, headers: dict[str, str]) -> int:
    server = TestServer(handler.app())
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(server.make_url("/slack/actions"), data=body, headers=headers) as answer:
                return answer.status
    finally:
        await server.close()


@pytest.mark.parametrize(
    "payload",
    [
        "[" * 30000 + "]" * 30000,  # deep nesting: json's RecursionError
        json.dumps({"type": "block_actions", "team": None, "user": {"id": "U1"}}),
        json.dumps([1, 2]),
        "null",
    ],
    ids=["deep-nesting", "team-null", "list", "null"],
)
async def test_signed_garbage_is_answered_without_a_server_error(payload):
    clock = ManualClock()
    handler = actions(clock)
    body = urlencode({"payload": payload}).encode()[: 60 * 1024]
    status = await _post(handler, body, sign(body, int(clock.now().timestamp())))
    assert status < 500, f"signed payload crashed the handler: HTTP {status}"


async def test_slack_unreachable_during_users_info_tells_the_clicker_not_a_500():
    clock = ManualClock()
    client = FakeSlackClient({}, fail=aiohttp.ClientConnectionError("slack.com unreachable"))
    handler = actions(clock, client)
    body = click_body()
    status = await _post(handler, body, sign(body, int(clock.now().timestamp())))
    assert status < 500, f"a Slack outage during users.info gave HTTP {status}"


async def test_unsigned_and_oversized_requests_are_refused_cheaply():
    clock = ManualClock()
    handler = actions(clock)
    now = int(clock.now().timestamp())
    assert await _post(handler, click_body(), {}) == 401
    assert (
        await _post(handler, click_body(), {"X-Slack-Request-Timestamp": "nan", "X-Slack-Signature": "v0=x"})
        == 401
    )
    assert await _post(handler, b"\xff\xfe" * 10, sign(b"\xff\xfe" * 10, now)) in (200, 401)
    big = b"payload=" + b"a" * (70 * 1024)
    assert await _post(handler, big, sign(big, now)) == 413
    assert not handler.kube.filed  # type: ignore[attr-defined]


# -- configuration -----------------------------------------------------------------------------------


def test_the_click_endpoint_does_not_start_without_a_workspace_to_accept_clicks_from(tmp_path):
    """Without --slack-team-id, a signed click from *any* workspace the app is installed in (a
    distributed app, an Enterprise Grid org) is acted on, with that workspace's e-mail for the user."""
    args = cli.parser().parse_args(
        [
            "run",
            "--slack-actions-port",
            "8443",
            "--slack-signing-secret-file",
            str(tmp_path / "s"),
            "--slack-token-file",
            str(tmp_path / "t"),
        ]
    )
    with pytest.raises(SystemExit):
        cli.notify_settings(args)


async def test_without_a_team_id_other_workspaces_are_not_acted_on():
    # No workspace named: the endpoint refuses to exist rather than take clicks from any.
    with pytest.raises(ValueError, match="--slack-team-id"):
        actions(ManualClock(), FakeSlackClient({"U1": person("bob@example.com")}), team=None)
