"""Leader election: the Lease protocol against the sandbox API, one elector at a time.

The electors talk to the sandbox over HTTPS through the official client; each has a ManualClock
of its own (two nodes' clocks), which the tests move instead of waiting for leases to run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from kubernetes import client

from jitaccess.clock import ManualClock
from jitaccess.controller.leader import LeaderElector, LeaseTimings
from jitaccess.controller.operator import kubernetes_configuration
from jitaccess_sandbox.runner import OPERATOR_NAMESPACE, OPERATOR_USER, Sandbox

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
# The clocks are ManualClocks, so duration and deadline cost no time. The retry period is also
# every call's time budget (an HTTP timeout): 50 ms was not always enough for a call on a loaded
# machine, in a test process whose garbage collector may pause it for longer.
FAST = LeaseTimings(
    duration=timedelta(seconds=15), renew_deadline=timedelta(seconds=10), retry_period=timedelta(seconds=0.5)
)
_leases = itertools.count(1)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Sandbox]:
    async with Sandbox(Path(tmp_path_factory.mktemp("leases")), run_operator=False) as running:
        # Each test campaigns for a Lease of its own; the operator's Role allows only "jitaccess".
        rbac = client.RbacAuthorizationV1Api(
            client.ApiClient(kubernetes_configuration(running.kubeconfig, context="admin"))
        )
        role = {
            "metadata": {"name": "test-any-lease", "namespace": OPERATOR_NAMESPACE},
            "rules": [
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "patch"]}
            ],
        }
        binding = {
            "metadata": {"name": "test-any-lease", "namespace": OPERATOR_NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "test-any-lease"},
            "subjects": [{"kind": "ServiceAccount", "name": "jitaccess", "namespace": OPERATOR_NAMESPACE}],
        }
        await asyncio.to_thread(rbac.create_namespaced_role, OPERATOR_NAMESPACE, role)
        await asyncio.to_thread(rbac.create_namespaced_role_binding, OPERATOR_NAMESPACE, binding)
        yield running


def coordination(sandbox: Sandbox, host: str | None = None) -> client.CoordinationV1Api:
    configuration = kubernetes_configuration(sandbox.kubeconfig, context=OPERATOR_USER)
    if host is not None:
        configuration.host = host
        # The kubeconfig loader re-reads the whole kubeconfig (server included) before each call
        # to refresh credentials; the sandbox's token never changes, and the host must stay ours.
        configuration.refresh_api_key_hook = None
    configuration.retries = 0  # an unreachable API must fail the attempt, not stall it
    return client.CoordinationV1Api(client.ApiClient(configuration))


def elector(
    sandbox: Sandbox, lease: str, identity: str, api: client.CoordinationV1Api | None = None
) -> LeaderElector:
    return LeaderElector(
        api or coordination(sandbox), OPERATOR_NAMESPACE, lease, identity, ManualClock(), FAST
    )


async def read_lease(sandbox: Sandbox, name: str) -> client.V1Lease:
    # Off the event loop: the sandbox API serves on it.
    return await asyncio.to_thread(coordination(sandbox).read_namespaced_lease, name, OPERATOR_NAMESPACE)


@contextlib.asynccontextmanager
async def leading(leader: LeaderElector) -> AsyncIterator[asyncio.Event]:
    """Run `leader` until the block ends, once it leads; yields the event set when it stands down."""
    acting, stopped = asyncio.Event(), asyncio.Event()

    async def start() -> None:
        acting.set()

    async def stop() -> None:
        stopped.set()

    running = asyncio.create_task(leader.run(start, stop))
    try:
        await asyncio.wait_for(acting.wait(), 30)  # a deadline for its first campaign
        yield stopped
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def test_of_two_replicas_campaigning_at_once_exactly_one_wins(sandbox):
    for _ in range(10):
        lease = f"race-{next(_leases)}"
        a, b = elector(sandbox, lease, "replica-a"), elector(sandbox, lease, "replica-b")
        won = await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew())
        assert sorted(won) == [False, True]
        winner = "replica-a" if won[0] else "replica-b"
        assert (await read_lease(sandbox, lease)).spec.holder_identity == winner
        # and the loser keeps losing while the winner renews
        for _ in range(3):
            assert await (a if won[0] else b).try_acquire_or_renew()
            assert not await (b if won[0] else a).try_acquire_or_renew()


async def test_a_standby_takes_the_lease_only_after_a_whole_silent_lease_duration(sandbox):
    lease = f"expiry-{next(_leases)}"
    leader, standby = elector(sandbox, lease, "replica-a"), elector(sandbox, lease, "replica-b")
    assert await leader.try_acquire_or_renew()
    assert not await standby.try_acquire_or_renew()
    standby.clock.advance(timedelta(seconds=14))
    assert not await standby.try_acquire_or_renew()
    assert await leader.try_acquire_or_renew()  # a renewal: the standby starts counting again
    assert not await standby.try_acquire_or_renew()
    standby.clock.advance(timedelta(seconds=14))
    assert not await standby.try_acquire_or_renew(), "taken although renewed 14 s ago"
    # The standby's own clock decides, not the renewTime the leader wrote: far ahead or behind,
    # what counts is how long the record has stood still as the standby saw it.
    standby.clock.advance(timedelta(seconds=2))
    assert await standby.try_acquire_or_renew()
    taken = await read_lease(sandbox, lease)
    assert (taken.spec.holder_identity, taken.spec.lease_transitions) == ("replica-b", 1)
    assert not await leader.try_acquire_or_renew()
    assert leader.holder == "replica-b"


async def test_a_leader_that_loses_the_lease_stops_acting_at_once(sandbox):
    lease = f"taken-{next(_leases)}"
    leader, standby = elector(sandbox, lease, "replica-a"), elector(sandbox, lease, "replica-b")
    async with leading(leader) as stopped:
        assert leader.leading
        assert not await standby.try_acquire_or_renew()
        # The leader is partitioned from the standby's view but not from the API: suppose the
        # standby's clock ran far ahead and it took the lease. The leader's next renewal fails
        # with a conflict, it sees another holder and stands down without waiting for a deadline.
        standby.clock.advance(timedelta(hours=1))
        while not await standby.try_acquire_or_renew():
            standby.clock.advance(timedelta(minutes=1))
        await asyncio.wait_for(stopped.wait(), 5)
        assert not leader.leading and leader.terms == 1


class Cuttable:
    """A TCP forwarder to the sandbox API that the test can cut: the network between a replica
    and the API server failing, while the API itself stays up for the others."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self.pipes.add(task)
            task.add_done_callback(self.pipes.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.pipes):
            task.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)


