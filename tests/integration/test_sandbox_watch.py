"""The sandbox API's watches as clients resume them: a watch from any version sees every write
after it, however long that write's admission took. kube-apiserver gives a write its version as
etcd commits it, so versions reach the watchers in order; the operator's watch resumes from the
last version it saw, and a write told after a later one would be lost to it (a request never
judged, a revocation never carried out)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.sandbox_api]
GRANTS = "/apis/jitaccess.dev/v1alpha1/eligiblegrants"


async def test_a_write_admitted_slowly_reaches_a_watch_that_saw_a_later_one(cluster):
    sandbox = cluster.sandbox
    dispatcher = sandbox.api.admission
    admit = dispatcher.admit
    admitting, answer = asyncio.Event(), asyncio.Event()

    async def slowly(operation: str, crd: Any, new: Any, old: Any, *args: Any, **kwargs: Any) -> Any:
        if ((new or {}).get("metadata") or {}).get("name") == "watch-slow":
            admitting.set()
            await answer.wait()  # a webhook that takes its time
        return await admit(operation, crd, new, old, *args, **kwargs)

    headers = {"Authorization": f"Bearer {sandbox.tokens['admin']}"}
    project = cluster.project()
    async with aiohttp.ClientSession(
        headers=headers, connector=aiohttp.TCPConnector(ssl=sandbox.api_ssl_context())
    ) as session:
        async with session.get(sandbox.k8s_url + GRANTS) as listed:
            since = (await listed.json())["metadata"]["resourceVersion"]
        dispatcher.admit = slowly
        try:
            slow = asyncio.create_task(cluster.grant("watch-slow", project))
            await asyncio.wait_for(admitting.wait(), 10)
            await cluster.grant("watch-fast", project)  # admitted and stored meanwhile
            params = {"watch": "true", "resourceVersion": since}
            async with session.get(sandbox.k8s_url + GRANTS, params=params) as watch:
                seen: list[str] = []

                async def until_added(name: str) -> None:
                    async for line in watch.content:
                        event = json.loads(line)
                        seen.append(f"{event['type']} {event['object']['metadata'].get('name')}")
                        if seen[-1] == f"ADDED {name}":
                            return

                await asyncio.wait_for(until_added("watch-fast"), 10)
                answer.set()
                await slow
                try:
                    await asyncio.wait_for(until_added("watch-slow"), 10)
                except TimeoutError:
                    raise AssertionError(f"the watch never told of watch-slow: {seen}") from None
        finally:
            answer.set()
            del dispatcher.admit  # the class's own again
