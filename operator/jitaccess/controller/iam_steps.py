"""Carrying out a step's IAM changes and wording what IAM answered into the step that follows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

from jitaccess.controller.cache import RequestKey
from jitaccess.controller.telemetry import Metrics
from jitaccess.iam.writer import IamWriter, Outcome
from jitaccess.policy.conditions import READY, REVOCATION_FAILING
from jitaccess.policy.steps import IamChange, Step

log = logging.getLogger(__name__)


async def clear_after_refusal(
    writer: IamWriter, metrics: Metrics, key: RequestKey, ending: Step, refused: Outcome
) -> Step:
    """A refused write gave nothing; what an earlier attempt may have left is removed first. If
    IAM refuses that too (it refuses this resource to the operator altogether), the request
    still ends, saying so: such bindings end by their own IAM condition."""
    cleared = await apply_iam(writer, ending.iam)
    metrics.removal(key, cleared.ok)
    if ending.on_success is None:
        return ending
    if cleared.ok:
        return ending.on_success
    if not cleared.permanent:
        return ending  # retried: removal first, then the end
    return with_reason(
        ending.on_success,
        f"IAM refused the change: {refused.message.rstrip('.')}; nothing was granted (and IAM refuses "
        "this resource to the operator: bindings an earlier attempt may have left end by their IAM "
        "condition)",
    )


# How long an IAM change may keep a request waiting before its status says so (`Step.on_slow`):
# a prompt write shows nothing between the step before and the one after it.
SLOW_IAM_S = 3.0


async def apply_iam(
    writer: IamWriter,
    changes: tuple[IamChange, ...],
    if_slow: Callable[[], Awaitable[None]] | None = None,
    slow_s: float = SLOW_IAM_S,
) -> Outcome:
    """`changes`, and `if_slow` once when they have not been answered within `slow_s`."""
    writing = asyncio.ensure_future(_apply(writer, changes))
    try:
        if if_slow is not None and not (await asyncio.wait({writing}, timeout=slow_s))[0]:
            try:
                await if_slow()
            except Exception as error:  # showing it is not worth interrupting the write
                log.warning("could not show that an IAM change is slow: %s", error)
        return await writing
    finally:
        writing.cancel()  # only if this was cancelled before the write ended


async def _apply(writer: IamWriter, changes: tuple[IamChange, ...]) -> Outcome:
    """Each change is one atomic write on one resource. Every removal is attempted even when
    another fails (access must end wherever it can); nothing is granted after a failure."""
    failed: Outcome | None = None
    for change in changes:
        if change.hold and failed is not None:
            continue
        outcome = await writer.apply(change.resource, owners=change.owners, hold=change.hold)
        if not outcome.ok and failed is None:
            failed = outcome
    return failed or Outcome(ok=True)


def with_reason(step: Step, message: str) -> Step:
    """The step, with IAM's own words in the message of the condition it sets, and in its Event
    (for a step that first removes bindings, in the step that follows)."""
    if step.status is None and step.on_success is not None:
        return replace(step, on_success=with_reason(step.on_success, message))
    status = dict(step.status or {})
    kind = READY if "phase" in status else REVOCATION_FAILING
    status["conditions"] = [
        dict(condition, message=message) if condition.get("type") == kind else condition
        for condition in status.get("conditions", [])
    ]
    event = replace(step.event, message=message) if step.event else None
    return replace(step, status=status, event=event)


def iam_problem(step: Step, outcome: Outcome) -> str:
    kind = READY if "phase" in (step.status or {}) else REVOCATION_FAILING
    shown = next((c for c in (step.status or {}).get("conditions", []) if c.get("type") == kind), {})
    return f"{shown.get('message', 'IAM change not done')}: {outcome.message.rstrip('.')}"