async def test_a_leader_cut_off_from_the_api_stops_before_anyone_may_take_over(sandbox):
    lease = f"cut-{next(_leases)}"
    forwarder = Cuttable(int(sandbox.k8s_url.rsplit(":", 1)[1]))
    port = await forwarder.start()
    leader = elector(sandbox, lease, "replica-a", coordination(sandbox, f"https://127.0.0.1:{port}"))
    standby = elector(sandbox, lease, "replica-b")
    async with leading(leader) as stopped:
        assert not await standby.try_acquire_or_renew()
        await forwarder.cut()
        # Renewals fail (no time passes on its clock): not yet past the renew deadline.
        await asyncio.sleep(3 * FAST.retry_period.total_seconds())
        assert leader.leading and not stopped.is_set()
        leader.clock.advance(FAST.renew_deadline)
        await asyncio.wait_for(stopped.wait(), 5)
        assert not leader.leading
        # It stopped on its own clock 10 s after its last renewal; the standby may take over
        # 15 s after it last saw the record change, on its clock: the 5 s between are the margin.
        assert (await read_lease(sandbox, lease)).spec.holder_identity == "replica-a"
        standby.clock.advance(FAST.duration)
        assert await standby.try_acquire_or_renew()


async def test_a_released_lease_is_taken_at_once(sandbox):
    lease = f"release-{next(_leases)}"
    leader, standby = elector(sandbox, lease, "replica-a"), elector(sandbox, lease, "replica-b")
    assert await leader.try_acquire_or_renew()
    assert not await standby.try_acquire_or_renew()
    await leader.release()
    assert not (await read_lease(sandbox, lease)).spec.holder_identity
    assert await standby.try_acquire_or_renew()  # no lease duration to wait out
    await leader.release()  # not the holder any more: nothing to hand over, and nothing written
    assert (await read_lease(sandbox, lease)).spec.holder_identity == "replica-b"


