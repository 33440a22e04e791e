"""The floor of `make bench` (benchmarks/floor_operator.py) and the bench's floor mode.

The floor must be a fair floor: the real admission (a request it would mark Active was stamped and
sealed; one the rules refuse is refused), one status patch per request however many events it
sees, and no IAM. And a bench run with the floor records it, and the ratios over it, in its JSON.
Nothing here is timed: figures are checked for being there, never for their size.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import secrets
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from jitaccess.controller.config import OperatorConfig
from jitaccess.controller.operator import kubernetes_configuration, operate
from jitaccess.policy.admission import ATTESTATION, IdentitySettings
from jitaccess_sandbox.runner import OPERATOR_USER, Sandbox
from tests.integration.conftest import GROUP, VERSION, until

pytestmark = [pytest.mark.integration, pytest.mark.sandbox_api]
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
REQUESTS = 10
STATUS_PATCH = (OPERATOR_USER, "patch", f"activationrequests.{GROUP}", "status")


def load(name: str) -> ModuleType:
    """A module of benchmarks/ (a folder of scripts, not a package), imported once."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before it runs: its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


class FloorThread:
    """The floor in a thread of its own with its own loop (as the sandbox runs the real operator),
    so that the test sees every event it handled."""

    def __init__(self, sandbox: Sandbox, key: bytes) -> None:
        floor_operator = load("floor_operator")
        self.settings = OperatorConfig(
            iam_endpoint=sandbox.iam_url,
            webhook_port=sandbox.webhook_port,
            webhook_cert_dir=sandbox.webhook_cert_dir,
            attestation_key=key,
            identity=IdentitySettings(),
        )
        configuration = kubernetes_configuration(sandbox.operator_kubeconfig, context=OPERATOR_USER)
        self.floor, self.registry = floor_operator.build_floor(self.settings, configuration)
        self.handled: dict[str, int] = {}  # request name -> the newest resourceVersion handled
        handle = self.floor.request_seen

        async def recording(event: dict[str, Any]) -> None:
            await handle(event)
            metadata = event["object"]["metadata"]
            version = int(metadata["resourceVersion"])
            self.handled[metadata["name"]] = max(version, self.handled.get(metadata["name"], 0))

        self.floor.request_seen = recording
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    async def __aenter__(self) -> FloorThread:
        ready = threading.Event()

        def run() -> None:
            try:
                asyncio.run(operate(self.settings, self.registry, stop_flag=self.stop, ready_flag=ready))
            finally:
                ready.set()

        logging.getLogger("kopf._core.reactor.running").setLevel(
            logging.ERROR
        )  # no signals off the main thread
        self.thread = threading.Thread(target=run, name="floor-operator", daemon=True)
        self.thread.start()
        assert await asyncio.to_thread(ready.wait, 60), "the floor did not start"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            await asyncio.to_thread(self.thread.join, 30)


def request_body(name: str, justification: str = "INC-4711: benchmark") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ActivationRequest",
        "metadata": {"name": name, "namespace": "team-sre"},
        "spec": {"grant": "floor", "roles": ["roles/compute.admin"], "justification": justification},
    }


