"""`jitaccess-sandbox` (also `jitaccess sandbox`): the Kubernetes API, the IAM emulator and the
operator on 127.0.0.1, to try jitaccess or to run its demo."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from jitaccess.cli import configure_logging
from jitaccess_sandbox.demo import run_demo
from jitaccess_sandbox.runner import Sandbox, serve_forever


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(
        prog="jitaccess sandbox",
        description="run the Kubernetes API, the IAM emulator and the operator locally",
    )
    found.add_argument("--state-dir", type=Path, default=Path(".sandbox"))
    found.add_argument("--port-k8s", type=int, default=0)
    found.add_argument("--port-iam", type=int, default=0)
    found.add_argument(
        "--port-webhook",
        type=int,
        default=0,
        help="where the operator serves its admission webhooks (the configurations point there)",
    )
    found.add_argument(
        "--port-console",
        type=int,
        default=0,
        help="where the web console is served (behind a local IAP stand-in)",
    )
    found.add_argument("--no-console", action="store_true", help="do not serve the web console")
    found.add_argument("--demo", action="store_true", help="walk requests through their lifecycle, then exit")
    found.add_argument(
        "--no-operator",
        action="store_true",
        help="serve the Kubernetes API and the emulator only; run the operator yourself",
    )
    found.add_argument("--verbose", "-v", action="store_true")
    return found


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


async def serve(args: argparse.Namespace) -> None:
    async with Sandbox(
        args.state_dir,
        port_k8s=args.port_k8s,
        port_iam=args.port_iam,
        port_webhook=args.port_webhook,
        run_operator=not args.no_operator,
        console=not (args.no_console or args.demo or args.no_operator),
        port_console=args.port_console,
    ) as sandbox:
        if args.demo:
            await run_demo(sandbox)
            return
        print(f"Kubernetes API: {sandbox.k8s_url}   IAM emulator: {sandbox.iam_url}")
        if args.no_operator:
            print(
                "  start the operator: jitaccess run --kubeconfig "
                f"{sandbox.operator_kubeconfig} --iam-endpoint {sandbox.iam_url} --webhook-host 127.0.0.1 "
                f"--webhook-port {sandbox.webhook_port} --webhook-cert-dir {sandbox.webhook_cert_dir}"
            )
        print(f"  export KUBECONFIG={sandbox.kubeconfig}")
        print("  kubectl apply -f examples/            # grants, a namespace and alice's request")
        print(
            "  kubectl get eg,ar -A                  # contexts: admin, alice@example.com, bob@example.com, "
            "carol@example.com"
        )
        print(f"  curl -s {sandbox.iam_url}/_emulator/policies/projects/my-sandbox   # what IAM holds")
        if sandbox.console_url:
            print(f"Console: {sandbox.console_url}/   (sign in as alice, bob or carol)")
            print("  kubectl apply -f examples/console/   # a grant alice may ask for and bob approves there")
        print("Ctrl+C stops it.", flush=True)
        await serve_forever(sandbox)


if __name__ == "__main__":
    main()
