"""The flags of `jitaccess run`, in one table: each is an argparse option, an environment variable
and (where it configures the operator) the `OperatorConfig` field it sets.

A flag written once cannot be dropped from one of three places by an edit of another: the
parser and the environment come from this table, and `tests/unit/test_run_flags.py` checks that
every flag that names a field reaches it and that docs/operations.md lists every flag and its
variable.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TRUE = ("1", "true", "yes")


@dataclass(frozen=True)
class Flag:
    name: str  # --iam-endpoint
    help: str
    default: Any = None
    type: Callable[[str], Any] | None = None
    repeat: bool = False  # may be given many times; its variable is a comma- or space-separated list
    switch: bool = False  # on when given; its variable is on when 1, true or yes
    choices: tuple[str, ...] | None = None
    env: str = ""  # the environment variable, when not JITACCESS_<NAME>
    field: str | None = None  # the OperatorConfig field it sets, when it sets one directly
    short: str = ""  # -v

    @property
    def variable(self) -> str:
        return self.env or "JITACCESS_" + self.name.removeprefix("--").upper().replace("-", "_")

    @property
    def dest(self) -> str:
        return self.name.removeprefix("--").replace("-", "_")

    def from_environment(self) -> Any:
        """The default: the environment variable when set, else the table's default."""
        raw = os.environ.get(self.variable)
        if raw is None or raw == "":
            return [] if self.repeat else self.default
        if self.switch:
            return raw.lower() in _TRUE
        if self.repeat:
            return [item for item in raw.replace(",", " ").split() if item]
        return self.type(raw) if self.type else raw