async def test_the_floor_marks_each_admitted_request_active_once_and_writes_no_iam(tmp_path: Path):
    key = secrets.token_bytes(32)
    async with Sandbox(tmp_path, run_operator=False) as sandbox:
        admin = client.CustomObjectsApi(
            client.ApiClient(kubernetes_configuration(sandbox.kubeconfig, "admin"))
        )
        alice = client.CustomObjectsApi(
            client.ApiClient(kubernetes_configuration(sandbox.kubeconfig, "alice@example.com"))
        )
        grant = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "EligibleGrant",
            "metadata": {"name": "floor"},
            "spec": {
                "resource": "projects/my-sandbox",
                "roles": ["roles/compute.admin"],
                "principals": ["user:alice@example.com"],
                "maxDuration": "2h",
                "justification": {"pattern": "^INC-[0-9]+: .+"},
            },
        }
        await asyncio.to_thread(admin.create_cluster_custom_object, GROUP, VERSION, "eligiblegrants", grant)
        async with FloorThread(sandbox, key) as floor:
            await sandbox.wait_for_admission()

            async def requests() -> dict[str, dict[str, Any]]:
                found = await asyncio.to_thread(
                    admin.list_namespaced_custom_object, GROUP, VERSION, "team-sre", "activationrequests"
                )
                return {item["metadata"]["name"]: item for item in found["items"]}

            async def create(name: str, justification: str = "INC-4711: benchmark") -> None:
                await asyncio.to_thread(
                    alice.create_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    "team-sre",
                    "activationrequests",
                    request_body(name, justification),
                )

            # The real admission judges what the floor serves: this justification breaks the grant's rule.
            with pytest.raises(ApiException) as refused:
                await create("floor-refused", justification="no ticket")
            assert refused.value.status in (403, 422)

            names = [f"floor-{n}" for n in range(REQUESTS)]
            await asyncio.gather(*(create(name) for name in names))

            async def all_active() -> bool:
                found = await requests()
                return all(
                    (found.get(name) or {}).get("status", {}).get("phase") == "Active" for name in names
                )

            await until(all_active, f"{REQUESTS} requests Active", timeout_s=120)

            # More events for every request (a label each): none of them is marked again.
            touched: dict[str, int] = {}
            for name in names:
                patched = await asyncio.to_thread(
                    admin.patch_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    "team-sre",
                    "activationrequests",
                    name,
                    {"metadata": {"labels": {"bench.jitaccess.dev/touched": "yes"}}},
                )
                touched[name] = int(patched["metadata"]["resourceVersion"])

            async def all_touches_handled() -> bool:
                return all(floor.handled.get(name, 0) >= version for name, version in touched.items())

            await until(all_touches_handled, "the floor handled every touched request", timeout_s=120)

        found = await requests()
        assert sorted(found) == names
        for name in names:
            body = found[name]
            assert body["status"] == {"phase": "Active"}, name  # one patch, nothing else written
            assert body["spec"]["requester"] == "user:alice@example.com"  # stamped by admission
            assert ATTESTATION in body["metadata"]["annotations"]  # and sealed
        assert sandbox.api.served[STATUS_PATCH] == REQUESTS
        assert sandbox.emulator.calls == []


async def test_a_small_bench_run_records_the_floor_and_the_ratios_over_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    bench = load("bench")
    scenario = bench.Scenario("burst-10-1", "burst", count=REQUESTS)
    settings = bench.Settings(deadline_s=120)
    document = await bench.run_modes(scenario, ["floor", "batched"], settings, tmp_path)

    written = (tmp_path / "burst-10-1.json").read_text()
    assert bench.json.loads(written) == document
    floor = document["floor"]
    assert floor["mode"] == "floor" and document["mode"] == "batched"
    for run in (floor, document):
        assert run["activations"] == REQUESTS, run["failures"]
        for figure in (
            "operator_cpu_per_activation_ms",
            "harness_cpu_per_activation_ms",
            "api_calls_per_activation",
            "operator_cpu_window_s",
            "harness_cpu_window_s",
        ):
            assert isinstance(run[figure], int | float), figure
        assert run["latency_s"]["p99"] is not None
    assert floor["set_iam_policy_calls"] == floor["get_iam_policy_calls"] == 0
    assert floor["api_calls_per_activation"] >= 1.0  # its one status patch each
    over = document["ratios"]["over_floor"]["batched"]
    assert set(over) == {
        "latency_p50",
        "latency_p99",
        "cpu_per_activation",
        "harness_cpu_per_activation",
        "api_calls_per_activation",
    }
    assert all(isinstance(value, float) for value in over.values()), over
    printed = capsys.readouterr().out
    assert "batched/floor" in printed and "cpu/act" in printed


async def test_scenarios_without_a_floor_say_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    bench = load("bench")
    for kind in ("expiry", "scale"):
        document = await bench.run_modes(
            bench.Scenario(f"{kind}-x", kind), ["floor"], bench.Settings(), tmp_path
        )
        assert document["floor"]["skipped"] == bench.FLOOR_NOT_APPLICABLE[kind]
        assert f"{kind}-x" in capsys.readouterr().out
