"""Hostile input: every case of the corpus is refused naming its field, at admission
or in the grant's status; no binding is written; the operator keeps running and still works.
Patterns that would make a backtracking engine take exponential time are matched in bounded time.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import pytest_asyncio
from kubernetes.client import ApiException, CustomObjectsApi

from tests.hostile.corpus import GRANT, OTHER_TEAM, PROJECT, Case, corpus
from tests.integration.conftest import GROUP, VERSION

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
PLURALS = {"request": "activationrequests", "approval": "activationapprovals", "grant": "eligiblegrants"}
USERS = {"request": "alice@example.com", "approval": "bob@example.com", "grant": "admin"}


async def submit(api: CustomObjectsApi, case: Case) -> tuple[str, str]:
    """("refused", message) at admission, or ("admitted", "") when the API server stored it, as
    the case's user (`api`)."""
    plural = PLURALS[case.kind]
    try:
        if case.kind == "grant":
            await asyncio.to_thread(api.create_cluster_custom_object, GROUP, VERSION, plural, case.body)
        else:
            await asyncio.to_thread(
                api.create_namespaced_custom_object, GROUP, VERSION, "team-sre", plural, case.body
            )
    except ApiException as error:
        assert error.status in (400, 403, 422), (case.label, error.status, error.body)
        return "refused", json.loads(error.body).get("message", "")
    return "admitted", ""


async def grant_verdict(cluster, name: str, timeout_s: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = await asyncio.to_thread(
            cluster.custom.get_cluster_custom_object, GROUP, VERSION, "eligiblegrants", name
        )
        for condition in (body.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Ready":
                return condition
        await asyncio.sleep(0.02)
    raise AssertionError(f"grant {name} got no Ready condition")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def targets(sandbox):
    from tests.integration.conftest import Cluster

    cluster = Cluster(sandbox)
    cluster.emulator.resources.add(PROJECT)
    await cluster.grant(GRANT, PROJECT, principals=["user:alice@example.com"], roles=["roles/compute.admin"])
    await cluster.grant(OTHER_TEAM, PROJECT, principals=["group:payments@example.com"])
    await cluster.grant(
        "hostile-approved",
        PROJECT,
        principals=["user:alice@example.com"],
        approval={"approvers": ["user:bob@example.com"]},
    )
    for name in (GRANT, OTHER_TEAM, "hostile-approved"):
        await cluster.wait_grant_ready(name)
    await cluster.request_as("alice@example.com", "hostile-pending", "hostile-approved")
    await cluster.wait_phase("hostile-pending", "AwaitingApproval")
    return cluster


async def test_every_hostile_object_is_refused_naming_its_field_and_nothing_reaches_iam(targets):
    cluster = targets
    cases = corpus(cluster.sandbox.clock.now())
    assert len(cases) >= 300
    writes_before = cluster.sets(PROJECT)
    # One client per user for the whole corpus: a client of its own for each case (kubeconfig
    # read, TLS handshake) was two thirds of the test's time.
    apis = {kind: cluster.as_user(user) for kind, user in USERS.items()}
    wrong: list[str] = []
    for case in cases:
        verdict, message = await submit(apis[case.kind], case)
        if verdict == "admitted" and case.kind == "grant":
            condition = await grant_verdict(cluster, case.body["metadata"]["name"])
            if condition["status"] == "False" and condition["reason"] == "InvalidSpec":
                verdict, message = "invalid", condition["message"]
        if verdict == "admitted":
            wrong.append(f"{case.kind} {case.label!r} was accepted")
        elif case.field not in message:
            wrong.append(f"{case.kind} {case.label!r} refused without naming {case.field}: {message[:300]}")
    assert not wrong, f"{len(wrong)} of {len(cases)} cases:\n" + "\n".join(wrong)

    assert cluster.sets(PROJECT) == writes_before, "a hostile object reached IAM"
    assert cluster.sandbox.operator_alive
    body = await cluster.wait_phase("hostile-pending", "AwaitingApproval")  # still judged as before
    assert body["status"]["phase"] == "AwaitingApproval"
    await cluster.request_as("alice@example.com", "hostile-after", GRANT, roles=["roles/compute.admin"])
    await cluster.wait_phase("hostile-after", "Active")  # and the operator still works


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|aa)*b", "(x+x+)+y", "^(([a-z])+.)+[A-Z]([a-z])+$"])
async def test_catastrophic_patterns_are_matched_in_bounded_time(targets, pattern):
    cluster = targets
    name = f"redos-{abs(hash(pattern)) % 10**8}"
    await cluster.grant(
        name, PROJECT, principals=["user:alice@example.com"], justification={"pattern": pattern}
    )
    assert (await grant_verdict(cluster, name))["status"] == "True"
    evil = "a" * 1000 + "!"  # exponential for a backtracking engine, linear for RE2
    began = time.monotonic()
    verdict, message = await submit(
        cluster.as_user(USERS["request"]),
        Case(
            "request",
            "evil justification",
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ActivationRequest",
                "metadata": {"name": f"{name}-evil", "namespace": "team-sre"},
                "spec": {"grant": name, "justification": evil},
            },
            "spec.justification",
        ),
    )
    assert verdict == "refused" and "spec.justification" in message and "pattern" in message, message
    assert time.monotonic() - began < 5, "a backtracking engine would never have answered"