RUN_FLAGS: tuple[Flag, ...] = (
    Flag(
        "--iam-endpoint",
        "Cloud Resource Manager endpoint; http:// (the emulator) uses anonymous credentials",
        field="iam_endpoint",
    ),
    Flag(
        "--namespace",
        "serve requests in this namespace (repeatable); default: all namespaces",
        repeat=True,
        env="JITACCESS_NAMESPACES",
    ),
    Flag("--all-namespaces", "serve requests in every namespace", switch=True),
    Flag(
        "--trusted-submitter",
        "Kubernetes username allowed to file requests naming someone else (repeatable)",
        repeat=True,
        env="JITACCESS_TRUSTED_SUBMITTERS",
    ),
    Flag(
        "--console-submitter",
        "Kubernetes username of the jitaccess console (its service account), which files requests, "
        "approvals and revocations for the person Identity-Aware Proxy verified",
        repeat=True,
        env="JITACCESS_CONSOLE_SUBMITTERS",
    ),
    Flag("--history-retention", "how long terminal requests are kept (a duration)", default="720h"),
    Flag(
        "--metrics-port",
        "serve Prometheus /metrics, /healthz and /readyz on this port",
        type=int,
        field="metrics_port",
    ),
    Flag("--metrics-host", "address /metrics listens on", default="0.0.0.0", field="metrics_host"),
    Flag(
        "--webhook-host",
        "address the admission webhook server listens on",
        default="0.0.0.0",
        field="webhook_host",
    ),
    Flag("--webhook-port", "port of the admission webhook server", default=9443, type=int),
    Flag(
        "--webhook-cert-dir",
        "tls.crt and tls.key (e.g. a cert-manager Secret); a self-signed pair is made if absent",
        type=Path,
        field="webhook_cert_dir",
    ),
    Flag(
        "--attestation-key-file",
        "secret key (at least 32 bytes) that seals admitted requests and approvals, the operator's "
        "records and its IAM bindings; required",
        type=Path,
    ),
    Flag(
        "--insecure-no-admission",
        "run without an attestation key and without admission webhooks: nothing can be verified, so "
        "every request is Rejected and nothing is granted (access granted before still ends by its IAM "
        "condition). For diagnosis only",
        switch=True,
        field="insecure_no_admission",
    ),
    Flag(
        "--workload-identity-pool",
        "PROJECT_ID.svc.id.goog: map Kubernetes service accounts to Workload Identity principals",
    ),
    Flag("--workload-identity-project-number", "the project number of that pool"),
    Flag(
        "--notify-url",
        "POST each notice here as a CloudEvents 1.0 JSON event (type dev.jitaccess.request.KIND)",
    ),
    Flag(
        "--notify-signing-secret-file",
        "a file holding the secret that signs --notify-url events (X-Jitaccess-Signature: v1=HMAC)",
        type=Path,
    ),
    Flag("--smtp-host", "send e-mail through this SMTP server (off when not given)"),
    Flag("--smtp-port", "the SMTP server's port", default=587, type=int),
    Flag(
        "--smtp-security",
        "starttls (default), tls (implicit, usually port 465) or none (a trusted relay only)",
        default="starttls",
        choices=("starttls", "tls", "none"),
    ),
    Flag("--smtp-from", "the From address of the mail", default="jitaccess@localhost"),
    Flag("--smtp-username", "log in to the SMTP server as this user"),
    Flag("--smtp-password-file", "a file holding the SMTP password", type=Path),
    Flag(
        "--smtp-ca-file",
        "the CA certificate(s) that signed the SMTP server's (default: the system's)",
        type=Path,
    ),
    Flag(
        "--notify-group-addresses-file",
        "YAML mapping each group member (group:sre@example.com) to the addresses that get its mail; "
        "groups not in it are not mailed",
        type=Path,
    ),
    Flag("--slack-token-file", "a file holding the Slack bot token (xoxb-...): post to Slack", type=Path),
    Flag("--slack-channel", "the Slack channel ID for grants that name none in spec.notify.slackChannel"),
    Flag("--slack-api-url", "the Slack Web API", default="https://slack.com/api/"),
    Flag(
        "--slack-signing-secret-file",
        "a file holding the Slack app's signing secret: accept Approve/Deny clicks (with --slack-actions-port)",
        type=Path,
    ),
    Flag("--slack-team-id", "accept clicks from this Slack workspace only (T...)"),
    Flag(
        "--slack-actions-port",
        "serve Slack's interactivity requests (POST /slack/actions) on this port",
        type=int,
    ),
    Flag(
        "--slack-actions-cert-dir",
        "tls.crt and tls.key for that endpoint (plain HTTP when not given)",
        type=Path,
    ),
    Flag(
        "--google-chat-webhook-file",
        "a file holding a Google Chat incoming-webhook URL: post cards there",
        type=Path,
    ),
    Flag(
        "--iam-write-mode",
        "batched: one read-modify-write per resource for all waiting changes (default); "
        "per-activation: one per request, as Google's JIT Access does (for comparison only)",
        default="batched",
        choices=("batched", "per-activation"),
        field="iam_write_mode",
    ),
    Flag(
        "--iam-writes-per-second",
        "read-modify-write cycles per second for the whole operator (Google allows ~10)",
        default=8.0,
        type=float,
        field="iam_writes_per_s",
    ),
    Flag(
        "--sweep-interval",
        "how often IAM is swept for leftover jitaccess bindings and ones removed by others "
        "(a duration; 0 turns it off)",
        default="5m",
    ),
    Flag(
        "--audit-log",
        "one JSON line per lifecycle event: stdout (default), off, or a file to append to",
        default="stdout",
        field="audit_log",
    ),
    Flag(
        "--leader-elect",
        "run as one of several replicas: only the holder of a coordination.k8s.io Lease reconciles "
        "and writes IAM; every replica serves the admission webhooks",
        switch=True,
        field="leader_election",
    ),
    Flag(
        "--leader-election-namespace",
        "namespace of the Lease (default: $POD_NAMESPACE, else jitaccess-system)",
        default="jitaccess-system",
        env="POD_NAMESPACE",
        field="leader_election_namespace",
    ),
    Flag("--leader-election-lease", "name of the Lease", default="jitaccess", field="leader_election_lease"),
    Flag(
        "--leader-election-identity",
        "this replica's name in the Lease (default: $POD_NAME, else the host name)",
        default="",
        env="POD_NAME",
        field="leader_election_identity",
    ),
    Flag("--lease-duration", "how long a silent leader keeps the Lease", default="15s"),
    Flag("--renew-deadline", "how long the leader tries to renew before it stops", default="10s"),
    Flag("--retry-period", "how often the Lease is renewed or tried", default="2s"),
    Flag("--kubeconfig", "the cluster to use; in a Pod, the in-cluster config", type=Path, env="KUBECONFIG"),
    Flag("--context", "the kubeconfig context to use"),
    Flag(
        "--tick",
        "how often the scheduler looks at the clock, in seconds",
        default=0.5,
        type=float,
        field="tick_s",
    ),
    Flag(
        "--log-format",
        "json: one JSON object a line on stdout, in Cloud Logging's structured format (severity, "
        "message, time, labels replica and leader); text: for a terminal, on stderr",
        default="json",
        choices=("json", "text"),
    ),
    Flag("--verbose", "also kopf's own logs", switch=True, short="-v"),
)


