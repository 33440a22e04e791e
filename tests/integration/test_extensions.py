"""Extension through the API: access continues without a gap and never with two bindings per role
(measured from every policy the emulator was sent), capped by the grant, by the requester only,
approved by the grant's rule. The sandbox clock is moved by the test."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client import ApiException

from jitaccess.api.bindings import TITLE
from tests.integration.test_kubectl_jit import jit

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
ROLE = "roles/compute.admin"


async def refused(coroutine) -> str:
    with pytest.raises(ApiException) as caught:
        await coroutine
    assert caught.value.status == 403
    return json.loads(caught.value.body)["message"]


def ours_per_write(cluster: Any, project: str) -> list[list[dict[str, Any]]]:
    """For every policy written to `project`, the jitaccess bindings of ROLE it held."""
    written = []
    for call in cluster.emulator.calls:
        if call.method != "setIamPolicy" or call.resource != project or call.status != 200:
            continue
        bindings = (call.body.get("policy") or {}).get("bindings") or []
        written.append(
            [
                b
                for b in bindings
                if b.get("role") == ROLE and (b.get("condition") or {}).get("title") == TITLE
            ]
        )
    return written


async def test_an_extension_continues_access_without_a_gap(cluster):
    project = cluster.project()
    await cluster.grant(
        "ext",
        project,
        roles=[ROLE],
        maxDuration="1h",
        maxContinuousDuration="2h",
        principals=["domain:example.com"],
    )
    await cluster.wait_grant_ready("ext")
    await cluster.request_as("alice@example.com", "ext-first", "ext", duration="1h")
    first = await cluster.wait_phase("ext-first", "Active")
    started = first["status"]["activatedAt"]
    cluster.advance(minutes=50)

    # carol cannot extend alice's access; nor may alice go past the grant's continuous limit
    by_carol = await refused(
        cluster.request_as("carol@example.com", "ext-carol", "ext", duration="30m", extends="ext-first")
    )
    assert "ext-first is user:alice@example.com's access; only they may extend it" in by_carol
    too_long = await refused(
        cluster.request_as("alice@example.com", "ext-long", "ext", duration="1h30m", extends="ext-first")
    )
    assert "exceeds the grant's maxDuration" in too_long or "maxContinuousDuration" in too_long

    code, said = await jit(
        cluster, "alice@example.com", "extend", "ext-first", "--for", "30m", "--reason", "INC-8: the migration runs over",
        "--name", "ext-more",
    )  # fmt: skip
    assert code == 0 and "activationrequest/ext-more extends ext-first" in said
    more = await cluster.wait_phase("ext-more", "Active")
    ended = await cluster.wait_phase("ext-first", "Extended")
    assert ended["status"]["conditions"][0]["message"] == "continued by ext-more"
    (binding,) = [b for b in cluster.bindings(project) if b["role"] == ROLE]
    assert f'request.time >= timestamp("{started}")' in binding["condition"]["expression"]
    assert more["status"]["expiresAt"] in binding["condition"]["expression"]
    writes = ours_per_write(cluster, project)
    assert writes and all(len(held) == 1 for held in writes), writes  # never none, never two
    assert "ext-more" in writes[-1][0]["condition"]["description"]

    past_cap = await refused(
        cluster.request_as("alice@example.com", "ext-cap", "ext", duration="1h", extends="ext-more")
    )
    assert "maxContinuousDuration 2h" in past_cap
    await cluster.patch(
        "ext-more", {"revoke": True}, user="alice@example.com"
    )  # revoking the extension ends it
    await cluster.wait_phase("ext-more", "Revoked")
    assert [b for b in cluster.bindings(project) if b["role"] == ROLE] == []


async def test_an_approved_access_is_extended_by_the_grants_rule(cluster):
    project = cluster.project()
    approval = {"approvers": ["group:sre-leads@example.com"], "forExtensions": False}
    await cluster.grant("ext-approved", project, roles=[ROLE], maxDuration="1h", approval=approval)
    await cluster.wait_grant_ready("ext-approved")
    await cluster.request_as("alice@example.com", "ext-a", "ext-approved", duration="30m")
    await cluster.wait_phase("ext-a", "AwaitingApproval")
    await cluster.decide("bob@example.com", "ext-a")
    first = await cluster.wait_phase("ext-a", "Active")
    cluster.advance(minutes=10)
    await cluster.request_as("alice@example.com", "ext-b", "ext-approved", duration="30m", extends="ext-a")
    body = await cluster.wait_phase("ext-b", "Active")  # no approval of its own
    assert body["status"]["activatedAt"] != first["status"]["activatedAt"]
    await cluster.wait_phase("ext-a", "Extended")
    (binding,) = [b for b in cluster.bindings(project) if b["role"] == ROLE]
    assert "Approved by user:bob@example.com" in binding["condition"]["description"]
