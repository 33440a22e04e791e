"""Two replicas, as the Deployment runs them: two `jitaccess run --leader-elect`
processes against one sandbox, sharing the attestation key. Only the Lease holder acts; the
standby serves admission; a killed leader is replaced once its lease runs out (on the standby's
clock, which the test moves), a stopped one hands over at once; and no request is acted on twice.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from kubernetes import client

from jitaccess.api.bindings import reference_of
from jitaccess_sandbox.runner import OPERATOR_NAMESPACE, Sandbox, _free_port
from tests.integration.conftest import Cluster, until
from tests.support.operator_process import OperatorProcess

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
PROJECT = "projects/replicas"
FOREIGN = {"role": "roles/viewer", "members": ["group:auditors@example.com"]}
LEASE = timedelta(seconds=15)


class Replica(OperatorProcess):
    """One pod of the Deployment: its own name, metrics port, and lease clock."""

    def __init__(self, sandbox: Sandbox, directory: Path, name: str, key: str) -> None:
        self.name = name
        self.metrics_port = _free_port()
        self.lease_clock_file = directory / "lease-clock-offset"
        super().__init__(
            sandbox,
            directory,
            "--leader-elect",
            f"--leader-election-identity={name}",
            f"--leader-election-namespace={OPERATOR_NAMESPACE}",
            "--retry-period=0.1",
            f"--lease-clock-offset-file={self.lease_clock_file}",
            f"--metrics-port={self.metrics_port}",
            "--metrics-host=127.0.0.1",
            attestation_key=key,
            webhook_port=_free_port(),
        )
        self.lease_offset = 0.0
        self.lease_clock_file.write_text("0")

    def advance_lease_clock(self, delta: timedelta) -> None:
        self.lease_offset += delta.total_seconds()
        self.lease_clock_file.write_text(str(self.lease_offset))

    async def metrics(self) -> dict[str, float]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{self.metrics_port}/metrics") as response:
                text = await response.text()
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Cluster, Replica, Replica]]:
    directory = Path(tmp_path_factory.mktemp("replicas"))
    async with Sandbox(
        directory / "sandbox", run_operator=False, tick_s=0.05, trusted_submitters=frozenset({"admin"})
    ) as sandbox:
        sandbox.emulator.resources.add(PROJECT)
        sandbox.emulator.seed(PROJECT, [FOREIGN])
        key = secrets.token_hex(32)  # one Secret for both pods
        a = Replica(sandbox, directory / "a", "jitaccess-7d9f-a", key)
        b = Replica(sandbox, directory / "b", "jitaccess-7d9f-b", key)
        try:
            yield Cluster(sandbox), a, b
        finally:
            await a.stop()
            await b.stop()


def advance_requests_clock(sandbox: Sandbox, replicas: list[Replica], delta: timedelta) -> None:
    """Move the time requests live by (the API's and every replica's), not the leases'."""
    sandbox.clock.advance(delta)
    for replica in replicas:
        replica.clock_file.write_text(str(sandbox.clock.offset.total_seconds()))


async def lease_holder(cluster: Cluster) -> tuple[str, int]:
    api = client.CoordinationV1Api(cluster.custom.api_client)
    lease = await asyncio.to_thread(api.read_namespaced_lease, "jitaccess", OPERATOR_NAMESPACE)
    return lease.spec.holder_identity or "", lease.spec.lease_transitions or 0


async def holds(cluster: Cluster, replica: Replica) -> bool:
    return (await lease_holder(cluster))[0] == replica.name


def jit_bindings(cluster: Cluster) -> Counter[tuple[str, str]]:
    found: Counter[tuple[str, str]] = Counter()
    for binding in cluster.bindings(PROJECT):
        reference = reference_of(binding.get("condition"))
        if reference is not None:
            for _ in binding["members"]:
                found[binding["role"], reference[1]] += 1
    return found


async def request(cluster: Cluster, name: str) -> dict[str, Any]:
    return await cluster.request_as(
        "alice@example.com", name, "replicas", roles=["roles/compute.admin"], duration="1h"
    )


