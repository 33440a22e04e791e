"""kopf registration: watch grants and requests, feed the reconciler, run its scheduler.

kopf does what it is best at (listing, watching, reconnecting, logging in); the handlers only
hand each observed object to the reconciler, which decides nothing itself either (`policy`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import kopf
from kubernetes import client

from jitaccess.api.objects import GROUP, VERSION
from jitaccess.controller.metrics import serve_metrics
from jitaccess.controller.reconciler import Reconciler
from jitaccess.controller.slack_actions import serve_slack_actions


def connection_info(configuration: client.Configuration) -> kopf.ConnectionInfo:
    """kopf's credentials from the same kubernetes.client configuration the operator writes with."""
    api_key = configuration.api_key or {}
    bearer = api_key.get("BearerToken") or api_key.get("authorization") or ""
    token = bearer.removeprefix("Bearer ").strip() or None
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        scheme="Bearer" if token else None,
        token=token,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
    )


def build_registry(
    reconciler: Reconciler,
    configuration: client.Configuration,
    webhook_server: kopf.WebhookServer | None = None,
) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(configuration)

    _register_start_and_stop(registry, reconciler, webhook_server)
    _register_watches(registry, reconciler)
    return registry


def _register_start_and_stop(
    registry: kopf.OperatorRegistry, reconciler: Reconciler, webhook_server: kopf.WebhookServer | None
) -> None:
    @kopf.on.startup(registry=registry)
    async def start_scheduler(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        settings.posting.enabled = False  # Events are posted by the reconciler, one per transition
        settings.watching.reconnect_backoff = 1.0
        if webhook_server is not None:
            settings.admission.server = webhook_server
        if not reconciler.config.operator_username:
            reconciler.config.operator_username = await reconciler.kube.who_am_i()
        await reconciler.load_grants()  # before any request is judged (a restart must revoke nothing)
        reconciler.health.grants_loaded = True
        memo.heartbeat = asyncio.create_task(reconciler.health.beat(), name="jitaccess-heartbeat")
        if webhook_server is not None:
            reconciler.health.webhook = (reconciler.config.webhook_host, reconciler.config.webhook_port or 0)
        if reconciler.config.metrics_port is not None:
            memo.metrics = await serve_metrics(
                reconciler, reconciler.config.metrics_port, reconciler.config.metrics_host
            )
        notify = reconciler.config.notify
        if reconciler.slack_actions is not None and notify.slack_actions_port is not None:
            memo.slack_actions = await serve_slack_actions(
                reconciler.slack_actions,
                notify.slack_actions_port,
                notify.slack_actions_host,
                notify.slack_actions_cert_dir,
            )
        await _lead_or_stand_by(reconciler, memo)

    @kopf.on.cleanup(registry=registry)
    async def stop_scheduler(memo: kopf.Memo, **_: Any) -> None:
        reconciler.scheduler.pause()
        reconciler.health.scheduler = None
        await _stop(memo, "elector", "sweeper", "scheduler", "heartbeat")
        await reconciler.recorder.flush()
        await reconciler.stop_notices(grace_s=5.0)  # what is being sent may finish; the rest stays queued
        if reconciler.elector is not None:
            await reconciler.elector.release()  # after the work stopped: the successor starts at once
        for server in ("metrics", "slack_actions"):
            if memo.get(server) is not None:
                await memo[server].cleanup()
        await reconciler.kube.http.close()


async def _lead_or_stand_by(reconciler: Reconciler, memo: kopf.Memo) -> None:
    """Reconcile now, or (with leader election) only while holding the Lease; watching and
    admission go on either way."""

    async def lead() -> None:
        reconciler.scheduler.resume()
        reconciler.resync()
        memo.scheduler = asyncio.create_task(reconciler.scheduler.run(), name="jitaccess-scheduler")
        reconciler.health.scheduler = memo.scheduler
        if reconciler.sweeper is not None:
            memo.sweeper = asyncio.create_task(reconciler.sweeper.run(), name="jitaccess-sweeper")

    async def stand_by() -> None:
        reconciler.scheduler.pause()  # first: nothing new starts, whatever the cancellation does
        reconciler.health.scheduler = None
        await _stop(memo, "sweeper", "scheduler")
        await reconciler.stop_notices()

    if reconciler.elector is None:
        await lead()
    else:
        memo.elector = asyncio.create_task(
            reconciler.elector.run(lead, stand_by), name="jitaccess-leader-election"
        )


def _register_watches(registry: kopf.OperatorRegistry, reconciler: Reconciler) -> None:
    """Every change of the three resources goes into the reconciler's cache, which schedules work."""

    @kopf.on.event(GROUP, VERSION, "activationrequests", registry=registry)
    async def request_seen(event: kopf.RawEvent, **_: Any) -> None:
        body = event["object"]
        if event.get("type") == "DELETED":
            reconciler.forget_request(body)
        else:
            reconciler.observe_request(body)

    @kopf.on.event(GROUP, VERSION, "eligiblegrants", registry=registry)
    async def grant_seen(event: kopf.RawEvent, **_: Any) -> None:
        body = event["object"]
        if event.get("type") == "DELETED":
            reconciler.forget_grant(body["metadata"]["name"])
        else:
            reconciler.observe_grant(body)

    @kopf.on.event(GROUP, VERSION, "activationapprovals", registry=registry)
    async def approval_seen(event: kopf.RawEvent, **_: Any) -> None:
        body = event["object"]
        if event.get("type") == "DELETED":
            reconciler.forget_approval(body)
        else:
            reconciler.observe_approval(body)


async def _stop(memo: kopf.Memo, *names: str) -> None:
    for name in names:
        task = memo.get(name)
        if task is not None:
            memo[name] = None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
