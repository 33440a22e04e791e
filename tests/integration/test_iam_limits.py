"""IAM's limits: a request that would break one fails with a message naming the
limit, nothing of it is written, and the other requests of the same batch are granted.

The batch is arranged, not hoped for: the emulator holds a first request's cycle while the two
that matter queue behind it, so they reach IAM together in the next one. The limits are the
emulator's own (GCP-IAM.md §0); the size cap is lowered to what the test can fill.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from jitaccess.api.bindings import reference_of
from tests.integration.test_lifecycle import FOREIGN

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
ROLE = "roles/compute.admin"
PEOPLE = ["carol", "alice", "bob", "dave"]


def user(name: str) -> str:
    return f"user:{name}@example.com"


def conditional(member: str, number: int) -> dict[str, Any]:
    """Another tool's conditional binding (not ours: no jitaccess reference)."""
    return {
        "role": ROLE,
        "members": [member],
        "condition": {
            "title": f"break-glass window {number}",
            "expression": f'request.time < timestamp("2030-01-{number + 1:02d}T00:00:00Z")',
        },
    }


async def _until(predicate: Callable[[], bool], what: str, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.01)


async def batch_of_two(cluster, project: str, grant: str, first: str, second: str) -> None:
    """Write a filler request while IAM holds its cycle; `first` and `second` then share the next."""
    writer = cluster.sandbox.reconciler.writer
    cluster.emulator.stall(project)
    try:
        await cluster.request(f"{grant}-filler", grant, requester=user("carol"), roles=[ROLE])
        await _until(lambda: cluster.emulator.held(project) == 1, "IAM holds the filler's cycle")
        for number, name in enumerate((first, second), start=1):
            await cluster.request(f"{grant}-{name}", grant, requester=user(name), roles=[ROLE])
            await _until(lambda n=number: writer.queued(project) == n, f"{name}'s change is queued")
    finally:
        cluster.emulator.release(project)


def refused_together(cluster, project: str, first: str, second: str) -> bool:
    """IAM saw (and refused) one setIamPolicy carrying both requests' bindings."""
    for call in cluster.emulator.calls:
        if call.resource == project and call.method == "setIamPolicy" and call.status == 400:
            members = {m for b in call.body["policy"]["bindings"] for m in b["members"]}
            if {user(first), user(second)} <= members:
                return True
    return False


def jit_members(cluster, project: str) -> set[str]:
    return {m for b in cluster.bindings(project) if reference_of(b.get("condition")) for m in b["members"]}


async def check(
    cluster,
    project: str,
    grant: str,
    granted: str,
    refused: str,
    limit_words: str,
    before: frozenset = frozenset(),
) -> None:
    await cluster.wait_phase(f"{grant}-filler", "Active")
    await cluster.wait_phase(f"{grant}-{granted}", "Active")
    failed = await cluster.wait_phase(f"{grant}-{refused}", "ActivationFailed")
    message = failed["status"]["conditions"][0]["message"]
    assert limit_words in message and "nothing was granted" in message, message
    assert refused_together(cluster, project, granted, refused)
    assert jit_members(cluster, project) == {user("carol"), user(granted), *before}
    kind, _, said = await cluster.wait_event(f"{grant}-{refused}", "IamRefused")
    assert kind == "Warning" and limit_words in said


async def test_the_twenty_first_condition_for_a_role_and_member_fails_alone(cluster):
    project = cluster.project()
    cluster.emulator.seed(project, [FOREIGN, *(conditional(user("alice"), n) for n in range(20))])
    await cluster.grant("limit-conditions", project, principals=[user(p) for p in PEOPLE])
    await batch_of_two(cluster, project, "limit-conditions", "alice", "bob")
    await check(
        cluster,
        project,
        "limit-conditions",
        granted="bob",
        refused="alice",
        limit_words=f"21 conditional bindings of role {ROLE} for member {user('alice')}; the limit is 20",
    )
    assert sum(1 for b in cluster.bindings(project) if user("alice") in b["members"]) == 20


async def test_the_principal_that_would_be_the_1501st_fails_alone(cluster):
    project = cluster.project()
    crowd = {"role": "roles/viewer", "members": [f"user:viewer{n}@example.com" for n in range(1497)]}
    cluster.emulator.seed(project, [FOREIGN, crowd])  # 1,498 principals; carol makes 1,499
    await cluster.grant("limit-principals", project, principals=[user(p) for p in PEOPLE])
    await batch_of_two(cluster, project, "limit-principals", "alice", "bob")
    await check(
        cluster,
        project,
        "limit-principals",
        granted="alice",
        refused="bob",
        limit_words="number of members in the policy (1501) is larger than the maximum allowed size 1500",
    )


async def test_the_binding_that_would_break_the_size_cap_fails_alone(cluster):
    project = cluster.project()
    cluster.emulator.seed(project, [FOREIGN])
    await cluster.grant("limit-size", project, principals=[user(p) for p in PEOPLE])
    await cluster.request("limit-size-dave", "limit-size", requester=user("dave"), roles=[ROLE])
    await cluster.wait_phase("limit-size-dave", "Active")
    bindings = cluster.bindings(project)
    size = len(json.dumps(bindings, separators=(",", ":")).encode())
    ours = len(json.dumps(bindings[-1], separators=(",", ":")).encode())
    # Room for the filler and one more binding, not two (names are of equal length, give or take).
    cap = size + int(2.5 * ours)
    cluster.emulator.configure({"limits": {"policy_bytes": cap}})
    try:
        await batch_of_two(cluster, project, "limit-size", "alice", "bob")
        await check(
            cluster,
            project,
            "limit-size",
            granted="alice",
            refused="bob",
            limit_words=f"the size limit is {cap} bytes",
            before=frozenset({user("dave")}),
        )
    finally:
        cluster.emulator.configure({"limits": {"policy_bytes": 64 * 1024}})
