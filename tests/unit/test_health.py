"""The kubelet's two questions, answered by controller/health.py."""

from __future__ import annotations

import asyncio
import socket
import time

from jitaccess.controller.health import STALL, Health


async def test_alive_until_the_loop_stalls_or_the_leaders_scheduler_stops():
    health = Health()
    assert health.problem() is None
    health.last_beat = time.monotonic() - STALL - 1  # what a blocking call on the loop leaves behind
    assert "did not turn" in (health.problem() or "")
    health.last_beat = time.monotonic()

    async def crashes() -> None:
        raise RuntimeError("boom")

    health.scheduler = asyncio.create_task(crashes())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert "scheduler stopped" in (health.problem() or "")
    health.scheduler = None  # a standby runs no scheduler and is alive
    assert health.problem() is None


async def test_ready_once_the_grants_are_listed_and_the_webhook_answers():
    health = Health()
    assert "grants" in (await health.unready() or "")
    health.grants_loaded = True
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    health.webhook = ("127.0.0.1", port)  # nothing listens there
    assert "does not accept connections" in (await health.unready() or "")
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    health.webhook = ("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        assert await health.unready() is None
    finally:
        server.close()