# `jitaccess console`: the web console behind Identity-Aware Proxy (jitaccess.console).
CONSOLE_FLAGS: tuple[Flag, ...] = (
    Flag(
        "--port",
        "serve the console (plain HTTP: TLS ends at the load balancer) on this port",
        default=8080,
        type=int,
        env="JITACCESS_CONSOLE_PORT",
    ),
    Flag("--host", "address the console listens on", default="0.0.0.0", env="JITACCESS_CONSOLE_HOST"),
    Flag(
        "--iap-audience",
        "the IAP audience, /projects/NUMBER/global/backendServices/ID; or give --iap-project-number "
        "and --iap-backend-service-of to find the ID at start",
    ),
    Flag("--iap-project-number", "the number of the project whose load balancer IAP protects"),
    Flag("--iap-project", "that project's ID, to list its backend services (default: the number)"),
    Flag(
        "--iap-backend-service-of",
        "NAMESPACE/SERVICE: the audience is that of the backend service GKE made for this Service "
        "(looked up once at start, with the pod's Google credentials: compute.backendServices.list)",
    ),
    Flag(
        "--iap-keys-url",
        "IAP's public keys (a JWK set)",
        default="https://www.gstatic.com/iap/verify/public_key-jwk",
    ),
    Flag(
        "--compute-endpoint",
        "the Compute Engine API (http:// uses anonymous credentials)",
        default="https://compute.googleapis.com",
    ),
    Flag(
        "--csrf-key-file",
        "a file holding the key (at least 32 bytes, the same for every replica) that binds CSRF tokens to "
        "the signed-in person; required",
        type=Path,
    ),
    Flag(
        "--requests-namespace",
        "where the console files new requests (extensions and approvals go to their request's namespace)",
        default="jitaccess-requests",
    ),
    Flag(
        "--namespace",
        "show requests and approvals of this namespace only (repeatable); default: all namespaces",
        repeat=True,
        env="JITACCESS_CONSOLE_NAMESPACES",
    ),
    Flag("--kubeconfig", "the cluster to use; in a Pod, the in-cluster config", type=Path, env="KUBECONFIG"),
    Flag("--context", "the kubeconfig context to use"),
    Flag("--log-format", "json (Cloud Logging) or text", default="json", choices=("json", "text")),
    Flag("--verbose", "more logs", switch=True, short="-v"),
)


def add_flags(parser: argparse.ArgumentParser, flags: Sequence[Flag]) -> None:
    """Each flag as an option whose default comes from its environment variable."""
    for flag in flags:
        options: dict[str, Any] = {
            "help": f"{flag.help} [${flag.variable}]",
            "default": flag.from_environment(),
        }
        if flag.switch:
            options["action"] = "store_true"
        elif flag.repeat:
            options["action"] = "append"
        else:
            if flag.type is not None:
                options["type"] = flag.type
            if flag.choices is not None:
                options["choices"] = flag.choices
        parser.add_argument(*filter(None, (flag.name, flag.short)), **options)


def markdown_table(flags: Sequence[Flag]) -> str:
    """The flags as docs/operations.md shows them (a test keeps that copy current)."""
    rows = ["| flag | environment | meaning |", "|---|---|---|"]
    for flag in flags:
        shown = flag.name if flag.default in (None, "", False) else f"{flag.name} {flag.default}"
        repeat = " (repeatable)" if flag.repeat else ""
        rows.append(f"| `{shown}`{repeat} | `{flag.variable}` | {flag.help.replace('|', '/')} |")
    return "\n".join(rows) + "\n"
