"""The batching writer over the real REST client against the emulator on loopback.

Counts are exact: the emulator logs every call, and concurrency is arranged so that nothing here
depends on timing (changes are queued before the writer's worker first runs, or a project is
stalled by the emulator until the test releases it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jitaccess.api.bindings import Activation, Binding, Reference, parse_reference, render
from jitaccess.iam.batcher import BatchingWriter
from jitaccess.iam.ratelimit import TokenBucket
from jitaccess.iam.store import PolicyStore
from jitaccess.iam.writer import PolicyWriter, RetryPolicy
from jitaccess_emulator.server import Emulator, start

KEY = b"t" * 32
START = datetime(2026, 11, 24, 9, tzinfo=UTC)
PROJECT = "projects/batch-test"
FOREIGN = {"role": "roles/viewer", "members": ["group:ops@example.com"]}
FAST_RETRY = RetryPolicy(quota_base_s=0.01, server_base_s=0.01, conflict_base_s=0.001)


def activation(number: int, resource: str = PROJECT, role: str = "roles/compute.admin") -> list[Binding]:
    return render(
        Activation(
            resource,
            (role,),
            f"user:engineer{number}@example.com",
            START,
            START + timedelta(minutes=30),
            f"INC-{number}: incident",
            (),
            Reference.sealed("team-sre", f"req-{number}", f"0a1b-{number:04x}", KEY),
        )
    )


class FakeTime:
    """A monotonic clock that moves only when the rate limiter sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
async def iam():
    emulator = Emulator(resources={PROJECT} | {f"projects/p{i}" for i in range(40)})
    emulator.seed(PROJECT, [FOREIGN])
    runner, url = await start(emulator)
    yield emulator, PolicyStore(url)
    await runner.cleanup()


def sets(emulator: Emulator, resource: str | None = None) -> int:
    return sum(
        1
        for call in emulator.calls
        if call.method == "setIamPolicy"
        and call.status == 200
        and (resource is None or call.resource == resource)
    )


def members(emulator: Emulator, resource: str = PROJECT) -> set[str]:
    return {m for b in emulator.snapshot(resource)["bindings"] for m in b["members"]}


async def test_concurrent_changes_to_one_resource_are_one_write(iam):
    emulator, store = iam
    writer = BatchingWriter(store, FAST_RETRY)
    outcomes = await asyncio.gather(
        *(writer.apply(PROJECT, owners=owners(activation(n)), hold=activation(n)) for n in range(50))
    )
    assert all(o.ok and o.wrote for o in outcomes)
    assert sets(emulator) == 1 and writer.stats["get"] == 1
    assert members(emulator) == {"group:ops@example.com"} | {
        f"user:engineer{n}@example.com" for n in range(50)
    }
    removed = await asyncio.gather(*(writer.apply(PROJECT, owners=owners(activation(n))) for n in range(50)))
    assert all(o.ok for o in removed) and sets(emulator) == 2
    assert members(emulator) == {"group:ops@example.com"}


async def test_the_policy_our_write_returned_stands_in_for_the_next_read_but_never_hides_a_foreign_write(
    iam,
):
    emulator, store = iam
    writer = BatchingWriter(store, FAST_RETRY)
    assert (await writer.apply(PROJECT, owners=owners(activation(0)), hold=activation(0))).wrote
    assert (await writer.apply(PROJECT, owners=owners(activation(1)), hold=activation(1))).wrote
    assert writer.stats["get"] == 1 and sets(emulator) == 2  # the second cycle wrote without reading

    def another_tool_adds_a_binding() -> None:
        policy = store.get(PROJECT)
        policy.bindings.add(role="roles/browser", members=["user:auditor@example.com"])
        store.set(PROJECT, policy)

    await asyncio.to_thread(another_tool_adds_a_binding)
    assert (await writer.apply(PROJECT, owners=owners(activation(2)), hold=activation(2))).wrote
    # Our remembered etag was stale: Google said 409, the retry read afresh and kept their binding.
    assert writer.stats["conflicts"] == 1 and writer.stats["get"] == 2
    assert members(emulator) == {
        "group:ops@example.com",
        "user:auditor@example.com",
        *(f"user:engineer{n}@example.com" for n in range(3)),
    }


async def test_a_no_op_against_our_remembered_write_is_checked_on_a_fresh_read(iam):
    emulator, store = iam
    writer = BatchingWriter(store, FAST_RETRY)
    assert (await writer.apply(PROJECT, owners=owners(activation(0)), hold=activation(0))).wrote
    # Another tool puts back a binding of ours we never wrote since (a restored backup) and
    # removes the one we did write: by our remembered policy, neither change has anything to do.
    emulator.seed(PROJECT, [FOREIGN, _as_iam(activation(1)[0])])
    assert (await writer.apply(PROJECT, owners=owners(activation(1)))).wrote
    assert (await writer.apply(PROJECT, owners=owners(activation(0)), hold=activation(0))).wrote
    assert members(emulator) == {"group:ops@example.com", "user:engineer0@example.com"}


