"""Approve and Deny from Slack: the operator's endpoint for Slack's interactivity requests.

A click is acted on only when Slack signed it (v0 HMAC with the app's signing secret, within
five minutes, compared in constant time: slack_sdk's SignatureVerifier), it was not seen before,
it comes from the configured workspace, and the clicking Slack user is a full member (not a bot,
guest or deactivated account) with an e-mail address. The operator then files an
ActivationApproval *as that person* (`user:` + their Slack e-mail), pinned to the request and the
terms the message showed. Admission judges it exactly as it judges one filed with kubectl: the
approver must be eligible for the step, may not approve their own request, and the request must
still be what was shown. The operator is trusted to name the approver only for identities Slack
verified here (docs/security.md); what admission refuses is told to the clicker alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import ssl
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import Clock as SlackClock
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from jitaccess.api.names import EMAIL
from jitaccess.api.objects import CHAT_IDENTITY, GROUP, VERSION
from jitaccess.clock import Clock
from jitaccess.controller.channels.slack import APPROVE, DENY
from jitaccess.controller.kube import Kube

log = logging.getLogger(__name__)
PATH = "/slack/actions"
MAX_BODY = 64 * 1024
REPLAY_WINDOW_S = 5 * 60  # Slack's own window: a signature older than this is refused anyway
DECISIONS = {APPROVE: "Approve", DENY: "Deny"}


class _SlackClock(SlackClock):
    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def now(self) -> float:
        return self.clock.now().timestamp()


class SlackActions:
    def __init__(
        self, kube: Kube, client: AsyncWebClient, signing_secret: str, clock: Clock, team_id: str
    ) -> None:
        if not team_id:
            raise ValueError("Slack clicks are accepted from one workspace only: give --slack-team-id")
        self.kube, self.client, self.clock, self.team_id = kube, client, clock, team_id
        self.verifier = SignatureVerifier(signing_secret, _SlackClock(clock))
        self.outcomes: Counter[str] = Counter()
        self._seen: dict[str, float] = {}  # signature digest -> when Slack's window for it has closed

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(PATH, self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not self._authentic(body, request.headers):
            self.outcomes["forged"] += 1
            return web.Response(status=401, text="the request does not carry a valid Slack signature")
        if not self._first_time(
            request.headers.get("X-Slack-Signature", ""), request.headers.get("X-Slack-Request-Timestamp", "")
        ):
            self.outcomes["replayed"] += 1
            return web.Response(status=409, text="this request was already received")
        try:
            payload = json.loads(parse_qs(body.decode())["payload"][0])
            click = _click(payload)
        except (KeyError, IndexError, ValueError, TypeError, UnicodeDecodeError, RecursionError):
            self.outcomes["ignored"] += 1
            return web.Response(status=200)  # not a button of ours: nothing to do
        if click["team"] != self.team_id:
            self.outcomes["other-workspace"] += 1
            return web.Response(status=403, text="clicks from this Slack workspace are not accepted")
        await self._act(click)
        return web.Response(status=200)

    def _authentic(self, body: bytes, headers: Any) -> bool:
        try:
            return self.verifier.is_valid(
                body, headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
            )
        except ValueError:
            return False  # a timestamp that is not a number

    def _first_time(self, signature: str, timestamp: str) -> bool:
        """Remembered until Slack's window for its timestamp has closed (a click stamped in the
        future stays valid that much longer), so no replay is ever taken twice by this replica;
        across replicas the approval's name, one per person and decision, stops it."""
        now = self.clock.now().timestamp()
        self._seen = {k: until for k, until in self._seen.items() if until > now}
        digest = hashlib.sha256(signature.encode()).hexdigest()
        if digest in self._seen:
            return False
        self._seen[digest] = max(now, float(timestamp)) + REPLAY_WINDOW_S
        return True

    async def _act(self, click: dict[str, Any]) -> None:
        member, why = await self._member(click["user"])
        if member is None:
            self.outcomes["unknown-person"] += 1
            await self._tell(click, f"Not recorded: {why}")
            return
        created, refusal = await self.kube.create_approval(click["namespace"], approval(click, member))
        if created is None:
            self.outcomes["refused"] += 1
            await self._tell(click, f"Not recorded: {refusal or 'the request is gone'}")
            return
        self.outcomes["recorded"] += 1
        log.info("%s %s %s/%s from Slack", member, click["decision"], click["namespace"], click["name"])
        verb = "approved" if click["decision"] == "Approve" else "denied"
        await self._tell(click, f"Recorded: you {verb} {click['namespace']}/{click['name']} as {member}.")

    async def _member(self, user: str) -> tuple[str | None, str]:
        """The IAM member a Slack user is, from their Slack profile; None and why not."""
        try:
            answer = await self.client.users_info(user=user)
        except SlackApiError as error:
            return None, f"Slack could not say who you are ({error.response.get('error')})"
        except Exception as error:  # Slack unreachable: the clicker is told, the endpoint answers
            log.warning("users.info failed: %s", type(error).__name__)
            return None, "Slack could not be asked who you are; try again, or use kubectl jit approve"
        person = answer.get("user") or {}
        if person.get("deleted") or person.get("is_bot") or person.get("is_app_user"):
            return None, "only people with an active Slack account may decide"
        if person.get("is_restricted") or person.get("is_ultra_restricted"):
            return None, "guest accounts may not decide; use kubectl jit approve"
        email = (person.get("profile") or {}).get("email")
        if not isinstance(email, str) or "@" not in email:
            return None, "your Slack profile has no e-mail address (the app needs users:read.email)"
        # Checked as given, before any case folding: str.lower() maps look-alikes (the Kelvin
        # sign K) onto ASCII letters, which would make one person's address another's.
        if not email.isascii() or not EMAIL.fullmatch(email):
            return None, "your Slack e-mail address is not a plain address jitaccess can match"
        return f"user:{email.lower()}", ""

    async def _tell(self, click: dict[str, Any], text: str) -> None:
        """Only to the person who clicked: an ephemeral message where they clicked."""
        try:
            await self.client.chat_postEphemeral(channel=click["channel"], user=click["user"], text=text)
        except SlackApiError as error:
            log.warning("could not answer a Slack click: %s", error.response.get("error"))


