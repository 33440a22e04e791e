"""`python -m jitaccess_emulator --port N`: the IAM emulator alone, for a separately run operator."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from jitaccess_emulator.server import Emulator, start


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m jitaccess_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8085)
    parser.add_argument(
        "--resource",
        action="append",
        default=[],
        help="a resource that exists, e.g. projects/my-sandbox (repeatable)",
    )
    parser.add_argument(
        "--any-resource", action="store_true", help="every project, folder and organization exists"
    )
    parser.add_argument("--state-file", type=Path, help="persist policies to this JSON file")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every API call")
    parser.add_argument(
        "--quota",
        action="store_true",
        help="enforce Resource Manager's quota: 10 reads and 10 writes a second, 600 a minute (429 beyond)",
    )
    args = parser.parse_args()

    async def serve() -> None:
        emulator = Emulator(
            resources=set(args.resource), any_resource=args.any_resource, state_file=args.state_file
        )
        emulator.configure({"latency_ms": args.latency_ms, **({"quota": {}} if args.quota else {})})
        runner, url = await start(emulator, args.host, args.port)
        print(f"IAM emulator listening on {url} (control API under {url}/_emulator/)", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
