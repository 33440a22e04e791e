"""An insider attacks notices and Slack approvals, through the real endpoint, the sandbox API and
the Slack stand-in. Each test asserts the SAFE behaviour: it fails while the hole is there."""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlencode

import pytest
import pytest_asyncio
from aiohttp import web
from kubernetes.client import ApiException

from jitaccess.controller.channels.setup import NotifySettings
from jitaccess.controller.channels.slack import APPROVE, DENY
from jitaccess.controller.outbox import LEDGER
from jitaccess.policy.admission import CHAT_IDENTITY, IdentitySettings
from jitaccess_sandbox.runner import Sandbox
from jitaccess_sandbox.slack import SlackStandIn
from tests.integration.conftest import GROUP, VERSION, Cluster
from tests.integration.test_chat_notifications import (  # noqa: F401  (fixtures)
    CHANNEL,
    eventually,
    free_port,
    mailbox,
    messages_about,
    notify_settings,
    post_click,
    secrets_dir,
)

pytestmark = [pytest.mark.integration, pytest.mark.sandbox_api, pytest.mark.asyncio(loop_scope="module")]
EVIL_CHANNEL = "C0ATTACKER"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def slack():
    stand_in = await SlackStandIn().start()
    stand_in.channels.add(EVIL_CHANNEL)
    stand_in.add_user("UBOB", "bob@example.com")
    stand_in.add_user("UALICE", "Alice@example.com")
    stand_in.add_user("UALICEUP", "ALICE@EXAMPLE.COM")
    stand_in.add_user("UALICEPLUS", "alice+slack@example.com")  # Alice's second Slack account
    stand_in.add_user("UKELVIN", "\u212aate@example.com")  # KELVIN SIGN K: not Kate
    stand_in.add_user("UCAROL", "carol@example.com")
    stand_in.add_user("UGONE", "bob@example.com", deleted=True)
    stand_in.add_user("UNOMAIL", None)
    yield stand_in
    await stand_in.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory, secrets_dir, mailbox, slack):  # noqa: F811
    async with Sandbox(tmp_path_factory.mktemp("attacks"), run_operator=False, tick_s=0.05) as sandbox:
        settings = notify_settings(secrets_dir, mailbox, slack)
        await sandbox.start_operator(notify=settings, identity=IdentitySettings(chat_approvals=True))
        yield sandbox, settings


@pytest_asyncio.fixture(loop_scope="module")
async def cluster(world):
    return Cluster(world[0])


def now_s(world) -> int:
    return int(world[0].clock.now().timestamp())


