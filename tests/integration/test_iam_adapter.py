"""The IAM adapter (real google-cloud-resource-manager client, REST) against the emulator over HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.api_core import exceptions as google_errors

from jitaccess.api.bindings import Activation, Reference, parse_reference, render
from jitaccess.iam.store import PolicyStore
from jitaccess.iam.writer import PolicyWriter, RetryPolicy
from jitaccess_emulator.server import Emulator, start

KEY = b"t" * 32
START = datetime(2026, 11, 24, 9, tzinfo=UTC)
FOREIGN = {"role": "roles/compute.viewer", "members": ["group:ops@example.com"]}


def bindings(roles=("roles/compute.admin",)):
    return render(
        Activation(
            "projects/adapter-test",
            roles,
            "user:alice@example.com",
            START,
            START + timedelta(minutes=30),
            "INC-1: test",
            (),
            Reference.sealed("ns", "req", "0a1b-2c", KEY),
        )
    )


@pytest.fixture
async def emulator(tmp_path: Path):
    state = Emulator(resources={"projects/adapter-test"}, state_file=tmp_path / "iam.json")
    state.seed("projects/adapter-test", [FOREIGN])
    runner, url = await start(state)
    yield state, url
    await runner.cleanup()


async def test_quota_and_server_errors_are_retried(emulator):
    state, url = emulator
    writer = PolicyWriter(PolicyStore(url), RetryPolicy(quota_base_s=0.01, server_base_s=0.01))
    state.configure(
        {
            "fail_next": [
                {"method": "getIamPolicy", "status": 429, "count": 1},
                {"method": "setIamPolicy", "status": 503, "count": 1},
            ]
        }
    )
    outcome = await writer.apply("projects/adapter-test", owners=owners(bindings()), hold=bindings())
    assert outcome.ok and outcome.wrote
    assert [c.status for c in state.calls] == [429, 200, 503, 200, 200]


async def test_permanent_errors_are_reported_with_googles_message(emulator):
    _, url = emulator
    writer = PolicyWriter(PolicyStore(url))
    outcome = await writer.apply("projects/not-declared", owners=owners(bindings()), hold=bindings())
    assert (
        not outcome.ok
        and outcome.permanent
        and outcome.message.startswith("403 The caller does not have permission")
    )


async def test_the_writer_never_writes_or_replaces_without_a_reference_of_ours(emulator):
    state, url = emulator
    foreign = bindings()[0].__class__(
        "projects/adapter-test",
        "roles/compute.viewer",
        "group:ops@example.com",
        "Eligible access",
        "",
        "has({}.jitAccessConstraint)",
    )
    writer = PolicyWriter(PolicyStore(url))
    with pytest.raises(ValueError, match="without its owner's reference"):
        await writer.apply("projects/adapter-test", owners=owners(bindings()), hold=[foreign])
    with pytest.raises(ValueError, match="names whose bindings"):
        await writer.apply("projects/adapter-test", owners=())
    # Removing what carries a reference removes nothing else, however alike (the foreign binding stays).
    await writer.apply("projects/adapter-test", owners=owners(bindings()), hold=bindings())
    assert (await writer.apply("projects/adapter-test", owners=owners(bindings()))).wrote
    assert state.snapshot("projects/adapter-test")["bindings"] == [FOREIGN]


async def test_version_1_readers_see_withcond_roles_and_state_persists(emulator, tmp_path):
    state, url = emulator
    await PolicyWriter(PolicyStore(url)).apply(
        "projects/adapter-test", owners=owners(bindings()), hold=bindings()
    )
    projects = PolicyStore(url)._client("projects/adapter-test")
    old = await asyncio.to_thread(
        projects.get_iam_policy, request={"resource": "projects/adapter-test"}, retry=None
    )
    assert old.version == 1 and any("_withcond_" in b.role for b in old.bindings)
    with pytest.raises(google_errors.BadRequest):  # writing v1 over a v3 policy with the etag
        await asyncio.to_thread(
            projects.set_iam_policy, request={"resource": "projects/adapter-test", "policy": old}, retry=None
        )
    reloaded = Emulator(state_file=tmp_path / "iam.json")
    assert reloaded.snapshot("projects/adapter-test") == state.snapshot("projects/adapter-test")
    assert "projects/adapter-test" in reloaded.resources


def owners(bindings) -> tuple:
    """The references of these bindings: whose bindings a change replaces."""
    return tuple(dict.fromkeys(parse_reference(b.condition()) for b in bindings))