def _as_iam(binding: Binding) -> dict[str, Any]:
    return {"role": binding.role, "members": [binding.member], "condition": binding.condition()}


async def test_changes_arriving_during_a_write_go_together_in_the_next(iam):
    emulator, store = iam
    writer = BatchingWriter(store, FAST_RETRY)
    emulator.stall(PROJECT)
    first = asyncio.create_task(writer.apply(PROJECT, owners=owners(activation(0)), hold=activation(0)))
    await _until(lambda: writer.stats["get"] == 1)  # the first cycle is in flight, held by IAM
    later = [
        asyncio.create_task(writer.apply(PROJECT, owners=owners(activation(n)), hold=activation(n)))
        for n in range(1, 21)
    ]
    await asyncio.sleep(0.05)
    assert not first.done() and not any(task.done() for task in later)
    emulator.release(PROJECT)
    outcomes = await asyncio.gather(first, *later)
    assert all(o.ok for o in outcomes)
    assert sets(emulator) == 2 and writer.batches == 2 and writer.largest_batch == 20


async def test_one_invalid_binding_fails_alone_and_the_rest_are_written(iam):
    emulator, store = iam
    emulator.configure({"unknown_roles": ["roles/does.not.exist"]})
    writer = BatchingWriter(store, FAST_RETRY)
    changes = [activation(n) for n in range(10)]
    changes[6] = activation(6, role="roles/does.not.exist")
    outcomes = await asyncio.gather(*(writer.apply(PROJECT, owners=owners(c), hold=c) for c in changes))
    failed = [n for n, o in enumerate(outcomes) if not o.ok]
    assert failed == [6]
    assert outcomes[6].permanent and "roles/does.not.exist" in outcomes[6].message
    assert all(o.ok for n, o in enumerate(outcomes) if n != 6)
    written = members(emulator)
    assert "user:engineer6@example.com" not in written
    assert {f"user:engineer{n}@example.com" for n in range(10) if n != 6} <= written
    assert "group:ops@example.com" in written


async def test_a_change_is_applied_whole_or_not_at_all(iam):
    """A request with two roles, one invalid: neither binding is written (nothing half-granted)."""
    emulator, store = iam
    emulator.configure({"unknown_roles": ["roles/does.not.exist"]})
    writer = BatchingWriter(store, FAST_RETRY)
    mixed = activation(1) + activation(1, role="roles/does.not.exist")
    good, bad = await asyncio.gather(
        writer.apply(PROJECT, owners=owners(activation(2)), hold=activation(2)),
        writer.apply(PROJECT, owners=owners(mixed), hold=mixed),
    )
    assert good.ok and not bad.ok and bad.permanent
    assert "user:engineer1@example.com" not in members(emulator)


async def test_permanent_resource_errors_fail_the_whole_batch_without_splitting(iam):
    emulator, store = iam
    writer = BatchingWriter(store, FAST_RETRY)
    outcomes = await asyncio.gather(
        *(
            writer.apply(
                "projects/not-declared",
                owners=owners(activation(n, "projects/not-declared")),
                hold=activation(n, "projects/not-declared"),
            )
            for n in range(8)
        )
    )
    assert all(not o.ok and o.permanent and o.message.startswith("403") for o in outcomes)
    assert len(emulator.calls) == 1  # one read refused: the batch was not split eight ways


async def test_a_slow_resource_never_delays_another(iam):
    emulator, store = iam
    writer = BatchingWriter(store, FAST_RETRY)
    emulator.stall("projects/p0")
    slow = asyncio.create_task(
        writer.apply(
            "projects/p0", owners=owners(activation(0, "projects/p0")), hold=activation(0, "projects/p0")
        )
    )
    fast = await asyncio.gather(
        *(
            writer.apply(
                f"projects/p{i}",
                owners=owners(activation(i, f"projects/p{i}")),
                hold=activation(i, f"projects/p{i}"),
            )
            for i in range(1, 6)
        )
    )
    assert all(o.ok and o.wrote for o in fast)
    assert not slow.done()
    emulator.release("projects/p0")
    assert (await slow).ok


