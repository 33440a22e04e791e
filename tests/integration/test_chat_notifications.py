"""Notices through real clients on loopback: e-mail to a real SMTP server (aiosmtpd, STARTTLS and
AUTH), Slack through slack_sdk to the Slack stand-in, Approve/Deny clicks signed as Slack signs
them, Google Chat cards, CloudEvents; each sent once across a restart, and a dead endpoint in
nobody's way."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import hmac
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from jitaccess.controller.channels.setup import NotifySettings
from jitaccess.controller.channels.slack import APPROVE, DENY
from jitaccess.controller.outbox import LEDGER
from jitaccess.controller.tls import make_serving_certificate
from jitaccess.policy.admission import CHAT_IDENTITY, IdentitySettings
from jitaccess_sandbox.runner import Sandbox
from jitaccess_sandbox.slack import SlackStandIn
from tests.integration.conftest import Cluster

pytestmark = [pytest.mark.integration, pytest.mark.sandbox_api, pytest.mark.asyncio(loop_scope="module")]
CHANNEL = "C0JITACCESS"
SMTP_USER, SMTP_PASSWORD = "jitaccess", "smtp-secret-password"


@dataclass
class Mailbox:
    """What the SMTP server received; `hold` keeps the server from answering DATA until set."""

    messages: list[email.message.EmailMessage] = field(default_factory=list)
    envelopes: list[list[str]] = field(default_factory=list)
    hold: threading.Event = field(default_factory=lambda: _set(threading.Event()))

    async def handle_DATA(self, server, session, envelope):
        # Received before it is answered: held, it is the message a sender cannot know went out.
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(parsed)
        self.envelopes.append(list(envelope.rcpt_tos))
        await asyncio.to_thread(self.hold.wait, 60)
        return "250 OK"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for m, rcpts in zip(self.messages, self.envelopes, strict=True) if address in rcpts]


def _set(event: threading.Event) -> threading.Event:
    event.set()
    return event


def _authenticate(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=ok)


async def eventually(check, what: str = "", timeout_s: float = 60) -> None:
    """Until `check()` holds (real time: generous, it returns as soon as it holds)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out: {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("secrets")
    made = make_serving_certificate(folder / "tls", ["127.0.0.1", "localhost"])
    (folder / "tls" / "ca.crt").write_bytes(made.ca_pem)
    (folder / "smtp-password").write_text(SMTP_PASSWORD)
    (folder / "slack-token").write_text(SlackStandIn.token)
    (folder / "slack-signing").write_text(SlackStandIn.signing_secret)
    return folder


def smtp_server(box: Mailbox, secrets_dir: Path, **options: object) -> Controller:
    """A real SMTP server on loopback with the test certificate and AUTH; `tls_context=None` for
    STARTTLS, `ssl_context=None` for implicit TLS (the None is replaced by the certificate)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(secrets_dir / "tls" / "tls.crt", secrets_dir / "tls" / "tls.key")
    tls = {name: context for name in ("tls_context", "ssl_context") if name in options}
    controller = Controller(
        box, hostname="127.0.0.1", port=free_port(), authenticator=_authenticate, **{**options, **tls}
    )
    controller.start()
    return controller


@pytest.fixture(scope="module")
def mailbox(secrets_dir):
    box = Mailbox()
    controller = smtp_server(box, secrets_dir, tls_context=None, require_starttls=True, auth_require_tls=True)
    box.port = controller.port
    yield box
    box.hold.set()
    controller.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slack():
    stand_in = await SlackStandIn().start()
    stand_in.add_user("UBOB", "bob@example.com")
    stand_in.add_user("UALICE", "Alice@example.com")
    stand_in.add_user("UCAROL", "carol@example.com", is_restricted=True)
    stand_in.add_user("UBOT", None, is_bot=True)
    yield stand_in
    await stand_in.stop()


def notify_settings(secrets_dir: Path, mailbox: Mailbox, slack: SlackStandIn, **changes) -> NotifySettings:
    settings = dict(
        smtp_host="127.0.0.1",
        smtp_port=mailbox.port,
        smtp_security="starttls",
        smtp_from="jitaccess@example.com",
        smtp_username=SMTP_USER,
        smtp_password_file=secrets_dir / "smtp-password",
        smtp_ca_file=secrets_dir / "tls" / "ca.crt",
        slack_token_file=secrets_dir / "slack-token",
        slack_api_url=slack.url,
        slack_signing_secret_file=secrets_dir / "slack-signing",
        slack_team_id=slack.team_id,
        slack_actions_port=free_port(),
        slack_actions_host="127.0.0.1",
        slack_actions_cert_dir=secrets_dir / "tls",
    )
    return NotifySettings(**{**settings, **changes})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory, secrets_dir, mailbox, slack):
    async with Sandbox(tmp_path_factory.mktemp("chat"), run_operator=False, tick_s=0.05) as sandbox:
        settings = notify_settings(secrets_dir, mailbox, slack)
        await start(sandbox, settings)
        yield sandbox, settings


async def start(sandbox: Sandbox, settings: NotifySettings) -> None:
    await sandbox.start_operator(notify=settings, identity=IdentitySettings(chat_approvals=True))


@pytest_asyncio.fixture(loop_scope="module")
async def cluster(world):
    return Cluster(world[0])


async def post_click(
    settings: NotifySettings, body: bytes, headers: dict[str, str], secrets_dir: Path
) -> int:
    context = ssl.create_default_context(cafile=str(secrets_dir / "tls" / "ca.crt"))
    url = f"https://127.0.0.1:{settings.slack_actions_port}/slack/actions"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers, ssl=context) as answer:
            return answer.status


def messages_about(slack: SlackStandIn, request: str) -> list[dict]:
    return [m for m in slack.messages if request in json.dumps(m.get("blocks"))]


async def approval_needed(cluster: Cluster, slack: SlackStandIn, mailbox: Mailbox, name: str, grant: str):
    await cluster.grant(
        grant,
        cluster.project(),
        approval={"approvers": ["user:bob@example.com", "user:alice@example.com"]},
        notify={"slackChannel": CHANNEL},
    )
    await cluster.wait_grant_ready(grant)
    justification = "INC-7 <script>alert(1)</script> @channel <!here>"
    await cluster.request_as("alice@example.com", name, grant, duration="30m", justification=justification)
    await cluster.wait_phase(name, "AwaitingApproval")
    await eventually(lambda: messages_about(slack, name) and mailbox.to("bob@example.com"))
    return messages_about(slack, name)[0]


async def test_approvers_are_mailed_and_asked_in_slack_and_bob_approves_by_clicking(
    world, cluster, slack, mailbox, secrets_dir
):
    sandbox, settings = world
    root = await approval_needed(cluster, slack, mailbox, "chat-alice", "chat-grant")
    # E-mail: to the approvers of the step (never the requester), plain text and HTML, inert input.
    (mail,) = [
        m for m in mailbox.to("bob@example.com") if "chat-alice" in m.get_body(("plain",)).get_content()
    ]
    assert "alice@example.com" not in mailbox.envelopes[mailbox.messages.index(mail)]
    plain = mail.get_body(("plain",)).get_content()
    for fact in (
        "roles/compute.admin",
        "projects/test-project-",
        "30m",
        "INC-7",
        "kubectl jit approve chat-alice",
    ):
        assert fact in plain, fact
    markup = mail.get_body(("html",)).get_content()
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    assert mail["From"] == "jitaccess@example.com" and "approval is needed" in mail["Subject"]
    # Slack: the grant's channel, buttons, user text only as plain_text (no mention, no link).
    assert root["channel"] == CHANNEL
    assert all(
        t.get("type") == "plain_text"
        for b in root["blocks"]
        for t in [b.get("text") or {}]
        if "INC-7" in str(t)
    )
    now = int(sandbox.clock.now().timestamp())
    # The requester's own click is refused by admission, and told to them alone.
    body, headers = slack.click(root, "UALICE", APPROVE, now)
    assert await post_click(settings, body, headers, secrets_dir) == 200
    await eventually(lambda: any(e["user"] == "UALICE" for e in slack.ephemeral))
    (told_alice,) = [e for e in slack.ephemeral if e["user"] == "UALICE"]
    assert told_alice["text"].startswith("Not recorded") and "own request" in told_alice["text"]
    # A forged signature, a stale one, and another workspace are refused before anything is done.
    forged = slack.sign(body, now, secret="not-the-signing-secret")
    assert await post_click(settings, body, forged, secrets_dir) == 401
    stale_body, stale = slack.click(root, "UBOB", APPROVE, now - 6 * 60)
    assert await post_click(settings, stale_body, stale, secrets_dir) == 401
    other_body, other = slack.click(root, "UBOB", APPROVE, now, team_id="T0ELSEWHERE")
    assert await post_click(settings, other_body, other, secrets_dir) == 403
    # Guests and bots may not decide.
    guest_body, guest = slack.click(root, "UCAROL", APPROVE, now)
    assert await post_click(settings, guest_body, guest, secrets_dir) == 200
    assert (await cluster.get("chat-alice"))["status"]["phase"] == "AwaitingApproval"
    # Bob's click approves, as bob.
    body, headers = slack.click(root, "UBOB", APPROVE, now + 1)
    assert await post_click(settings, body, headers, secrets_dir) == 200
    active = await cluster.wait_phase("chat-alice", "Active")
    approvals = await asyncio.to_thread(
        cluster.custom.list_namespaced_custom_object,
        "jitaccess.dev",
        "v1alpha1",
        "team-sre",
        "activationapprovals",
    )
    (mine,) = [a for a in approvals["items"] if a["spec"]["request"] == "chat-alice"]
    assert mine["spec"]["approver"] == "user:bob@example.com"
    assert mine["metadata"]["annotations"][CHAT_IDENTITY] == f"slack:{slack.team_id}/UBOB"
    assert mine["spec"]["requestUID"] == active["metadata"]["uid"]
    # Replayed: refused, and nothing new is filed.
    assert await post_click(settings, body, headers, secrets_dir) == 409
    again = await asyncio.to_thread(
        cluster.custom.list_namespaced_custom_object,
        "jitaccess.dev",
        "v1alpha1",
        "team-sre",
        "activationapprovals",
    )
    assert len([a for a in again["items"] if a["spec"]["request"] == "chat-alice"]) == 1
    # The requester is told the outcome; the Slack message loses its buttons and says so.
    await eventually(lambda: len([m for m in mailbox.to("alice@example.com") if "chat-alice" in str(m)]) >= 2)
    subjects = [m["Subject"] for m in mailbox.to("alice@example.com") if "chat-alice" in str(m)]
    assert any("was approved" in s for s in subjects) and any("now has access" in s for s in subjects)
    await eventually(lambda: not any(b["type"] == "actions" for b in root["blocks"]))

    def replies() -> list[str]:
        return [m["text"] for m in slack.messages if m.get("thread_ts") == root["ts"]]

    await eventually(lambda: any("now has access" in r for r in replies()), "the thread says it is Active")
    assert any("was approved" in r for r in replies()), replies()


async def test_deny_from_slack_ends_the_request_and_tells_the_requester(
    world, cluster, slack, mailbox, secrets_dir
):
    sandbox, settings = world
    root = await approval_needed(cluster, slack, mailbox, "chat-denied", "chat-deny-grant")
    body, headers = slack.click(root, "UBOB", DENY, int(sandbox.clock.now().timestamp()))
    assert await post_click(settings, body, headers, secrets_dir) == 200
    await cluster.wait_phase("chat-denied", "Denied")
    await eventually(lambda: any("was denied" in m["Subject"] for m in mailbox.to("alice@example.com")))


async def test_each_notice_is_sent_once_across_a_restart_while_sending(world, cluster, slack, mailbox):
    sandbox, settings = world
    mailbox.hold.clear()  # the SMTP server takes the next message but does not answer yet
    stopping = None
    try:
        await cluster.grant("chat-restart", cluster.project(), notify={"slackChannel": CHANNEL})
        await cluster.wait_grant_ready("chat-restart")
        await cluster.request_as("alice@example.com", "chat-restarted", "chat-restart", duration="30m")
        await cluster.wait_phase("chat-restarted", "Active")

        def email_state() -> str | None:
            body = sandbox.reconciler.cache.requests.get(("team-sre", "chat-restarted")) or {}
            ledger = json.loads((body.get("metadata", {}).get("annotations") or {}).get(LEDGER, "{}"))
            return ledger.get("activated", {}).get("channels", {}).get("email", {}).get("state")

        await eventually(lambda: email_state() == "sending")
        outbox = sandbox.reconciler.outbox
        stopping = asyncio.create_task(sandbox.stop_operator())
        # Stopping, the operator cancels the send in flight: the message is in doubt from then on.
        # Its thread still waits for the server's answer, and the operator's loop ends only once
        # its threads have (10 s of SMTP timeout): so the server answers once the send is dropped.
        await eventually(lambda: stopping.done() or not outbox._tasks, "the send in flight was given up")
    finally:
        mailbox.hold.set()  # the message in flight is delivered after all
        if stopping is not None:
            await stopping
    await start(sandbox, settings)
    await eventually(lambda: email_state() == "in-doubt")
    cluster.advance(minutes=31)
    await cluster.wait_phase("chat-restarted", "Expired")
    await eventually(
        lambda: any(
            "has ended" in m["Subject"] for m in mailbox.to("alice@example.com") if "chat-restarted" in str(m)
        )
    )
    await asyncio.sleep(1)  # anything sent twice would arrive by now
    about = [m["Subject"] for m in mailbox.to("alice@example.com") if "chat-restarted" in str(m)]
    # Activated (received while the operator stopped, never resent) and its end: once each.
    assert len(about) == 2 and len(set(about)) == 2, about
    posts = [m for m in slack.messages if "chat-restarted" in json.dumps(m.get("blocks"))]
    assert len(posts) == 2, [p["text"] for p in posts]  # activated (the thread), then expired in it


class Hanging:
    """A server that accepts connections and never answers: SMTP waits for a greeting, HTTP for
    a response, until their timeouts."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()


async def test_dead_mail_and_slack_delay_nothing_else(tmp_path, secrets_dir, mailbox, slack):
    hanging = Hanging()
    received: list[tuple[float, dict]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append((time.monotonic(), json.loads(await request.read())))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/events", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    dead = NotifySettings(
        smtp_host="127.0.0.1",
        smtp_port=hanging.port,
        smtp_security="none",
        slack_token_file=secrets_dir / "slack-token",
        slack_api_url=f"http://127.0.0.1:{hanging.port}/api/",
        slack_channel=CHANNEL,
        webhook_url=f"http://127.0.0.1:{port}/events",
    )
    try:
        async with Sandbox(tmp_path, run_operator=False, tick_s=0.05) as sandbox:
            await sandbox.start_operator(notify=dead)
            cluster = Cluster(sandbox)
            await cluster.grant("dead-ends", cluster.project())
            await cluster.wait_grant_ready("dead-ends")
            latencies, webhook_lags = [], []
            for number in range(3):
                name = f"dead-ends-{number}"
                started = time.monotonic()
                await cluster.request_as("alice@example.com", name, "dead-ends", duration="30m")
                await cluster.wait_phase(name, "Active", timeout_s=20)
                latencies.append(time.monotonic() - started)
                await eventually(
                    lambda name=name: any(e["data"]["request"]["name"] == name for _, e in received)
                )
                webhook_lags.append(
                    max(t for t, e in received if e["data"]["request"]["name"] == name) - started
                )
            outbox = sandbox.reconciler.outbox
            pending = [t.get_name() for t in outbox._tasks if t.get_name().startswith(("email", "slack"))]
            # Seen: now give the dead endpoints up, rather than through the shutdown's grace and
            # their timeouts (the sends' threads return as the hanging server's socket closes).
            await sandbox.in_operator(sandbox.reconciler.stop_notices())
            hanging.close()
    finally:
        hanging.close()
        await runner.cleanup()
    print(
        f"\nwith SMTP and Slack hanging: activation {max(latencies):.2f}s max, CloudEvent {max(webhook_lags):.2f}s max "
        f"after the request (mail and Slack sends still waiting: {len(pending)})"
    )
    # Mail and Slack time out after 10 s per attempt; nothing else waited for them.
    assert pending, "the dead endpoints should still be being tried"
    assert max(latencies) < 8 and max(webhook_lags) < 8


async def test_cloudevents_are_signed_and_google_chat_gets_cards(tmp_path, secrets_dir):
    events: list[tuple[dict, bytes]] = []
    cards: list[tuple[dict, dict]] = []

    async def receive(request: web.Request) -> web.Response:
        events.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    async def chat(request: web.Request) -> web.Response:
        cards.append((dict(request.query), await request.json()))
        return web.json_response({"name": "spaces/AAA/messages/1"})

    app = web.Application()
    app.router.add_post("/events", receive)
    app.router.add_post("/v1/spaces/AAA/messages", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    (secrets_dir / "chat-webhook").write_text(f"http://127.0.0.1:{port}/v1/spaces/AAA/messages?key=k&token=t")
    (secrets_dir / "hmac").write_text("webhook-signing-secret")
    settings = NotifySettings(
        webhook_url=f"http://127.0.0.1:{port}/events",
        webhook_secret_file=secrets_dir / "hmac",
        google_chat_webhook_file=secrets_dir / "chat-webhook",
    )
    try:
        async with Sandbox(tmp_path, run_operator=False, tick_s=0.05) as sandbox:
            await sandbox.start_operator(notify=settings)
            cluster = Cluster(sandbox)
            await cluster.grant("ce-grant", "projects/my-sandbox")
            await cluster.wait_grant_ready("ce-grant")
            await cluster.request_as(
                "alice@example.com", "ce-alice", "ce-grant", duration="30m", justification="<b>INC-1</b>"
            )
            await cluster.wait_phase("ce-alice", "Active")
            await eventually(lambda: events and cards)
    finally:
        await runner.cleanup()
    headers, body = events[0]
    assert headers["Content-Type"] == "application/cloudevents+json"
    event = json.loads(body)
    assert event["specversion"] == "1.0" and event["type"] == "dev.jitaccess.request.activated"
    assert event["source"].endswith("/namespaces/team-sre/activationrequests/ce-alice")
    assert event["data"]["requester"] == "user:alice@example.com" and event["data"]["roles"]
    expected = hmac.new(
        b"webhook-signing-secret", headers["X-Jitaccess-Timestamp"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(headers["X-Jitaccess-Signature"], f"v1={expected}")
    query, card = cards[0]
    assert query["key"] == "k" and query["threadKey"].startswith("jitaccess-")
    shown = json.dumps(card)
    assert "<b>INC-1</b>" not in shown and "&lt;b&gt;INC-1&lt;/b&gt;" in shown


async def test_mail_over_implicit_tls_reaches_mapped_groups(secrets_dir, tmp_path):
    box = Mailbox()
    # TLS from the first byte; aiosmtpd counts only STARTTLS as TLS for AUTH.
    controller = smtp_server(box, secrets_dir, ssl_context=None, auth_require_tls=False)
    groups = tmp_path / "groups.yaml"
    groups.write_text("group:sre-leads@example.com: [lead@example.com, oncall@example.com]\n")
    settings = NotifySettings(
        smtp_host="127.0.0.1",
        smtp_port=controller.port,
        smtp_security="tls",
        smtp_username=SMTP_USER,
        smtp_password_file=secrets_dir / "smtp-password",
        smtp_ca_file=secrets_dir / "tls" / "ca.crt",
        group_addresses_file=groups,
    )
    try:
        async with Sandbox(tmp_path / "sandbox", run_operator=False, tick_s=0.05) as sandbox:
            await sandbox.start_operator(notify=settings)
            cluster = Cluster(sandbox)
            await cluster.grant(
                "tls-mail", "projects/my-sandbox", approval={"approvers": ["group:sre-leads@example.com"]}
            )
            await cluster.wait_grant_ready("tls-mail")
            await cluster.request_as("alice@example.com", "tls-mail-alice", "tls-mail", duration="30m")
            await cluster.wait_phase("tls-mail-alice", "AwaitingApproval")
            await eventually(lambda: box.messages, "mail to the group's readers")
    finally:
        controller.stop()
    assert sorted(box.envelopes[0]) == ["lead@example.com", "oncall@example.com"]
    assert "tls-mail-alice" in box.messages[0].get_body(("plain",)).get_content()
