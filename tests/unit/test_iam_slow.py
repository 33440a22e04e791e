"""An IAM change that keeps a request waiting is shown as slow once; a prompt one shows nothing;
showing it never interrupts the write."""

from __future__ import annotations

import asyncio
from typing import Any

from jitaccess.api.bindings import Reference
from jitaccess.controller.iam_steps import apply_iam
from jitaccess.iam.writer import Outcome
from jitaccess.policy.steps import IamChange

CHANGE = (IamChange("projects/p", (Reference("team", "r", "0f0e-1"),)),)


class GatedWriter:
    """Answers each write once `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.finished = 0

    async def apply(self, resource: str, owners: Any = (), hold: Any = ()) -> Outcome:
        await self.release.wait()
        self.finished += 1
        return Outcome(ok=True)


def test_a_slow_write_is_shown_once_and_a_prompt_one_not_at_all():
    async def run() -> tuple[list[int], list[int], Outcome, Outcome]:
        slow, prompt = GatedWriter(), GatedWriter()
        shown_slow: list[int] = []
        shown_prompt: list[int] = []

        async def show_slow() -> None:
            shown_slow.append(slow.finished)  # while the write still waits
            slow.release.set()

        async def show_prompt() -> None:
            shown_prompt.append(prompt.finished)

        prompt.release.set()
        # Bounded: a write never shown as slow is never released here either.
        first = await asyncio.wait_for(apply_iam(slow, CHANGE, show_slow, slow_s=0.01), 10)  # type: ignore[arg-type]
        second = await apply_iam(prompt, CHANGE, show_prompt, slow_s=5)  # type: ignore[arg-type]
        return shown_slow, shown_prompt, first, second

    shown_slow, shown_prompt, first, second = asyncio.run(run())
    assert shown_slow == [0] and first.ok
    assert shown_prompt == [] and second.ok


def test_a_failure_to_show_it_does_not_interrupt_the_write():
    async def run() -> tuple[Outcome, int]:
        writer = GatedWriter()

        async def broken() -> None:
            writer.release.set()
            raise RuntimeError("the API server refused the status")

        outcome = await asyncio.wait_for(apply_iam(writer, CHANGE, broken, slow_s=0.01), 10)  # type: ignore[arg-type]
        return outcome, writer.finished

    outcome, finished = asyncio.run(run())
    assert outcome.ok and finished == 1