async def test_release_finds_the_version_a_cancelled_renewal_left(sandbox):
    lease = f"late-{next(_leases)}"
    leader, standby = elector(sandbox, lease, "replica-a"), elector(sandbox, lease, "replica-b")
    assert await leader.try_acquire_or_renew()
    # A renewal whose answer the shutdown cancelled: it landed, the elector never saw it.
    late = {"spec": {"renewTime": "2030-01-01T00:00:00.000000Z"}}
    await asyncio.to_thread(
        coordination(sandbox).patch_namespaced_lease,
        lease,
        OPERATOR_NAMESPACE,
        late,
        _content_type="application/merge-patch+json",
    )
    await leader.release()
    assert not (await read_lease(sandbox, lease)).spec.holder_identity
    assert await standby.try_acquire_or_renew()


async def test_a_restarted_replica_takes_its_own_lease_back_at_once(sandbox):
    lease = f"restart-{next(_leases)}"
    assert await elector(sandbox, lease, "jitaccess-7d9f-x2").try_acquire_or_renew()
    # SIGKILL: no release. The same pod's next container has the same name (POD_NAME).
    assert await elector(sandbox, lease, "jitaccess-7d9f-x2").try_acquire_or_renew()


async def test_the_sandbox_refuses_a_write_to_a_version_that_is_gone(sandbox):
    lease = f"stale-{next(_leases)}"
    assert await elector(sandbox, lease, "replica-a").try_acquire_or_renew()
    api = coordination(sandbox)
    version = (await read_lease(sandbox, lease)).metadata.resource_version
    merge = "application/merge-patch+json"
    await asyncio.to_thread(
        api.patch_namespaced_lease,
        lease,
        OPERATOR_NAMESPACE,
        {"spec": {"leaseTransitions": 5}},
        _content_type=merge,
    )
    stale = {"metadata": {"resourceVersion": version}, "spec": {"holderIdentity": "replica-b"}}
    with pytest.raises(client.ApiException) as refused:
        await asyncio.to_thread(
            api.patch_namespaced_lease, lease, OPERATOR_NAMESPACE, stale, _content_type=merge
        )
    assert refused.value.status == 409 and "the object has been modified" in refused.value.body
    assert (await read_lease(sandbox, lease)).spec.holder_identity == "replica-a"


async def test_timings_that_would_let_two_leaders_overlap_are_refused():
    with pytest.raises(ValueError, match="renew deadline < lease duration"):
        LeaseTimings(duration=timedelta(seconds=10), renew_deadline=timedelta(seconds=10))
    with pytest.raises(ValueError, match="retry period"):
        LeaseTimings(retry_period=timedelta(seconds=0))


class LateAnswers(client.CoordinationV1Api):
    """The real client over the real connection, whose Lease writes are answered late: the API
    takes each write at once, the replica hears of it `late_s` after (a loaded API server, or a
    loaded replica whose thread is not scheduled)."""

    late_s = 0.0

    def patch_namespaced_lease(self, *args: Any, **kwargs: Any) -> Any:
        answer = super().patch_namespaced_lease(*args, **kwargs)
        time.sleep(self.late_s)
        return answer


async def test_a_late_answered_renewal_that_landed_is_not_a_lost_lease(sandbox):
    """Under load a single replica logged that it lost the lease to itself, and stood down: its
    renewals landed, their answers came after it had given up on them. A renewal found in the
    lease, sent within the renew deadline, counts."""
    lease = f"late-{next(_leases)}"
    configuration = kubernetes_configuration(sandbox.kubeconfig, context=OPERATOR_USER)
    configuration.retries = 0
    api = LateAnswers(client.ApiClient(configuration))
    leader = elector(sandbox, lease, "replica-a", api)
    standby = elector(sandbox, lease, "replica-b")
    async with leading(leader) as stopped:
        api.late_s = 0.8  # every answer after the 0.5 s the renewal is given
        for _ in range(4):  # 16 s: past the deadline of the last renewal it *heard* of
            leader.clock.advance(timedelta(seconds=4))
            await renewed_now(sandbox, lease, leader)
        assert leader.leading and not stopped.is_set()
        assert (await read_lease(sandbox, lease)).spec.holder_identity == "replica-a"
        assert not await standby.try_acquire_or_renew()
        api.late_s = 0.0  # answered in time again, it leads on
        leader.clock.advance(timedelta(seconds=4))
        await renewed_now(sandbox, lease, leader)
        assert leader.leading and not stopped.is_set()


async def renewed_now(sandbox: Sandbox, lease: str, leader: LeaderElector) -> None:
    """Until a renewal sent at the leader's time now has landed (a condition, not a time)."""
    for _ in range(400):
        if (await read_lease(sandbox, lease)).spec.renew_time >= leader.clock.now() - timedelta(seconds=1):
            return
        await asyncio.sleep(0.05)
