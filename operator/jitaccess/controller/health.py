"""What the kubelet asks: is this replica alive (/healthz), and ready for traffic (/readyz)?

Alive: its event loop turns (a heartbeat a second; a loop stalled past STALL has nothing to
answer with, so the probe's timeout fails it too) and, while it leads, its scheduler still runs.
Ready: it has listed every grant (so admission judges with them) and its admission webhook
server accepts connections; until then the Service sends the API server's calls elsewhere.
"""

from __future__ import annotations

import asyncio
import time

STALL = 30.0  # seconds without a heartbeat: the loop is stuck (a blocking call on it)


class Health:
    def __init__(self) -> None:
        self.last_beat = time.monotonic()
        self.grants_loaded = False
        self.webhook: tuple[str, int] | None = None  # where admission is served, if it is
        self.scheduler: asyncio.Task[None] | None = None  # while this replica leads

    async def beat(self) -> None:
        while True:
            self.last_beat = time.monotonic()
            await asyncio.sleep(1.0)

    def problem(self) -> str | None:
        """Why this replica is not alive, or None."""
        stalled = time.monotonic() - self.last_beat
        if stalled > STALL:
            return f"the event loop did not turn for {stalled:.0f}s"
        if self.scheduler is not None and self.scheduler.done():
            return "the scheduler stopped while this replica leads"
        return None

    async def unready(self) -> str | None:
        """Why this replica should not get traffic yet, or None."""
        if not self.grants_loaded:
            return "the grants are not listed yet"
        if self.webhook is not None:
            host, port = self.webhook
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=2)
            except (OSError, TimeoutError):
                return f"the admission webhook server does not accept connections on {host}:{port}"
            writer.close()
        return None
