"""`jitaccess console`: its flags (run_flags.CONSOLE_FLAGS) turned into settings, and the process
that serves until SIGTERM. A flag that cannot work stops it at once, naming the flag."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from jitaccess.console.csrf import MIN_KEY_BYTES, read_key
from jitaccess.console.server import Console, ConsoleSettings
from jitaccess.kubeconfig import kubernetes_configuration


def console_settings(args: argparse.Namespace) -> ConsoleSettings:
    """The settings from the flags; exits naming the flag when one is missing or wrong."""
    if args.csrf_key_file is None:
        sys.exit(
            "jitaccess console: no --csrf-key-file. Every replica needs the same key to bind CSRF tokens "
            "to the signed-in person: `openssl rand -hex 32`, in a Secret mounted as a file"
        )
    try:
        key = read_key(str(args.csrf_key_file))
    except OSError as error:
        sys.exit(f"--csrf-key-file: {error}")
    if len(key) < MIN_KEY_BYTES:
        sys.exit(f"--csrf-key-file: the key must be at least {MIN_KEY_BYTES} bytes (openssl rand -hex 32)")
    backend = None
    if args.iap_audience is None:
        if not (args.iap_project_number and args.iap_backend_service_of):
            sys.exit(
                "jitaccess console: give --iap-audience /projects/NUMBER/global/backendServices/ID, or "
                "--iap-project-number N and --iap-backend-service-of NAMESPACE/SERVICE to find it at start"
            )
        namespace, _, service = str(args.iap_backend_service_of).partition("/")
        if not namespace or not service:
            sys.exit("--iap-backend-service-of: NAMESPACE/SERVICE, the console's Service")
        project = args.iap_project or args.iap_project_number
        backend = (project, args.iap_project_number, args.iap_backend_service_of, args.compute_endpoint)
    elif not str(args.iap_audience).startswith("/projects/"):
        sys.exit("--iap-audience: /projects/NUMBER/global/backendServices/ID, as IAP signs it")
    return ConsoleSettings(
        csrf_key=key,
        audience=args.iap_audience,
        backend_service_of=backend,
        keys_url=args.iap_keys_url,
        requests_namespace=args.requests_namespace,
        namespaces=tuple(args.namespace or ()),
        host=args.host,
        port=args.port,
    )


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT (Kubernetes stops a Pod with SIGTERM)."""
    console = Console(console_settings(args), kubernetes_configuration(args.kubeconfig, args.context))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await console.start()
    try:
        if console.resolving is not None:  # a Service that two backend services claim stops it here
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait([console.resolving, stopped], return_when=asyncio.FIRST_COMPLETED)
            if console.resolving.done() and (error := console.resolving.exception()) is not None:
                raise SystemExit(f"jitaccess console: {error}")
        await stop.wait()
    finally:
        await console.stop()