async def test_one_replica_acts_the_other_stands_by_and_takes_over(world):
    cluster, a, b = world
    sandbox = cluster.sandbox

    # 1. A starts first and takes the Lease; B starts as the standby and serves admission
    #    (its webhooks are the ones the API calls from now on).
    await a.start()
    await until(lambda: holds(cluster, a), "A holds the Lease", timeout_s=30, every_s=0.1)
    await b.start()
    await cluster.grant(
        "replicas", PROJECT, roles=["roles/compute.admin"], principals=["user:alice@example.com"]
    )
    await cluster.wait_grant_ready("replicas")
    for name in ("r1", "r2", "r3"):
        admitted = await request(cluster, name)
        assert admitted["spec"]["requester"] == "user:alice@example.com"  # stamped by B's webhook
    for name in ("r1", "r2", "r3"):
        await cluster.wait_phase(name, "Active")
    seen_a, seen_b = await a.metrics(), await b.metrics()
    assert (seen_a["jitaccess_leader"], seen_b["jitaccess_leader"]) == (1, 0)
    assert seen_b["jitaccess_reconciles_total"] == 0, "the standby acted"
    assert (seen_b["jitaccess_work_busy"], seen_b["jitaccess_work_scheduled"]) == (0, 0)
    assert seen_b['jitaccess_iam_calls_total{method="setIamPolicy"}'] == 0
    # Three creations, and the leader's own metadata writes (its sealed records) admitted by B.
    assert seen_b['jitaccess_webhook_decisions_total{decision="allowed",webhook="stamp-requester"}'] >= 3
    assert seen_b['jitaccess_requests{phase="Active"}'] == 3  # it watches: its cache is current

    # 2. The leader dies (SIGKILL: no hand-over). Nobody acts until its lease runs out on B's
    #    clock: a request admitted meanwhile waits, phase-less.
    await a.kill()
    await request(cluster, "r4")
    for _ in range(10):  # ten of B's retry periods
        await asyncio.sleep(0.1)
        assert await holds(cluster, a)
    assert ((await cluster.get("r4")) or {}).get("status") is None

    # 3. A lease duration later (B's clock), B takes over and catches up.
    b.advance_lease_clock(LEASE + timedelta(seconds=1))
    await until(lambda: holds(cluster, b), "B takes the Lease", timeout_s=30, every_s=0.1)
    assert (await lease_holder(cluster))[1] == 1  # one transition
    await cluster.wait_phase("r4", "Active")
    assert (await b.metrics())["jitaccess_leader"] == 1

    # 4. A's pod restarts (same name): B holds the Lease and renews it, so A stands by.
    await a.start()  # admission goes to A now
    await request(cluster, "r5")
    await cluster.wait_phase("r5", "Active")
    assert (await a.metrics())["jitaccess_leader"] == 0
    assert (await a.metrics())["jitaccess_reconciles_total"] == 0

    # 5. Access ends on time, ended by the leader (B).
    advance_requests_clock(sandbox, [a, b], timedelta(hours=1, minutes=1))
    for name in ("r1", "r2", "r3", "r4", "r5"):
        await cluster.wait_phase(name, "Expired")
    assert jit_bindings(cluster) == Counter()

    # 6. B is stopped (SIGTERM, as in a rolling update): it releases the Lease and A takes it
    #    at once, with no lease duration to wait out.
    await b.stop()
    await until(lambda: holds(cluster, a), "A takes the released Lease", timeout_s=10, every_s=0.1)
    await request(cluster, "r6")
    await cluster.wait_phase("r6", "Active")
    assert jit_bindings(cluster) == Counter({("roles/compute.admin", "r6"): 1})
    assert FOREIGN in cluster.bindings(PROJECT)

    # 7. Never two replicas acting: one Activated and (but for r6) one Expired Event each.
    for name in ("r1", "r2", "r3", "r4", "r5", "r6"):
        reasons = Counter(reason for _, reason, _ in await cluster.events(name))
        assert reasons["Activated"] == 1, (name, reasons)
        assert reasons["Expired"] == (0 if name == "r6" else 1), (name, reasons)
