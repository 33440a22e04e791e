"""The floor of `make bench`: the least an operator on this platform can do per request.

`make bench` measures jitaccess against the floor of its own platform in the same run: the same
sandbox API, the same admission webhooks and identities, the same load, but an operator that
marks each new ActivationRequest Active with one status patch and does nothing else. What
jitaccess costs above that (latency, CPU, API calls) is what it adds; the rest is kopf, the
Kubernetes client, the API server and admission, which any operator here pays.

    python benchmarks/floor_operator.py run <the flags of `jitaccess run`>

It must never write IAM (its writer refuses), never judge a request (admission still does, with
the real rules), and never be deployed: a request it marks Active grants nothing.

What is the same as `jitaccess run`, and why:

- The command line: `jitaccess run`'s own flags, parsed by `jitaccess.cli`, so the bench starts
  both the same way (same kubeconfig and user, same webhook port, certificate and attestation key).
- Admission: the real handlers (`jitaccess.controller.webhooks.register_webhooks`) on a
  `Reconciler` built as `jitaccess.controller.operator.build` builds one (the same `Kube` client,
  grant cache, attestation key and operator username, asked with a SelfSubjectReview at start).
  The handlers read the reconciler's grant cache and its client, so they cannot run apart from a
  reconciler; a copy of them would measure something else. The API-side cost of a create (both
  webhook calls, the stamping, the sealing, the validation) is therefore the same in both modes.
- kopf: the same settings (Events not posted by kopf, reconnect backoff 1 s), the same
  `operate` (worker threads for blocking client calls, cluster-wide watches).
- The status patch goes through the same `Kube` client (the official `kubernetes` client on a
  worker thread) as the real operator's writes: the floor differs in what it does, not in how it
  calls. If the real operator's client gets cheaper, so does the floor's.
- Grants: their status is written by the real `Reconciler.reconcile_grant` (admission refuses a
  request whose grant is not Ready), once per grant change, inline on its watch event.

What differs (all of it is work the real operator does and the floor does not):

- Per request: one status patch `{phase: Active}` when a request without a phase is first
  seen, instead of the lifecycle (`decide`, the Activating status, the IAM write, the sealed
  metadata record, the Active status with conditions, Events, notices, the grant's
  activeRequests count). No approvals watch, no scheduler, no expiry, no sweeper.
- No leader election (`--leader-elect` is ignored; the real operator reads and patches its
  Lease every 2 s), no /metrics and /healthz (`--metrics-port` is ignored), no audit log.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any, cast

import kopf
from kubernetes import client

from jitaccess.api.objects import GROUP, VERSION
from jitaccess.cli import configure_logging, operator_config, parser
from jitaccess.controller.config import OperatorConfig
from jitaccess.controller.handlers import connection_info
from jitaccess.controller.kube import Kube
from jitaccess.controller.operator import kubernetes_configuration, operate, webhook_server
from jitaccess.controller.reconciler import Reconciler
from jitaccess.controller.webhooks import register_webhooks
from jitaccess.iam.writer import IamWriter

log = logging.getLogger("jitaccess.floor")
ACTIVE = {"phase": "Active"}


class NoIam:
    """The floor's IAM writer: there is none, and a call to it is a bug in the floor."""

    async def apply(self, *_: Any, **__: Any) -> Any:
        raise RuntimeError("the floor operator writes no IAM")


class Floor:
    """Marks each new request Active, once: the whole of the floor's reconciliation."""

    def __init__(self, reconciler: Reconciler) -> None:
        self.reconciler = reconciler
        self.marked: set[str] = set()  # uids patched: a watch's echo or a relist is not patched again

    async def request_seen(self, event: kopf.RawEvent) -> None:
        body = event["object"]
        metadata = body.get("metadata") or {}
        uid = str(metadata.get("uid") or "")
        if event.get("type") == "DELETED":
            self.marked.discard(uid)
            return
        if (body.get("status") or {}).get("phase") or metadata.get("deletionTimestamp") or uid in self.marked:
            return
        self.marked.add(uid)
        try:
            await self.reconciler.kube.patch_request_status(metadata["namespace"], metadata["name"], ACTIVE)
        except Exception:
            self.marked.discard(uid)  # not written: the next event of it tries again
            raise

    async def grant_seen(self, event: kopf.RawEvent) -> None:
        body = event["object"]
        name = body["metadata"]["name"]
        if event.get("type") == "DELETED":
            self.reconciler.cache.drop_grant(name)
            return
        if self.reconciler.cache.put_grant(body) is not None:
            await self.reconciler.reconcile_grant(name)  # Ready, written only when it changes


def build_floor(
    settings: OperatorConfig, configuration: client.Configuration
) -> tuple[Floor, kopf.OperatorRegistry]:
    """The floor's reconciler (for admission) and kopf registry, as `operator.build` builds the real one's."""
    if not settings.attestation_key or settings.webhook_port is None:
        raise ValueError(
            "the floor serves the real admission webhooks: give --attestation-key-file and a port"
        )
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize, settings.api_threads)
    kube = Kube(client.ApiClient(configuration), settings.clock)
    reconciler = Reconciler(settings, kube, cast(IamWriter, NoIam()))
    reconciler.scheduler.pause()  # nothing is scheduled: the floor does its work inline
    floor = Floor(reconciler)
    server = webhook_server(settings)
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(configuration)

    @kopf.on.startup(registry=registry)
    async def start(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False
        settings.watching.reconnect_backoff = 1.0
        settings.admission.server = server
        if not reconciler.config.operator_username:
            reconciler.config.operator_username = await kube.who_am_i()
        for body in await kube.list_grants():  # known before any request is admitted
            reconciler.cache.put_grant(body)
            await reconciler.reconcile_grant(body["metadata"]["name"])

    @kopf.on.event(GROUP, VERSION, "activationrequests", registry=registry)
    async def request_seen(event: kopf.RawEvent, **_: Any) -> None:
        await floor.request_seen(event)

    @kopf.on.event(GROUP, VERSION, "eligiblegrants", registry=registry)
    async def grant_seen(event: kopf.RawEvent, **_: Any) -> None:
        await floor.grant_seen(event)

    register_webhooks(registry, reconciler, settings.identity, settings.attestation_key, settings.clock)
    return floor, registry


async def run_floor(settings: OperatorConfig, args: argparse.Namespace) -> None:
    _, registry = build_floor(settings, kubernetes_configuration(args.kubeconfig, args.context))
    await operate(settings, registry)


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command != "run":
        sys.exit("floor_operator.py takes `run` and the flags of `jitaccess run`")
    configure_logging(args.verbose, args.log_format)
    settings = operator_config(args)
    if settings.leader_election or settings.metrics_port is not None:
        log.info("the floor takes no Lease and serves no /metrics: --leader-elect and --metrics-port ignored")
    try:
        asyncio.run(run_floor(settings, args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