class RecordingBucket(TokenBucket):
    """The real bucket, noting when (on its clock) each token was handed out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.granted: list[float] = []

    async def take(self) -> None:
        await super().take()
        self.granted.append(self._clock())


class GatedBucket(TokenBucket):
    """Hands out tokens only when the test opens the gate."""

    def __init__(self) -> None:
        super().__init__(8.0)
        self.gate = asyncio.Event()
        self.waiting = 0

    async def take(self) -> None:
        self.waiting += 1
        await self.gate.wait()
        self.waiting -= 1
        await super().take()


async def test_changes_arriving_while_waiting_for_a_token_ride_along(iam):
    """Under the quota, a resource waits its turn; what arrives meanwhile goes in the same write."""
    emulator, store = iam
    bucket = GatedBucket()
    writer = BatchingWriter(store, FAST_RETRY, bucket=bucket)
    first = asyncio.create_task(writer.apply(PROJECT, owners=owners(activation(0)), hold=activation(0)))
    await _until(lambda: bucket.waiting == 1)
    later = [
        asyncio.create_task(writer.apply(PROJECT, owners=owners(activation(n)), hold=activation(n)))
        for n in range(1, 10)
    ]
    await asyncio.sleep(0)
    bucket.gate.set()
    assert all(o.ok for o in await asyncio.gather(first, *later))
    assert sets(emulator) == 1 and writer.largest_batch == 10


async def test_writes_stay_under_the_rate_limit(iam):
    emulator, store = iam
    time = FakeTime()
    bucket = RecordingBucket(8.0, burst=2, clock=time.clock, sleep=time.sleep)
    writer = BatchingWriter(store, FAST_RETRY, bucket=bucket, window_s=0)
    outcomes = await asyncio.gather(
        *(
            writer.apply(
                f"projects/p{i}",
                owners=owners(activation(i, f"projects/p{i}")),
                hold=activation(i, f"projects/p{i}"),
            )
            for i in range(40)
        )
    )
    assert all(o.ok for o in outcomes)
    assert writer.stats["get"] == 40 and sets(emulator) == 40
    # Never more than 10 in any second (Google's quota), and 8/s once the burst of 2 is spent.
    assert all(
        later - earlier >= 1.0 for earlier, later in zip(bucket.granted, bucket.granted[10:], strict=False)
    )
    assert time.now == pytest.approx(38 / 8)


async def test_a_429_pauses_every_writer(iam):
    emulator, store = iam
    time = FakeTime()
    # A rate so high that only a pause can make anyone wait.
    bucket = TokenBucket(1000.0, burst=100, clock=time.clock, sleep=time.sleep)
    writer = BatchingWriter(store, RetryPolicy(quota_base_s=0.01), bucket=bucket, window_s=0)
    emulator.configure({"fail_next": [{"method": "setIamPolicy", "status": 429, "count": 1}]})
    outcomes = await asyncio.gather(
        *(
            writer.apply(
                f"projects/p{i}",
                owners=owners(activation(i, f"projects/p{i}")),
                hold=activation(i, f"projects/p{i}"),
            )
            for i in range(4)
        )
    )
    assert all(o.ok for o in outcomes) and writer.stats["quota"] == 1
    # The backoff after a 429 is at least half its base (0.01 s): the bucket waited it out.
    assert time.now >= 0.005 and bucket.waited_s >= 0.005
    assert sets(emulator) == 4


async def test_the_emulator_enforces_googles_quota(iam):
    """The baseline the batching writer is measured against: unthrottled writes meet 429s."""
    emulator, store = iam
    emulator.configure({"quota": {"reads_per_min": 5}})  # per minute: no timing in this test
    writer = PolicyWriter(store, RetryPolicy(attempts=1), serialise=False)
    outcomes = await asyncio.gather(
        *(
            writer.apply(
                f"projects/p{i}",
                owners=owners(activation(i, f"projects/p{i}")),
                hold=activation(i, f"projects/p{i}"),
            )
            for i in range(15)
        )
    )
    refused = [o for o in outcomes if not o.ok]
    assert refused and all("Quota exceeded for quota metric 'Read requests'" in o.message for o in refused)
    assert len(refused) == 10 and sets(emulator) == 5


async def test_per_activation_mode_races_on_the_etag(iam):
    emulator, store = iam
    writer = PolicyWriter(store, FAST_RETRY, serialise=False)
    emulator.stall(PROJECT)
    tasks = [
        asyncio.create_task(writer.apply(PROJECT, owners=owners(activation(n)), hold=activation(n)))
        for n in range(10)
    ]
    await _until(lambda: writer.stats["get"] >= 2)  # two reads of the same etag, held by IAM
    emulator.release(PROJECT)
    outcomes = await asyncio.gather(*tasks)
    assert all(o.ok for o in outcomes)
    assert sets(emulator, PROJECT) >= 10 and writer.stats["conflicts"] > 0
    assert len(members(emulator)) == 11


async def _until(check: Callable[[], bool], timeout_s: float = 5) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.005)


def owners(bindings) -> tuple:
    """The references of these bindings: whose bindings a change replaces."""
    return tuple(dict.fromkeys(parse_reference(b.condition()) for b in bindings))
