"""`jitaccess run | console | import | sandbox`: the command line (run's and console's flags: run_flags.py)."""

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
from typing import TYPE_CHECKING

from jitaccess import __version__
from jitaccess.api.durations import DurationError, parse_duration
from jitaccess.run_flags import CONSOLE_FLAGS, RUN_FLAGS, add_flags

if TYPE_CHECKING:
    from jitaccess.controller.channels.setup import NotifySettings
    from jitaccess.controller.config import OperatorConfig


def parser() -> argparse.ArgumentParser:
    """`jitaccess run | console | sandbox | import`: their flags come from run_flags."""
    top = argparse.ArgumentParser(
        prog="jitaccess", description="Just-In-Time access to Google Cloud on Kubernetes"
    )
    top.add_argument("--version", action="version", version=f"jitaccess {__version__}")
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser(
        "run", help="run the operator against the cluster KUBECONFIG or in-cluster config names"
    )
    add_flags(run, RUN_FLAGS)

    console = commands.add_parser(
        "console", help="serve the web console behind Identity-Aware Proxy (a Deployment of its own)"
    )
    add_flags(console, CONSOLE_FLAGS)

    sandbox = commands.add_parser(
        "sandbox",
        help="run the Kubernetes API, the IAM emulator and the operator locally (the jitaccess-sandbox "
        "distribution, installed by make; `jitaccess sandbox --help` there)",
        add_help=False,
    )
    sandbox.add_argument("arguments", nargs=argparse.REMAINDER)

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
    return top


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sandbox"]:  # its own flags, in its own distribution
        _sandbox(argv[1:])
        return
    args = parser().parse_args(argv)
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
    configure_logging(args.verbose, args.log_format)
    if args.command == "console":
        from jitaccess.console.run import serve

        asyncio.run(serve(args))
        return
    try:
        asyncio.run(_run(args))
    except KeyboardInterrupt:
        pass


async def _run(args: argparse.Namespace) -> None:
    await run_configured(operator_config(args), args)


async def run_configured(settings: OperatorConfig, args: argparse.Namespace) -> None:
    """Run the operator as configured (the sandbox's test runner swaps its clocks in first)."""
    # `kill -USR1 <pid>` prints every thread's stack to stderr: how to see where a stuck operator is.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    from jitaccess.controller.operator import kubernetes_configuration, run_operator

    await run_operator(settings, kubernetes_configuration(args.kubeconfig, args.context))


def operator_config(args: argparse.Namespace) -> OperatorConfig:
    """The operator's configuration from `jitaccess run`'s flags; exits naming a bad flag."""
    from jitaccess.controller.config import OperatorConfig
    from jitaccess.controller.leader import LeaseTimings
    from jitaccess.policy.admission import IdentitySettings

    retention = _flag_duration("--history-retention", args.history_retention)
    sweep = (
        timedelta(0)
        if args.sweep_interval in ("0", "off")
        else _flag_duration("--sweep-interval", args.sweep_interval)
    )
    try:
        timings = LeaseTimings(
            duration=_seconds(args.lease_duration),
            renew_deadline=_seconds(args.renew_deadline),
            retry_period=_seconds(args.retry_period),
        )
    except ValueError as error:
        sys.exit(f"--lease-duration/--renew-deadline/--retry-period: {error}")
    key = _attestation_key(args)
    namespaces = tuple(args.namespace or ())
    direct = {flag.field: getattr(args, flag.dest) for flag in RUN_FLAGS if flag.field}
    return OperatorConfig(
        **direct,
        namespaces=namespaces,
        all_namespaces=args.all_namespaces or not namespaces,
        history_retention=retention,
        webhook_port=None if args.insecure_no_admission else args.webhook_port,
        attestation_key=key,
        sweep_interval=sweep,
        lease_timings=timings,
        identity=IdentitySettings(
            trusted_submitters=frozenset(args.trusted_submitter or ()),
            workload_identity_pool=args.workload_identity_pool,
            workload_identity_project_number=args.workload_identity_project_number,
            chat_approvals=args.slack_actions_port is not None,
            console_submitters=frozenset(args.console_submitter or ()),
        ),
        notify=notify_settings(args),
    )


def notify_settings(args: argparse.Namespace) -> NotifySettings:
    """Where notices go: every flag of the notify group (secrets as file paths)."""
    from jitaccess.controller.channels.setup import NotifySettings

    if args.slack_actions_port is not None and not (
        args.slack_signing_secret_file and args.slack_token_file and args.slack_team_id
    ):
        sys.exit(
            "--slack-actions-port: Slack's clicks are accepted only with --slack-signing-secret-file (to "
            "verify them), --slack-token-file (to ask Slack who clicked) and --slack-team-id (the one "
            "workspace whose members may decide)"
        )
    return NotifySettings(
        webhook_url=args.notify_url,
        webhook_secret_file=args.notify_signing_secret_file,
        smtp_host=args.smtp_host,
        smtp_port=args.smtp_port,
        smtp_security=args.smtp_security,
        smtp_from=args.smtp_from,
        smtp_username=args.smtp_username,
        smtp_password_file=args.smtp_password_file,
        smtp_ca_file=args.smtp_ca_file,
        group_addresses_file=args.notify_group_addresses_file,
        slack_token_file=args.slack_token_file,
        slack_channel=args.slack_channel,
        slack_api_url=args.slack_api_url,
        slack_signing_secret_file=args.slack_signing_secret_file,
        slack_team_id=args.slack_team_id,
        slack_actions_port=args.slack_actions_port,
        slack_actions_cert_dir=args.slack_actions_cert_dir,
        google_chat_webhook_file=args.google_chat_webhook_file,
    )


def _attestation_key(args: argparse.Namespace) -> bytes:
    """The key from --attestation-key-file; a throwaway one with --insecure-no-admission."""
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
    return key


def _flag_duration(flag: str, text: str) -> timedelta:
    try:
        return parse_duration(text)
    except DurationError as error:
        hint = " (or 0 to turn sweeping off)" if flag == "--sweep-interval" else ""
        sys.exit(f"{flag}: {error}{hint}")


def configure_logging(verbose: bool, form: str = "text") -> None:
    """The operator's log lines (controller/logs.py), imported late: `--version` stays light."""
    from jitaccess.controller.logs import configure_logging as configure

    configure(verbose, form)


def _sandbox(arguments: list[str]) -> None:
    """Hand over to the sandbox, a distribution of its own (not in the operator's image)."""
    try:
        from jitaccess_sandbox.cli import main as sandbox_main
    except ImportError:
        sys.exit("jitaccess sandbox: the sandbox is not installed; `pip install -e ./sandbox` (make does)")
    sandbox_main(arguments)


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


if __name__ == "__main__":
    main()
