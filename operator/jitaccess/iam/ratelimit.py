"""A token bucket shared by every IAM write, so the operator stays under Google's quota.

Resource Manager allows about 10 writes (and 10 reads) per second per consumer project, for the
whole operator, whatever the resource. One token buys one read-modify-write cycle (one
getIamPolicy and at most one setIamPolicy). A 429 pauses the bucket for everyone: the quota is
shared, so one caller's backoff is everyone's. The clock and the sleep are injectable so that
tests prove the rate without waiting for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    def __init__(
        self,
        rate_per_s: float,
        # No burst by default: a token's call reaches Google up to one read later (or not at all
        # when the cycle reuses its last written policy), so evenly spaced tokens are what keeps
        # any one-second window of calls, as Google counts them, under its limit.
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"the IAM write rate must be above zero, not {rate_per_s}")
        self.rate = rate_per_s
        self.capacity = max(1.0, burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._updated = clock()
        self._paused_until = 0.0
        self._turn = asyncio.Lock()  # first come, first served
        self.waited_s = 0.0

    async def take(self) -> None:
        """Wait until a token is free (and any quota pause is over), then spend it."""
        async with self._turn:
            while True:
                now = self._refill()
                if now < self._paused_until:
                    wait = self._paused_until - now
                elif self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                else:
                    wait = (1.0 - self._tokens) / self.rate
                self.waited_s += wait
                await self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """Google said 429: nobody writes for `seconds`, and the bucket starts empty after."""
        now = self._refill()
        self._paused_until = max(self._paused_until, now + seconds)
        self._tokens = 0.0

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        return now
