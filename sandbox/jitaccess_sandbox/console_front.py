"""The sandbox's web console, as production runs it: `jitaccess console` under its own service
account, behind an IAP stand-in that signs people in, finding its IAP audience among the backend
services of the (emulated) Compute API, which the sandbox fills as GKE's Ingress controller would.

Open `front.url` (the stand-in) in a browser and pick alice, bob or carol. Tests reach consoles
directly too (`consoles[i].port`), with assertions the stand-in mints.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jitaccess.console.backend_services import audience_of
from jitaccess.console.server import Console, ConsoleSettings
from jitaccess.kubeconfig import kubernetes_configuration
from jitaccess_sandbox.iap_standin import IapStandIn

if TYPE_CHECKING:
    from jitaccess_sandbox.runner import Sandbox

PROJECT, PROJECT_NUMBER = "my-sandbox", "100000000001"
REQUESTS_NAMESPACE = "team-sre"


@dataclass
class ConsoleFront:
    sandbox: Sandbox
    user: str  # the console's Kubernetes username (its service account)
    service: str  # NAMESPACE/SERVICE, as GKE describes the backend service
    port: int = 0  # the IAP stand-in's
    iap: IapStandIn = field(init=False)
    consoles: list[Console] = field(init=False, default_factory=list)
    csrf_key: bytes = field(init=False, default_factory=lambda: secrets.token_hex(32).encode())
    audience: str = field(init=False, default="")

    @property
    def url(self) -> str:
        return self.iap.url

    @property
    def kubeconfig(self) -> Path:
        return self.sandbox.state_dir / "console.kubeconfig"

    @property
    def csrf_key_file(self) -> Path:
        return self.sandbox.state_dir / "console-csrf.key"

    async def start(self) -> None:
        compute = self.sandbox.emulator.compute
        compute.add_project(PROJECT, PROJECT_NUMBER)
        compute.add(PROJECT, "k8s1-sandbox-default-http-backend-80", "kube-system/default-http-backend")
        made = compute.add(PROJECT, "k8s1-sandbox-jitaccess-console-80", self.service)
        self.audience = audience_of(PROJECT_NUMBER, made["id"])
        self.sandbox.write_kubeconfig(self.kubeconfig, [self.user])
        self.csrf_key_file.write_bytes(self.csrf_key + b"\n")
        self.csrf_key_file.chmod(0o600)
        self.iap = IapStandIn(upstream="", audience=self.audience)
        await self.iap.start(self.port)
        console = await self.add_console()
        self.iap.upstream = f"http://127.0.0.1:{console.port}"

    def console_args(self) -> list[str]:
        """`jitaccess console`'s flags for another replica of this console (a process of its own)."""
        return [
            "console", "--host", "127.0.0.1", "--port", "0", "--kubeconfig", str(self.kubeconfig),
            "--context", self.user, "--csrf-key-file", str(self.csrf_key_file),
            "--iap-keys-url", self.iap.keys_url, "--iap-project", PROJECT,
            "--iap-project-number", PROJECT_NUMBER, "--iap-backend-service-of", self.service,
            "--compute-endpoint", self.sandbox.iam_url, "--requests-namespace", REQUESTS_NAMESPACE,
            "--log-format", "text",
        ]  # fmt: skip

    async def add_console(self, **overrides: Any) -> Console:
        """Another replica, in this process: the same flags, its own port; ready when it returns."""
        settings = ConsoleSettings(
            csrf_key=self.csrf_key,
            backend_service_of=(PROJECT, PROJECT_NUMBER, self.service, self.sandbox.iam_url),
            keys_url=self.iap.keys_url,
            requests_namespace=REQUESTS_NAMESPACE,
            host="127.0.0.1",
            port=0,
        )
        for name, value in overrides.items():
            setattr(settings, name, value)
        console = Console(settings, kubernetes_configuration(self.kubeconfig, self.user))
        await console.start()
        self.consoles.append(console)
        await wait_ready(console)
        return console

    async def stop_console(self, console: Console) -> None:
        await console.stop()
        self.consoles.remove(console)

    async def stop(self) -> None:
        for console in list(self.consoles):
            await self.stop_console(console)
        await self.iap.stop()


async def wait_ready(console: Console, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while not console.ready:
            await asyncio.sleep(0.02)
