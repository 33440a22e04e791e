"""The scheduler stops acting the moment its replica stands down, cancelled or not."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from datetime import timedelta

from jitaccess.clock import ManualClock
from jitaccess.controller.scheduler import Scheduler


async def test_a_paused_scheduler_runs_nothing_more_and_returns_on_its_own():
    clock = ManualClock()
    done: list[Hashable] = []
    gate = asyncio.Event()

    async def work(key: Hashable) -> None:
        if key == "slow":
            await gate.wait()
        done.append(key)

    scheduler = Scheduler(work, clock, tick_s=0.01, concurrency=1)
    scheduler.schedule("first")
    scheduler.schedule("slow")
    scheduler.schedule("queued")  # waits for the one slot that "slow" holds
    scheduler.schedule("later", clock.now() + timedelta(minutes=5))
    loop = asyncio.create_task(scheduler.run())
    while done != ["first"]:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # "slow" holds the slot; the loop waits for it to start "queued"
    scheduler.pause()
    scheduler.schedule("after-pause")
    gate.set()  # frees the slot: the loop must notice the pause instead of starting "queued"
    await asyncio.wait_for(loop, 1)  # returns by itself, no cancellation needed
    clock.advance(timedelta(minutes=10))
    await asyncio.sleep(0.05)
    assert done == ["first", "slow"]
    assert (scheduler.pending, scheduler.due("later"), scheduler.due("after-pause")) == (0, None, None)


async def test_cancelling_the_scheduler_cancels_the_reconciles_in_flight_and_frees_their_slots():
    clock = ManualClock()
    running: set[Hashable] = set()
    finished: list[Hashable] = []

    async def work(key: Hashable) -> None:
        running.add(key)
        await asyncio.sleep(60)
        finished.append(key)

    scheduler = Scheduler(work, clock, tick_s=0.01, concurrency=2)
    for key in ("a", "b"):
        scheduler.schedule(key)
    loop = asyncio.create_task(scheduler.run())
    while len(running) < 2:
        await asyncio.sleep(0.01)
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)
    await asyncio.sleep(0)
    assert scheduler.busy == 0 and finished == []
    # A later term of leadership has its whole concurrency: both slots came back.
    running.clear()
    for key in ("c", "d"):
        scheduler.schedule(key)
    loop = asyncio.create_task(scheduler.run())
    await asyncio.wait_for(_until(lambda: running == {"c", "d"}), 1)
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)


async def _until(check) -> None:
    while not check():
        await asyncio.sleep(0.01)
