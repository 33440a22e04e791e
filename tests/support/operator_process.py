"""`jitaccess run` as a process of its own against a sandbox: what chaos tests kill and restart.

The sandbox's clock is shared through a file (`--clock-offset-file`): `advance` moves the
sandbox API's clock and the operator process's together.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from jitaccess_sandbox.runner import OPERATOR_USER, Sandbox, _wait_for_port


class OperatorProcess:
    def __init__(
        self,
        sandbox: Sandbox,
        directory: Path,
        *extra: str,
        attestation_key: str | None = None,
        webhook_port: int | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.directory = directory
        self.extra = extra
        # Where the sandbox's webhook configurations point, or (replicas, each on a port of its own)
        # a port they are pointed at when this one starts, as a Service routes to the pod that is up.
        self.webhook_port = webhook_port or sandbox.webhook_port
        self.key_file = directory / "attestation.key"
        self.clock_file = directory / "clock-offset"
        self.log_file = directory / "operator.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        directory.mkdir(parents=True, exist_ok=True)
        # Replicas of one installation share the key (one Secret): what one admits, the other trusts.
        self.key_file.write_text(attestation_key or secrets.token_hex(32))
        self.clock_file.write_text("0")

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "jitaccess_sandbox.clocked_operator", "run",
            "--kubeconfig", str(self.sandbox.operator_kubeconfig),
            "--context", OPERATOR_USER,
            "--iam-endpoint", self.sandbox.iam_url,
            "--attestation-key-file", str(self.key_file),
            "--webhook-host", "127.0.0.1",
            "--webhook-port", str(self.webhook_port),
            "--webhook-cert-dir", str(self.sandbox.webhook_cert_dir),
            "--clock-offset-file", str(self.clock_file),
            "--tick", str(self.sandbox.tick_s),
            *(f"--trusted-submitter={user}" for user in sorted(self.sandbox.trusted_submitters)),
            *self.extra,
        ]  # fmt: skip

    async def start(self) -> None:
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.starts += 1
        try:
            await _wait_for_port(self.webhook_port, timeout_s=60)
            if self.webhook_port != self.sandbox.webhook_port:
                await self.sandbox.register_webhooks(
                    self.webhook_port, self.sandbox.webhook_cert_dir / "ca.crt"
                )
            await self.sandbox.wait_for_admission()
        except TimeoutError:
            raise RuntimeError(f"the operator did not start:\n{self.log_file.read_text()[-3000:]}") from None

    async def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye, whatever it was doing."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(self.process.wait)
            self.process = None

    async def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.process.wait, 30)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGUSR1)  # its stacks into the log: where it was stuck
            await asyncio.sleep(1)
            await self.kill()
        self.process = None

    def advance(self, delta: timedelta) -> None:
        self.sandbox.clock.advance(delta)
        self.clock_file.write_text(str(self.sandbox.clock.offset.total_seconds()))
