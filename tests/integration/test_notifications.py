"""Notices reach a real HTTP receiver on loopback as CloudEvents, in order, retried until sent."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import pytest_asyncio
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from jitaccess.controller.channels.setup import NotifySettings
from jitaccess.controller.metrics import ReconcilerCollector
from jitaccess.controller.outbox import LEDGER
from jitaccess_sandbox.runner import Sandbox
from tests.integration.conftest import Cluster
from tests.integration.test_processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


class Receiver:
    def __init__(self, failures: int = 0) -> None:
        self.events: list[dict] = []
        self.calls = 0
        self.failures = failures

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        if self.calls <= self.failures:
            return web.Response(status=500)
        self.events.append(json.loads(await request.read()))
        return web.Response(status=204)


@pytest_asyncio.fixture(loop_scope="module")
async def receiver():
    state = Receiver()
    app = web.Application()
    app.router.add_post("/hook", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state.url = f"http://127.0.0.1:{port}/hook"
    yield state
    await runner.cleanup()


async def until(check, timeout_s=60, what=lambda: ""):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out: {what()}")


def kinds(receiver: Receiver) -> list[str]:
    return [event["type"].removeprefix("dev.jitaccess.request.") for event in receiver.events]


async def test_a_failed_delivery_is_retried_and_recorded_once_sent(receiver, tmp_path):
    receiver.events.clear()
    receiver.calls, receiver.failures = 0, 1
    async with Sandbox(tmp_path, run_operator=False, tick_s=0.05) as sandbox:
        await sandbox.start_operator(notify=NotifySettings(webhook_url=receiver.url))
        cluster = Cluster(sandbox)
        await cluster.grant("retried", "projects/my-sandbox")
        await cluster.wait_grant_ready("retried")
        await cluster.request_as("alice@example.com", "retried-alice", "retried", duration="30m")
        await cluster.wait_phase("retried-alice", "Active")
        await until(lambda: kinds(receiver) == ["activated"])
        body = await cluster.get("retried-alice")
        ledger = json.loads(body["metadata"]["annotations"][LEDGER])
        await until(lambda: sandbox.reconciler.outbox.outcomes["webhook", "activated", "sent"] == 1)
        exposed = generate_latest_for(sandbox.reconciler)
    assert receiver.calls == 2  # one refused (HTTP 500), then sent
    assert ledger["activated"]["notice"]["kind"] == "activated"
    assert 'jitaccess_notifications_total{channel="webhook",kind="activated",outcome="sent"} 1.0' in exposed


def generate_latest_for(reconciler) -> str:
    registry = CollectorRegistry()
    registry.register(ReconcilerCollector(reconciler))
    return generate_latest(registry).decode()


async def test_an_approved_request_notifies_each_step(receiver, tmp_path):
    async with Sandbox(tmp_path, run_operator=False, tick_s=0.05) as sandbox:
        await sandbox.start_operator(notify=NotifySettings(webhook_url=receiver.url))
        cluster = Cluster(sandbox)
        await cluster.grant(
            "notified", "projects/my-sandbox", approval={"approvers": ["group:sre-leads@example.com"]}
        )
        await asyncio.sleep(0.3)
        await cluster.request_as("alice@example.com", "notified-alice", "notified", duration="30m")
        await cluster.wait_phase("notified-alice", "AwaitingApproval")
        await cluster.decide("bob@example.com", "notified-alice")
        await cluster.wait_phase("notified-alice", "Active")
        cluster.advance(minutes=31)
        await cluster.wait_phase("notified-alice", "Expired")
        await until(lambda: kinds(receiver)[-1:] == ["expired"])
    assert kinds(receiver) == ["approval-needed", "approved", "activated", "expired"]
    activated = receiver.events[2]["data"]
    assert activated["requester"] == "user:alice@example.com" and activated["approvers"] == [
        "user:bob@example.com"
    ]
    assert activated["request"]["name"] == "notified-alice" and activated["resource"] == "projects/my-sandbox"


async def test_break_glass_alerts_the_notifier_and_its_review_too(receiver, tmp_path):
    receiver.events.clear()
    async with Sandbox(tmp_path, run_operator=False, tick_s=0.05) as sandbox:
        await sandbox.start_operator(notify=NotifySettings(webhook_url=receiver.url))
        cluster = Cluster(sandbox)
        glass = {"allowed": True, "reviewers": ["group:sre-leads@example.com"]}
        await cluster.grant("notified-glass", "projects/my-sandbox", breakGlass=glass)
        await cluster.wait_grant_ready("notified-glass")
        await cluster.request_as("alice@example.com", "glass-notified", "notified-glass", breakGlass=True)
        await cluster.wait_phase("glass-notified", "Active")
        await cluster.decide("bob@example.com", "glass-notified", "Review")
        await until(lambda: kinds(receiver)[-1:] == ["reviewed"])
    assert kinds(receiver) == ["break-glass", "reviewed"]
    assert "group:sre-leads@example.com must review it by" in receiver.events[0]["data"]["message"]


async def test_a_deleted_request_is_still_told_of_its_end(receiver, tmp_path):
    receiver.events.clear()
    receiver.calls, receiver.failures = 0, 0
    async with Sandbox(tmp_path, run_operator=False, tick_s=0.05) as sandbox:
        await sandbox.start_operator(notify=NotifySettings(webhook_url=receiver.url))
        cluster = Cluster(sandbox)
        await cluster.grant("deleted-told", "projects/my-sandbox")
        await cluster.wait_grant_ready("deleted-told")
        await cluster.request_as("alice@example.com", "deleted-alice", "deleted-told", duration="30m")
        await cluster.wait_phase("deleted-alice", "Active")
        await cluster.delete("deleted-alice", user="alice@example.com")
        await cluster.wait_gone("deleted-alice")
        await until(lambda: kinds(receiver) == ["activated", "revoked"], what=lambda: kinds(receiver))
        assert receiver.events[1]["data"]["reason"] == "Deleted"
        await until(lambda: not sandbox.reconciler.outbox._known)  # nothing kept for it once told