def value_of(root: dict) -> dict:
    (button,) = [
        e
        for b in root["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == APPROVE
    ]
    return json.loads(button["value"])


def crafted(slack: SlackStandIn, value, user: str, action: str, ts: int, team: str | None = None):
    """A click Slack signed whose button value is `value` (what a swapped value would be)."""
    payload = {
        "type": "block_actions",
        "team": {"id": team or slack.team_id},
        "user": {"id": user},
        "channel": {"id": CHANNEL},
        "message": {"ts": "1.1"},
        "actions": [
            {
                "action_id": action,
                "block_id": "jitaccess-decision",
                "value": value if isinstance(value, str) else json.dumps(value),
            }
        ],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return body, slack.sign(body, ts)


async def approvals_for(cluster: Cluster, request: str, namespace: str = "team-sre") -> list[dict]:
    found = await asyncio.to_thread(
        cluster.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, "activationapprovals"
    )
    return [a for a in found["items"] if a["spec"]["request"] == request]


async def told_to(slack: SlackStandIn, user: str, before: int) -> str:
    await eventually(lambda: len([e for e in slack.ephemeral if e["user"] == user]) > before, f"{user} told")
    return [e for e in slack.ephemeral if e["user"] == user][-1]["text"]


def ephemeral_count(slack: SlackStandIn, user: str) -> int:
    return len([e for e in slack.ephemeral if e["user"] == user])


async def waiting(cluster, slack, mailbox, name: str, grant: str, approvers: list[str], **grant_spec):
    await cluster.grant(
        grant,
        cluster.project(),
        approval={"approvers": approvers},
        notify={"slackChannel": CHANNEL},
        **grant_spec,
    )
    await cluster.wait_grant_ready(grant)
    await cluster.request_as("alice@example.com", name, grant, duration="30m")
    await cluster.wait_phase(name, "AwaitingApproval")
    await eventually(lambda: messages_about(slack, name), f"Slack message about {name}")
    return messages_about(slack, name)[0]


async def click_and_check_refused(
    world, cluster, slack, name, body, headers, user, namespace="team-sre", phase_after="AwaitingApproval"
):
    before = ephemeral_count(slack, user)
    status = await post_click(world[1], body, headers, world[1].slack_actions_cert_dir.parent)
    assert status < 500, f"HTTP {status}"
    if status == 200:
        text = await told_to(slack, user, before)
        assert text.startswith("Not recorded"), text
    await asyncio.sleep(0.3)
    assert not [a for a in await approvals_for(cluster, name, namespace) if "slack" in a["metadata"]["name"]]
    body_now = await cluster.get(name, namespace)
    assert body_now["status"]["phase"] == phase_after


# -- who approves ------------------------------------------------------------------------------------


async def test_requester_cannot_approve_own_request_from_slack_in_any_casing(world, cluster, slack, mailbox):
    root = await waiting(cluster, slack, mailbox, "atk-case", "atk-case-g", ["user:bob@example.com"])
    body, headers = slack.click(root, "UALICEUP", APPROVE, now_s(world))
    await click_and_check_refused(world, cluster, slack, "atk-case", body, headers, "UALICEUP")


async def test_plus_addressed_second_slack_account_cannot_self_approve_under_domain_approvers(
    world,
    cluster,
    slack,
    mailbox,
):
    """alice+slack@example.com reaches Alice's own mailbox, so she can verify a second Slack
    account with it; `domain:example.com` approvers then let her approve her own request."""
    root = await waiting(cluster, slack, mailbox, "atk-plus", "atk-plus-g", ["domain:example.com"])
    body, headers = slack.click(root, "UALICEPLUS", APPROVE, now_s(world))
    await click_and_check_refused(world, cluster, slack, "atk-plus", body, headers, "UALICEPLUS")


async def test_unicode_lookalike_slack_email_cannot_approve_as_another(world, cluster, slack, mailbox):
    root = await waiting(cluster, slack, mailbox, "atk-kelvin", "atk-kelvin-g", ["user:kate@example.com"])
    body, headers = slack.click(root, "UKELVIN", APPROVE, now_s(world))
    await click_and_check_refused(world, cluster, slack, "atk-kelvin", body, headers, "UKELVIN")


async def test_deleted_and_mailless_slack_users_cannot_decide(world, cluster, slack, mailbox):
    root = await waiting(cluster, slack, mailbox, "atk-gone", "atk-gone-g", ["user:bob@example.com"])
    for user in ("UGONE", "UNOMAIL"):
        body, headers = slack.click(root, user, APPROVE, now_s(world))
        await click_and_check_refused(world, cluster, slack, "atk-gone", body, headers, user)


async def test_nobody_but_the_operator_can_file_a_chat_identity_approval(world, cluster, slack, mailbox):
    await waiting(cluster, slack, mailbox, "atk-forge", "atk-forge-g", ["user:carol@example.com"])
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ActivationApproval",
        "metadata": {
            "name": "bob-as-carol",
            "namespace": "team-sre",
            "annotations": {CHAT_IDENTITY: f"slack:{slack.team_id}/UCAROL"},
        },
        "spec": {"request": "atk-forge", "decision": "Approve", "approver": "user:carol@example.com"},
    }
    with pytest.raises(ApiException) as refused:
        await asyncio.to_thread(
            cluster.as_user("bob@example.com").create_namespaced_custom_object,
            GROUP,
            VERSION,
            "team-sre",
            "activationapprovals",
            body,
        )
    assert refused.value.status in (400, 403, 422)


# -- what is approved ---------------------------------------------------------------------------------


async def test_swapped_button_values_are_refused(world, cluster, slack, mailbox):
    shown = await waiting(cluster, slack, mailbox, "atk-shown", "atk-swap-g", ["user:bob@example.com"])
    # Another request bob is NOT an approver of, in the other namespace.
    await cluster.grant("atk-other-g", cluster.project(), approval={"approvers": ["user:carol@example.com"]})
    await cluster.wait_grant_ready("atk-other-g")
    await cluster.request_as(
        "alice@example.com", "atk-other", "atk-other-g", namespace="default", duration="30m"
    )
    other = await cluster.wait_phase("atk-other", "AwaitingApproval", namespace="default")
    good = value_of(shown)
    cases = [
        (
            {**good, "namespace": "default", "name": "atk-other", "uid": other["metadata"]["uid"]},
            "atk-other",
            "default",
        ),
        ({**good, "uid": "00000000-0000-0000-0000-000000000000"}, "atk-shown", "team-sre"),
        ({**good, "digest": "0" * 64}, "atk-shown", "team-sre"),
    ]
    for number, (value, name, namespace) in enumerate(cases):
        body, headers = crafted(slack, value, "UBOB", APPROVE, now_s(world) + number)
        await click_and_check_refused(world, cluster, slack, name, body, headers, "UBOB", namespace)


async def test_slack_cannot_approve_or_deny_away_a_break_glass_review(world, cluster, slack, mailbox):
    glass = {
        "allowed": True,
        "maxDuration": "1h",
        "reviewers": ["user:bob@example.com"],
        "reviewWithin": "24h",
    }
    await cluster.grant(
        "atk-glass-g",
        cluster.project(),
        breakGlass=glass,
        roles=["roles/compute.admin"],
        notify={"slackChannel": CHANNEL},
    )
    await cluster.wait_grant_ready("atk-glass-g")
    await cluster.request_as("alice@example.com", "atk-glass", "atk-glass-g", breakGlass=True, duration="30m")
    active = await cluster.wait_phase("atk-glass", "Active")
    value = {"namespace": "team-sre", "name": "atk-glass", "uid": active["metadata"]["uid"], "digest": "x"}
    for number, action in enumerate((APPROVE, DENY)):
        body, headers = crafted(slack, value, "UBOB", action, now_s(world) + 10 + number)
        await click_and_check_refused(
            world, cluster, slack, "atk-glass", body, headers, "UBOB", phase_after="Active"
        )
    reviewed = next(
        c for c in (await cluster.get("atk-glass"))["status"]["conditions"] if c["type"] == "Reviewed"
    )
    assert reviewed["status"] == "False"


async def test_replays_forgeries_and_other_workspaces_file_nothing(world, cluster, slack, mailbox):
    root = await waiting(cluster, slack, mailbox, "atk-replay", "atk-replay-g", ["user:bob@example.com"])
    settings, certs = world[1], world[1].slack_actions_cert_dir.parent
    body, headers = slack.click(root, "UBOB", DENY, now_s(world) + 20)
    other_body, other = slack.click(root, "UBOB", APPROVE, now_s(world) + 21, team_id="T0ELSEWHERE")
    assert await post_click(settings, body, headers, certs) == 200
    await cluster.wait_phase("atk-replay", "Denied")
    variants = [
        headers,
        {**headers, "X-Slack-Signature": " " + headers["X-Slack-Signature"] + " "},
        {**headers, "X-Slack-Signature": headers["X-Slack-Signature"].upper()},
        {**headers, "X-Slack-Request-Timestamp": " " + headers["X-Slack-Request-Timestamp"]},
        {**headers, "X-Slack-Request-Timestamp": "0" + headers["X-Slack-Request-Timestamp"]},
    ]
    for variant in variants:
        assert await post_click(settings, body, variant, certs) in (401, 409), variant
    assert await post_click(settings, body + b" ", headers, certs) == 401
    assert await post_click(settings, other_body, other, certs) == 403
    assert len(await approvals_for(cluster, "atk-replay")) == 1


async def test_oversized_and_malformed_signed_payloads_do_not_break_the_endpoint(world, cluster, slack):
    settings, certs = world[1], world[1].slack_actions_cert_dir.parent
    big = b"payload=" + b"a" * (80 * 1024)
    assert await post_click(settings, big, slack.sign(big, now_s(world)), certs) == 413
    statuses = []
    for number, value in enumerate(
        [
            "not json",
            "[]",
            json.dumps({"namespace": 1}),
            "[" * 20000 + "]" * 20000,
            json.dumps({"namespace": "team-sre", "name": "../../x", "uid": "u", "digest": "d"}),
        ]
    ):
        body, headers = crafted(slack, value, "UBOB", APPROVE, now_s(world) + 30 + number)
        statuses.append(await post_click(settings, body, headers, certs))
    # and the endpoint still works
    root = await waiting(cluster, slack, mailbox, "atk-after", "atk-after-g", ["user:bob@example.com"])
    body, headers = slack.click(root, "UBOB", APPROVE, now_s(world) + 40)
    assert await post_click(settings, body, headers, certs) == 200
    await cluster.wait_phase("atk-after", "Active")
    assert all(s < 500 for s in statuses), statuses


# -- what is sent, and where ------------------------------------------------------------------------


async def test_justification_cannot_phish_in_slack_or_inject_mail_headers(world, cluster, slack, mailbox):
    await cluster.grant(
        "atk-phish-g",
        cluster.project(),
        approval={"approvers": ["user:bob@example.com"]},
        notify={"slackChannel": CHANNEL},
    )
    await cluster.wait_grant_ready("atk-phish-g")
    hostile = (
        "INC-1 <https://evil.example/approve|Approve here> <!channel> *urgent* Bcc: mallory@evil.example"
    )
    await cluster.request_as(
        "alice@example.com", "atk-phish", "atk-phish-g", duration="30m", justification=hostile
    )
    await cluster.wait_phase("atk-phish", "AwaitingApproval")
    await eventually(
        lambda: messages_about(slack, "atk-phish") and [m for m in mailbox.messages if "atk-phish" in str(m)]
    )
    root = messages_about(slack, "atk-phish")[0]
    assert "evil.example" not in root["text"]
    for block in root["blocks"]:
        for part in [block.get("text") or {}, *(block.get("fields") or []), *(block.get("elements") or [])]:
            if "evil.example" in json.dumps(part):
                assert part.get("type") == "plain_text", part
    for message, rcpts in zip(mailbox.messages, mailbox.envelopes, strict=True):
        if "atk-phish" in str(message):
            assert "mallory@evil.example" not in rcpts and message["Bcc"] is None


async def test_a_request_cannot_choose_where_notices_go(world, cluster, slack, mailbox):
    await cluster.grant("atk-route-g", cluster.project(), approval={"approvers": ["user:bob@example.com"]})
    await cluster.wait_grant_ready("atk-route-g")
    try:
        await cluster.request_as(
            "alice@example.com",
            "atk-route",
            "atk-route-g",
            duration="30m",
            notify={"slackChannel": EVIL_CHANNEL, "emails": ["mallory@evil.example"]},
        )
    except ApiException as refused:
        assert refused.status in (400, 403, 422)
        return
    await cluster.wait_phase("atk-route", "AwaitingApproval")
    await asyncio.sleep(1)
    assert not [m for m in slack.messages if m["channel"] == EVIL_CHANNEL]
    assert not [r for r in mailbox.envelopes if "mallory@evil.example" in r]


async def test_a_requester_cannot_forge_or_wipe_the_notice_ledger(world, cluster, slack, mailbox):
    await waiting(cluster, slack, mailbox, "atk-ledger", "atk-ledger-g", ["user:bob@example.com"])
    forged = json.dumps(
        {"activated": {"notice": {}, "channels": {"email": {"state": "sent"}, "slack": {"state": "sent"}}}}
    )
    for user in ("alice@example.com", "bob@example.com"):
        for tampered in ({LEDGER: forged}, {LEDGER: None}, {LEDGER: "{}"}):
            with pytest.raises(ApiException) as refused:
                await asyncio.to_thread(
                    cluster.as_user(user).patch_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    "team-sre",
                    "activationrequests",
                    "atk-ledger",
                    {"metadata": {"annotations": tampered}},
                )
            assert refused.value.status in (400, 403, 422)
    with pytest.raises(ApiException):  # admins included
        await cluster.patch_metadata("atk-ledger", {"annotations": {LEDGER: forged}})


async def test_notice_bookkeeping_is_forgotten_when_the_request_is_gone(world, cluster, slack, mailbox):
    sandbox = world[0]
    await cluster.grant("atk-mem-g", cluster.project(), notify={"slackChannel": CHANNEL})
    await cluster.wait_grant_ready("atk-mem-g")
    for number in range(3):
        await cluster.request_as("alice@example.com", f"atk-mem-{number}", "atk-mem-g", duration="30m")
        await cluster.wait_phase(f"atk-mem-{number}", "Active")
    await asyncio.sleep(1)
    for number in range(3):
        await cluster.delete(f"atk-mem-{number}", user="alice@example.com")
        await cluster.wait_gone(f"atk-mem-{number}")
    await asyncio.sleep(2)
    outbox = sandbox.reconciler.outbox
    kept = [key for key in (*outbox._locks, *outbox._ledgers) if key[1].startswith("atk-mem-")]
    assert not kept, f"per-request notice state kept after deletion: {sorted(set(kept))}"


# -- secrets ---------------------------------------------------------------------------------------


async def test_google_chat_webhook_key_never_lands_in_the_ledger_or_logs(tmp_path, secrets_dir, caplog):  # noqa: F811
    hits: list[str] = []

    async def chat(request: web.Request) -> web.Response:
        hits.append(str(request.url))
        return web.Response(status=503, text="try later")

    app = web.Application()
    app.router.add_post("/v1/spaces/AAA/messages", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    key, token = "AIzaSECRETKEY", "SECRETTOKEN"
    (secrets_dir / "chat-webhook-leak").write_text(
        f"http://127.0.0.1:{port}/v1/spaces/AAA/messages?key={key}&token={token}"
    )
    caplog.set_level(logging.INFO)
    try:
        async with Sandbox(tmp_path, run_operator=False, tick_s=0.05) as sandbox:
            await sandbox.start_operator(
                notify=NotifySettings(google_chat_webhook_file=secrets_dir / "chat-webhook-leak")
            )
            sandbox.reconciler.outbox.backoff_s = 0.01
            cluster = Cluster(sandbox)
            await cluster.grant("leak-g", "projects/my-sandbox")
            await cluster.wait_grant_ready("leak-g")
            await cluster.request_as("alice@example.com", "leak", "leak-g", duration="30m")
            await cluster.wait_phase("leak", "Active")

            def ledger() -> str:
                body = sandbox.reconciler.cache.requests.get(("team-sre", "leak")) or {}
                return (body.get("metadata", {}).get("annotations") or {}).get(LEDGER, "")

            await eventually(lambda: '"failed"' in ledger(), "the Google Chat notice failed", timeout_s=30)
            shown = ledger() + json.dumps(await cluster.get("leak"))
    finally:
        await runner.cleanup()
    assert hits
    # The operator's logs (the stand-in Chat server's own access log is the test's, not ours).
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    assert key not in shown and token not in shown, f"readable by anyone with view: {shown}"
    assert key not in logged and token not in logged, "the webhook key was logged"