def _click(payload: dict[str, Any]) -> dict[str, Any]:
    """The fields of a button click on one of our messages (raises on anything else)."""
    if payload["type"] != "block_actions":
        raise ValueError("not a block action")
    action = payload["actions"][0]
    decision = DECISIONS[action["action_id"]]
    value = json.loads(action["value"])
    return {
        "team": str(payload["team"]["id"]),
        "user": str(payload["user"]["id"]),
        "channel": str(payload["channel"]["id"]),
        "decision": decision,
        "namespace": str(value["namespace"]),
        "name": str(value["name"]),
        "uid": str(value["uid"]),
        "digest": str(value["digest"]),
    }


def approval(click: dict[str, Any], member: str) -> dict[str, Any]:
    """The ActivationApproval a click files: one per person, request and decision (so a repeated
    click changes nothing), pinned to the object and the terms shown."""
    tag = hashlib.sha256(f"{click['uid']}/{member}/{click['decision']}".encode()).hexdigest()[:10]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ActivationApproval",
        "metadata": {
            "name": f"{click['name'][:200]}-slack-{tag}",
            "annotations": {CHAT_IDENTITY: f"slack:{click['team']}/{click['user']}"},
        },
        "spec": {
            "request": click["name"],
            "decision": click["decision"],
            "approver": member,
            "requestUID": click["uid"],
            "requestDigest": click["digest"],
            "comment": "from Slack",
        },
    }


async def serve_slack_actions(
    actions: SlackActions, port: int, host: str = "0.0.0.0", cert_dir: Path | None = None
) -> web.AppRunner:
    """Serve POST /slack/actions, over HTTPS when `cert_dir` holds tls.crt and tls.key."""
    runner = web.AppRunner(actions.app(), access_log=None)
    await runner.setup()
    context = None
    if cert_dir is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_dir / "tls.crt", cert_dir / "tls.key")
    await web.TCPSite(runner, host, port, ssl_context=context).start()
    return runner
