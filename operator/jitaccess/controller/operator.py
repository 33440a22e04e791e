"""Assemble and run the operator: Kubernetes client, IAM writer, reconciler, kopf."""

from __future__ import annotations

import asyncio
import logging
import socket
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kopf
from kubernetes import client

from jitaccess.controller.channels import read_secret
from jitaccess.controller.channels.setup import build_channels
from jitaccess.controller.config import OperatorConfig
from jitaccess.controller.handlers import build_registry
from jitaccess.controller.kube import Kube
from jitaccess.controller.leader import LeaderElector
from jitaccess.controller.reconciler import Reconciler
from jitaccess.controller.slack_actions import SlackActions
from jitaccess.controller.tls import make_serving_certificate
from jitaccess.controller.webhooks import register_webhooks
from jitaccess.iam.batcher import BatchingWriter
from jitaccess.iam.ratelimit import TokenBucket
from jitaccess.iam.store import PolicyStore
from jitaccess.iam.writer import IamWriter, PolicyWriter
from jitaccess.kubeconfig import kubernetes_configuration as kubernetes_configuration  # where callers look

log = logging.getLogger(__name__)
# What kopf accepts as stop and ready flags.
Flag = asyncio.Event | threading.Event


def build(
    settings: OperatorConfig, configuration: client.Configuration
) -> tuple[Reconciler, kopf.OperatorRegistry]:
    # One pooled connection per worker thread: past the pool (cpu_count x 5 by default) urllib3
    # discards connections, and every call beyond it pays a new TLS handshake.
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize, settings.api_threads)
    kube = Kube(client.ApiClient(configuration), settings.clock)
    store = PolicyStore(settings.iam_endpoint)
    elector = (
        LeaderElector(
            client.CoordinationV1Api(kube.api_client),
            settings.leader_election_namespace,
            settings.leader_election_lease,
            settings.leader_election_identity or socket.gethostname(),
            settings.lease_clock,
            settings.lease_timings,
        )
        if settings.leader_election
        else None
    )
    reconciler = Reconciler(
        settings,
        kube,
        iam_writer(settings, store),
        channels=build_channels(settings.notify, settings.clock),
        elector=elector,
        store=store,
    )
    reconciler.slack_actions = slack_actions(settings, kube)
    if not settings.attestation_key:
        raise ValueError(
            "an attestation key is required (--attestation-key-file); without one nothing admitted can be "
            "verified. --insecure-no-admission runs without admission, and then grants nothing"
        )
    registry = build_registry(reconciler, configuration, webhook_server(settings))
    if settings.webhook_port is not None:
        register_webhooks(registry, reconciler, settings.identity, settings.attestation_key, settings.clock)
    return reconciler, registry


def slack_actions(settings: OperatorConfig, kube: Kube) -> SlackActions | None:
    """The Approve/Deny endpoint, when Slack's clicks are accepted (a signing secret and a port)."""
    notify = settings.notify
    if notify.slack_actions_port is None:
        return None
    secret = read_secret(str(notify.slack_signing_secret_file or ""), "--slack-signing-secret-file")
    client = notify.slack_client()
    if secret is None or client is None or not notify.slack_team_id:
        raise ValueError(
            "--slack-actions-port needs --slack-signing-secret-file, --slack-token-file and --slack-team-id"
        )
    return SlackActions(kube, client, secret, settings.clock, notify.slack_team_id)


def iam_writer(settings: OperatorConfig, store: PolicyStore) -> IamWriter:
    if settings.iam_write_mode == "per-activation":
        return PolicyWriter(store, serialise=False)
    if settings.iam_write_mode != "batched":
        raise ValueError(
            f"--iam-write-mode must be batched or per-activation, not {settings.iam_write_mode!r}"
        )
    return BatchingWriter(
        store, bucket=TokenBucket(settings.iam_writes_per_s), window_s=settings.iam_batch_window_s
    )


def webhook_server(settings: OperatorConfig) -> kopf.WebhookServer | None:
    """HTTPS for the admission webhooks: the certificate in --webhook-cert-dir, or one made here."""
    if settings.webhook_port is None:
        return None
    directory = settings.webhook_cert_dir or Path(tempfile.mkdtemp(prefix="jitaccess-webhook-"))
    if (directory / "tls.crt").exists() and (directory / "tls.key").exists():
        certfile, keyfile = directory / "tls.crt", directory / "tls.key"
        ca = (directory / "ca.crt").read_bytes() if (directory / "ca.crt").exists() else None
    else:
        made = make_serving_certificate(directory, [settings.webhook_host, "localhost"])
        certfile, keyfile, ca = made.certfile, made.keyfile, made.ca_pem
    return kopf.WebhookServer(
        addr=settings.webhook_host,
        port=settings.webhook_port,
        host=settings.webhook_host,
        certfile=str(certfile),
        pkeyfile=str(keyfile),
        cadata=ca,
    )


async def run_operator(settings: OperatorConfig, configuration: client.Configuration) -> None:
    """Run until the process is signalled."""
    _, registry = build(settings, configuration)
    await operate(settings, registry)


async def operate(
    settings: OperatorConfig,
    registry: kopf.OperatorRegistry,
    *,
    stop_flag: Flag | None = None,
    ready_flag: Flag | None = None,
) -> None:
    """Run a built operator until `stop_flag` is set (or the process is signalled): kopf's own
    embedding flags, for a caller that runs it in a thread of its own."""
    # Every Kubernetes and IAM call is a blocking client call on a worker thread.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=max(8, settings.api_threads), thread_name_prefix="api")
    )
    await kopf.operator(
        registry=registry,
        standalone=True,
        clusterwide=settings.all_namespaces,
        namespaces=() if settings.all_namespaces else settings.namespaces,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
    )
