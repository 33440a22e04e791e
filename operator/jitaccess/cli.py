"""`jitaccess run | sandbox`: the operator's command line (flags mirror API.md "Configuration")."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import os
import secrets
import signal
import sys
from datetime import timedelta
from pathlib import Path

from jitaccess.api.durations import DurationError, parse_duration


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="jitaccess", description="Just-In-Time access to Google Cloud on Kubernetes"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run", help="run the operator against the cluster KUBECONFIG or in-cluster config names"
    )
    run.add_argument(
        "--iam-endpoint",
        default=os.environ.get("JITACCESS_IAM_ENDPOINT"),
        help="Cloud Resource Manager endpoint; http:// (the emulator) uses anonymous credentials",
    )
    run.add_argument(
        "--namespace",
        action="append",
        default=_env_list("JITACCESS_NAMESPACES"),
        help="serve requests in this namespace (repeatable); default: all namespaces",
    )
    run.add_argument("--all-namespaces", action="store_true", help="serve requests in every namespace")
    run.add_argument(
        "--trusted-submitter",
        action="append",
        default=_env_list("JITACCESS_TRUSTED_SUBMITTERS"),
        help="Kubernetes username allowed to submit on behalf of others (repeatable)",
    )
    run.add_argument(
        "--history-retention",
        default=os.environ.get("JITACCESS_HISTORY_RETENTION", "720h"),
        help="how long terminal requests are kept (a duration; default 720h)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=_env_int("JITACCESS_METRICS_PORT"),
        help="serve Prometheus /metrics and /healthz on this port",
    )
    run.add_argument("--metrics-host", default=os.environ.get("JITACCESS_METRICS_HOST", "0.0.0.0"))
    run.add_argument(
        "--webhook-host",
        default=os.environ.get("JITACCESS_WEBHOOK_HOST", "0.0.0.0"),
        help="address the admission webhook server listens on",
    )
    run.add_argument("--webhook-port", type=int, default=_env_int("JITACCESS_WEBHOOK_PORT") or 9443)
    run.add_argument(
        "--webhook-cert-dir",
        type=Path,
        default=os.environ.get("JITACCESS_WEBHOOK_CERT_DIR"),
        help="tls.crt and tls.key (e.g. a cert-manager Secret); a self-signed pair is made if absent",
    )
    run.add_argument(
        "--attestation-key-file",
        type=Path,
        default=os.environ.get("JITACCESS_ATTESTATION_KEY_FILE"),
        help="secret key (at least 32 bytes) that seals admitted requests and approvals, the operator's "
        "records and its IAM bindings; required",
    )
    run.add_argument(
        "--insecure-no-admission",
        action="store_true",
        default=os.environ.get("JITACCESS_INSECURE_NO_ADMISSION", "").lower() in ("1", "true", "yes"),
        help="run without an attestation key and without admission webhooks: nothing can be verified, "
        "so every request is Rejected and nothing is granted (access granted before still ends by its "
        "IAM condition). For diagnosis only",
    )
    run.add_argument(
        "--workload-identity-pool",
        default=os.environ.get("JITACCESS_WORKLOAD_IDENTITY_POOL"),
        help="PROJECT_ID.svc.id.goog: map Kubernetes service accounts to Workload Identity principals",
    )
    run.add_argument(
        "--workload-identity-project-number",
        default=os.environ.get("JITACCESS_WORKLOAD_IDENTITY_PROJECT_NUMBER"),
    )
    run.add_argument(
        "--notify-url",
        default=os.environ.get("JITACCESS_NOTIFY_URL"),
        help="POST a JSON event here on approval needed/approved/denied/activated/expired/revoked",
    )
    run.add_argument(
        "--iam-write-mode",
        choices=("batched", "per-activation"),
        default=os.environ.get("JITACCESS_IAM_WRITE_MODE", "batched"),
        help="batched: one read-modify-write per resource for all waiting changes (default); "
        "per-activation: one per request, as Google's JIT Access does (for comparison only)",
    )
    run.add_argument(
        "--iam-writes-per-second",
        type=float,
        default=float(os.environ.get("JITACCESS_IAM_WRITES_PER_SECOND", "8")),
        help="read-modify-write cycles per second for the whole operator (Google allows ~10; default 8)",
    )
    run.add_argument(
        "--sweep-interval",
        default=os.environ.get("JITACCESS_SWEEP_INTERVAL", "5m"),
        help="how often IAM is swept for leftover jitaccess bindings and ones removed by others "
        "(a duration; 0 turns it off)",
    )
    run.add_argument(
        "--audit-log",
        default=os.environ.get("JITACCESS_AUDIT_LOG", "stdout"),
        help="one JSON line per lifecycle event: stdout (default), off, or a file to append to",
    )
    run.add_argument(
        "--leader-elect",
        action="store_true",
        default=os.environ.get("JITACCESS_LEADER_ELECT", "").lower() in ("1", "true", "yes"),
        help="run as one of several replicas: only the holder of a coordination.k8s.io Lease "
        "reconciles and writes IAM; every replica serves the admission webhooks",
    )
    run.add_argument(
        "--leader-election-namespace",
        default=os.environ.get("POD_NAMESPACE", "jitaccess-system"),
        help="namespace of the Lease (default: $POD_NAMESPACE, else jitaccess-system)",
    )
    run.add_argument("--leader-election-lease", default="jitaccess", help="name of the Lease")
    run.add_argument(
        "--leader-election-identity",
        default=os.environ.get("POD_NAME", ""),
        help="this replica's name in the Lease (default: $POD_NAME, else the host name)",
    )
    for flag, default, meaning in (
        ("--lease-duration", "15s", "how long a silent leader keeps the Lease"),
        ("--renew-deadline", "10s", "how long the leader tries to renew before it stops"),
        ("--retry-period", "2s", "how often the Lease is renewed or tried"),
    ):
        run.add_argument(flag, default=default, help=meaning)
    run.add_argument("--kubeconfig", type=Path, default=None)
    run.add_argument("--context", default=None)
    run.add_argument(
        "--clock-offset-file",
        type=Path,
        default=None,
        help="for tests and the sandbox only: seconds to add to the wall clock, read from this file "
        "whenever it changes (only ever forward)",
    )
    run.add_argument(
        "--lease-clock-offset-file",
        type=Path,
        default=None,
        help="for tests only: as --clock-offset-file, for the leader-election lease alone",
    )
    run.add_argument(
        "--tick", type=float, default=0.5, help="how often the scheduler looks at the clock, in seconds"
    )
    run.add_argument("--verbose", "-v", action="store_true")

    sandbox = commands.add_parser(
        "sandbox", help="run the Kubernetes API, the IAM emulator and the operator locally"
    )
    sandbox.add_argument("--state-dir", type=Path, default=Path(".sandbox"))
    sandbox.add_argument("--port-k8s", type=int, default=0)
    sandbox.add_argument("--port-iam", type=int, default=0)
    sandbox.add_argument(
        "--demo", action="store_true", help="walk requests through their lifecycle, then exit"
    )
    sandbox.add_argument(
        "--no-operator",
        action="store_true",
        help="serve the Kubernetes API and the emulator only; run the operator yourself",
    )
    sandbox.add_argument("--verbose", "-v", action="store_true")

    importer = commands.add_parser(
        "import",
        help="read Google JIT Access 1.x eligibility from IAM policies (read-only) and write EligibleGrants",
    )
    importer.add_argument(
        "--resource",
        action="append",
        required=True,
        help="projects/ID, folders/N, organizations/N (repeatable)",
    )
    importer.add_argument("--iam-endpoint", default=os.environ.get("JITACCESS_IAM_ENDPOINT"))
    importer.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="folder for grants.yaml and report.txt (default: stdout)",
    )
    importer.add_argument(
        "--max-duration", default="1h", help="maxDuration of the grants (IAM does not hold it)"
    )
    importer.add_argument(
        "--approvers",
        action="append",
        default=[],
        help="approvers of multi-party grants (default: the grant's own principals, as in JIT Access)",
    )
    importer.add_argument("--activations", action="store_true", help="also list JIT Access's own activations")

    args = parser.parse_args(argv)
    if args.command == "import":
        from jitaccess.migrate.command import run_import

        raise SystemExit(
            run_import(
                args.resource,
                args.iam_endpoint,
                args.output,
                args.max_duration,
                args.approvers,
                args.activations,
            )
        )
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("kopf").setLevel(logging.ERROR)
        # kopf logs every refused admission as an error; refusing is the webhooks' job, not a failure.
        logging.getLogger("kopf.objects").setLevel(logging.CRITICAL)
    try:
        asyncio.run(_run(args) if args.command == "run" else _sandbox(args))
    except KeyboardInterrupt:
        pass


async def _run(args: argparse.Namespace) -> None:
    # `kill -USR1 <pid>` prints every thread's stack to stderr: how to see where a stuck operator is.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    from jitaccess.clock import OffsetFileClock
    from jitaccess.controller.config import OperatorConfig
    from jitaccess.controller.leader import LeaseTimings
    from jitaccess.controller.operator import kubernetes_configuration, run_operator
    from jitaccess.policy.admission import IdentitySettings

    try:
        retention = parse_duration(args.history_retention)
    except DurationError as error:
        sys.exit(f"--history-retention: {error}")
    try:
        sweep = timedelta(0) if args.sweep_interval in ("0", "off") else parse_duration(args.sweep_interval)
    except DurationError as error:
        sys.exit(f"--sweep-interval: {error} (or 0 to turn sweeping off)")
    try:
        timings = LeaseTimings(
            duration=_seconds(args.lease_duration),
            renew_deadline=_seconds(args.renew_deadline),
            retry_period=_seconds(args.retry_period),
        )
    except ValueError as error:
        sys.exit(f"--lease-duration/--renew-deadline/--retry-period: {error}")
    key = args.attestation_key_file.read_bytes().strip() if args.attestation_key_file else b""
    if args.attestation_key_file and len(key) < 32:
        sys.exit("--attestation-key-file: the key must be at least 32 bytes (e.g. openssl rand -hex 32)")
    if not key and not args.insecure_no_admission:
        sys.exit(
            "jitaccess run: no --attestation-key-file. The key seals what admission vouched for (who "
            "asked, who approved) and what the operator wrote; without it nothing can be verified. Make one "
            "with `openssl rand -hex 32`, mount it from a Secret (manifests/deployment.yaml) and pass "
            "--attestation-key-file. --insecure-no-admission starts anyway and grants nothing."
        )
    if not key:
        logging.getLogger("jitaccess").warning(
            "--insecure-no-admission: no admission webhooks and no attestation key; every request is "
            "Rejected as unattested and nothing is written to IAM"
        )
        key = secrets.token_bytes(32)  # nothing sealed elsewhere verifies with it
    namespaces = tuple(args.namespace or ())
    settings = OperatorConfig(
        namespaces=namespaces,
        all_namespaces=args.all_namespaces or not namespaces,
        iam_endpoint=args.iam_endpoint,
        history_retention=retention,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        webhook_port=None if args.insecure_no_admission else args.webhook_port,
        webhook_host=args.webhook_host,
        webhook_cert_dir=args.webhook_cert_dir,
        attestation_key=key,
        insecure_no_admission=args.insecure_no_admission,
        notify_url=args.notify_url,
        iam_write_mode=args.iam_write_mode,
        iam_writes_per_s=args.iam_writes_per_second,
        sweep_interval=sweep,
        tick_s=args.tick,
        audit_log=args.audit_log,
        leader_election=args.leader_elect,
        leader_election_namespace=args.leader_election_namespace,
        leader_election_lease=args.leader_election_lease,
        leader_election_identity=args.leader_election_identity,
        lease_timings=timings,
        **(
            {"lease_clock": OffsetFileClock(args.lease_clock_offset_file)}
            if args.lease_clock_offset_file
            else {}
        ),
        **({"clock": OffsetFileClock(args.clock_offset_file)} if args.clock_offset_file else {}),
        identity=IdentitySettings(
            trusted_submitters=frozenset(args.trusted_submitter or ()),
            workload_identity_pool=args.workload_identity_pool,
            workload_identity_project_number=args.workload_identity_project_number,
        ),
    )
    await run_operator(settings, kubernetes_configuration(args.kubeconfig, args.context))


async def _sandbox(args: argparse.Namespace) -> None:
    from jitaccess.sandbox.demo import run_demo
    from jitaccess.sandbox.runner import Sandbox, serve_forever

    async with Sandbox(
        args.state_dir, port_k8s=args.port_k8s, port_iam=args.port_iam, run_operator=not args.no_operator
    ) as sandbox:
        if args.demo:
            await run_demo(sandbox)
            return
        kubeconfig = sandbox.kubeconfig
        print(f"Kubernetes API: {sandbox.k8s_url}   IAM emulator: {sandbox.iam_url}")
        print(f"  export KUBECONFIG={kubeconfig}")
        print("  kubectl apply -f examples/            # grants, a namespace and alice's request")
        print(
            "  kubectl get eg,ar -A                  # contexts: admin, alice@example.com, bob@example.com, "
            "carol@example.com"
        )
        print(f"  curl -s {sandbox.iam_url}/_emulator/policies/projects/my-sandbox   # what IAM holds")
        print("Ctrl+C stops it.", flush=True)
        await serve_forever(sandbox)


def _seconds(text: str) -> timedelta:
    """A lease timing: a duration (10s, 1m) or plain seconds (0.5, for tests)."""
    try:
        return timedelta(seconds=float(text))
    except ValueError:
        pass
    try:
        return parse_duration(text)
    except DurationError as error:
        raise ValueError(f"{text!r}: {error}") from None


def _env_list(name: str) -> list[str]:
    return [item for item in os.environ.get(name, "").replace(",", " ").split() if item]


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


if __name__ == "__main__":
    main()
