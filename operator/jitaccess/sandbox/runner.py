"""Start the whole sandbox in one event loop: Kubernetes API, IAM emulator, operator.

Used by `jitaccess sandbox`, by the integration tests and by the benchmarks, so that all three
exercise the same wiring. Everything listens on 127.0.0.1 and is spoken to over HTTP.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kmock
import yaml

from jitaccess.clock import ManualClock
from jitaccess.controller.config import OperatorConfig
from jitaccess.controller.operator import kubernetes_configuration, run_operator
from jitaccess.controller.reconciler import Reconciler
from jitaccess.emulator.server import Emulator
from jitaccess.emulator.server import start as start_emulator
from jitaccess.sandbox.apiserver import SandboxApi

# The people of the sandbox, and the groups their (pretend) identity provider says they are in.
USERS: dict[str, list[str]] = {
    "admin": ["system:masters"],
    "alice@example.com": ["sre@example.com"],
    "bob@example.com": ["sre-leads@example.com"],
    "carol@example.com": ["developers@example.com"],
}
RESOURCES = {
    "projects/my-sandbox",
    "projects/my-production",
    "folders/123456789012",
    "organizations/987654321098",
}


@dataclass
class Sandbox:
    state_dir: Path
    port_k8s: int = 0
    port_iam: int = 0
    run_operator: bool = True
    clock: ManualClock = field(default_factory=ManualClock)
    tick_s: float = 0.2
    namespaces: tuple[str, ...] = ("default", "team-sre")
    api: SandboxApi = field(init=False)
    emulator: Emulator = field(init=False)
    k8s_url: str = field(init=False, default="")
    iam_url: str = field(init=False, default="")
    reconciler: Reconciler | None = field(init=False, default=None)
    _stack: contextlib.AsyncExitStack = field(init=False, default_factory=contextlib.AsyncExitStack)
    _operator: threading.Thread | None = field(init=False, default=None)
    _stop: threading.Event = field(init=False, default_factory=threading.Event)

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    async def __aenter__(self) -> Sandbox:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.api = SandboxApi()
        for namespace in self.namespaces:
            self.api.add_namespace(namespace)
        await self._stack.enter_async_context(self.api)
        server = await self._stack.enter_async_context(kmock.Server(self.api, port=self.port_k8s or None))
        self.k8s_url = f"http://127.0.0.1:{server.port}"
        self.emulator = Emulator(resources=set(RESOURCES))
        runner, self.iam_url = await start_emulator(self.emulator, port=self.port_iam)
        self._stack.push_async_callback(runner.cleanup)
        self.write_kubeconfig()
        (self.state_dir / "iam-endpoint").write_text(self.iam_url + "\n")
        if self.run_operator:
            await self.start_operator()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_operator()
        await self._stack.aclose()

    async def start_operator(self, **overrides: Any) -> Reconciler:
        """Run the operator in a thread of its own, with its own event loop.

        Like kopf.testing.KopfRunner, and for the same reason: when kopf stops it cancels every
        task its loop gained while it ran, which would include this API server's connections.
        """
        settings = OperatorConfig(
            iam_endpoint=self.iam_url, clock=self.clock, tick_s=self.tick_s, **overrides
        )
        configuration = kubernetes_configuration(self.kubeconfig, context="admin")
        self._stop = threading.Event()
        ready = threading.Event()
        built: concurrent.futures.Future[Reconciler] = concurrent.futures.Future()

        def operate() -> None:
            try:
                asyncio.run(
                    run_operator(
                        settings,
                        configuration,
                        stop_flag=self._stop,
                        ready_flag=ready,
                        reconciler_ready=built,
                    )
                )
            except BaseException as error:
                if not built.done():
                    built.set_exception(error)
                raise
            finally:
                ready.set()

        # kopf says it ignores OS signals off the main thread; here that is the point.
        logging.getLogger("kopf._core.reactor.running").setLevel(logging.ERROR)
        self._operator = threading.Thread(target=operate, name="jitaccess-operator", daemon=True)
        self._operator.start()
        if not await asyncio.to_thread(ready.wait, 30):
            raise TimeoutError("the operator did not start within 30s")
        self.reconciler = await asyncio.wrap_future(built)
        return self.reconciler

    async def stop_operator(self) -> None:
        if self._operator is None:
            return
        self._stop.set()
        await asyncio.to_thread(self._operator.join, 30)
        self._operator = None

    @property
    def operator_alive(self) -> bool:
        return self._operator is not None and self._operator.is_alive()

    def write_kubeconfig(self) -> None:
        """One context per sandbox user; the token names the user to the sandbox API."""
        users = [{"name": user, "user": {"token": f"sandbox:{user}"}} for user in USERS]
        contexts = [
            {"name": user, "context": {"cluster": "jitaccess-sandbox", "user": user, "namespace": "team-sre"}}
            for user in USERS
        ]
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "admin",
            "clusters": [{"name": "jitaccess-sandbox", "cluster": {"server": self.k8s_url}}],
            "users": users,
            "contexts": contexts,
            "preferences": {},
        }
        self.kubeconfig.write_text(yaml.safe_dump(document, sort_keys=False))


async def serve_forever(sandbox: Sandbox) -> None:
    """Block until interrupted (or until the operator dies)."""
    while sandbox.operator_alive or not sandbox.run_operator:
        await asyncio.sleep(0.5)
