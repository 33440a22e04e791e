"""`jitaccess sandbox --demo`: walk a request through activation and expiry, printing each step.

The sandbox's clock is a ManualClock: instead of waiting 30 minutes for expiry, the demo jumps
it forward and says so. The operator, the Kubernetes API and the IAM emulator are the real
ones, spoken to over HTTP; the policy printed is what the emulator holds.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from jitaccess.api.objects import GROUP, VERSION
from jitaccess.controller.operator import kubernetes_configuration
from jitaccess_sandbox.runner import Sandbox

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PHASE_OF_EVENT = {
    "Activated": "Active",
    "Expired": "Expired",
}


async def run_demo(sandbox: Sandbox, examples: Path = EXAMPLES) -> None:
    api = client.ApiClient(kubernetes_configuration(sandbox.kubeconfig, context="admin"))
    custom = client.CustomObjectsApi(api)
    say(f"Sandbox Kubernetes API {sandbox.k8s_url}, IAM emulator {sandbox.iam_url}")
    say(f"kubeconfig: {sandbox.kubeconfig}")
    foreign = [{"role": "roles/compute.viewer", "members": ["group:ops@example.com"]}]
    sandbox.emulator.seed("projects/my-sandbox", foreign)
    say("another tool's binding already in IAM: roles/compute.viewer for group:ops@example.com")
    for path in sorted(examples.glob("grant-*.yaml")):
        grant = yaml.safe_load(path.read_text())
        await asyncio.to_thread(custom.create_cluster_custom_object, GROUP, VERSION, "eligiblegrants", grant)
        say(f"applied EligibleGrant {grant['metadata']['name']} ({path.name})")
    await wait_for(lambda: _grant_ready(custom, "sandbox-compute-admin"), "grant Ready")
    request = yaml.safe_load((examples / "requests" / "alice-fix-firewall.yaml").read_text())
    namespace, name = request["metadata"]["namespace"], request["metadata"]["name"]
    as_alice = client.ApiClient(kubernetes_configuration(sandbox.kubeconfig, context="alice@example.com"))
    await asyncio.to_thread(
        client.CustomObjectsApi(as_alice).create_namespaced_custom_object,
        GROUP,
        VERSION,
        namespace,
        "activationrequests",
        request,
    )
    created = await asyncio.to_thread(
        custom.get_namespaced_custom_object, GROUP, VERSION, namespace, "activationrequests", name
    )
    say(f"the admission webhook stamped spec.requester={created['spec']['requester']} from alice's login")
    say(
        f"alice created ActivationRequest {namespace}/{name}: {request['spec']['roles']} for "
        f"{request['spec']['duration']}, justification {request['spec']['justification']!r}"
    )
    body = await follow(custom, namespace, name, until={"Active", "ActivationFailed", "Rejected"})
    show_policy(sandbox, "projects/my-sandbox")
    if body["status"]["phase"] != "Active":
        raise SystemExit(f"demo failed: the request ended {body['status']['phase']}")
    sandbox.clock.advance(timedelta(minutes=31))
    say("… the sandbox clock jumps 31 minutes forward (the IAM condition would end access by itself) …")
    body = await follow(custom, namespace, name, until={"Expired"}, seen={"Active"})
    show_policy(sandbox, "projects/my-sandbox")
    ordered = await events_of(client.CoreV1Api(api), namespace, name, count=2)
    say("Events on the request, in order (kubectl describe ar shows the same):")
    for event in ordered:
        print(f"    {event.type:<8} {event.reason:<12} {event.message}")
    phases = [PHASE_OF_EVENT.get(event.reason, event.reason) for event in ordered]
    # Activating is a step of the status (and a line of the audit log), not an Event of its own.
    say("phases in Events: " + " → ".join(phases))
    if (
        phases != ["Active", "Expired"]
        or sandbox.emulator.snapshot("projects/my-sandbox")["bindings"] != foreign
    ):
        raise SystemExit("demo failed: unexpected phases or IAM policy")
    await approval_story(sandbox, custom, examples)
    await break_glass_story(sandbox, custom, examples / "break-glass")
    say(
        "Demo finished: the requests went Active → Expired (the approved one through Activating; the break-glass one is still Active, "
        "and reviewed); IAM holds the other tool's binding and that one."
    )


async def events_of(core: client.CoreV1Api, namespace: str, name: str, count: int) -> list[Any]:
    """The request's Events in order, once `count` are there: they are posted just after the
    status change they tell of, so the last one may trail the phase by a moment."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        events = await asyncio.to_thread(
            core.list_namespaced_event, namespace, field_selector=f"involvedObject.name={name}"
        )
        ordered = sorted(events.items, key=lambda event: int(event.metadata.resource_version or 0))
        if len(ordered) >= count or asyncio.get_running_loop().time() > deadline:
            return ordered
        await asyncio.sleep(0.1)


async def approval_story(sandbox: Sandbox, custom: client.CustomObjectsApi, examples: Path) -> None:
    """alice asks for something that needs approval; carol may not approve (RBAC gives her no
    approvals), bob may."""
    say("Second story: grant prod-iam-admin needs one approval from group:sre-leads@example.com")
    request = yaml.safe_load((examples / "requests" / "alice-prod-iam.yaml").read_text())
    namespace, name = request["metadata"]["namespace"], request["metadata"]["name"]
    await create_as(sandbox, "alice@example.com", namespace, "activationrequests", request)
    body = await follow(custom, namespace, name, until={"AwaitingApproval", "Rejected"})
    if body["status"]["phase"] != "AwaitingApproval":
        raise SystemExit(f"demo failed: {name} ended {body['status']['phase']}")
    approval = yaml.safe_load((examples / "approvals" / "bob-approves-alice-prod-iam.yaml").read_text())
    as_carol = {**approval, "metadata": {**approval["metadata"], "name": "carol-approves-alice-prod-iam"}}
    try:
        await asyncio.to_thread(
            as_user(sandbox, "carol@example.com").create_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            "activationapprovals",
            as_carol,
        )
        raise SystemExit("demo failed: carol, who is no approver, could approve")
    except client.ApiException as error:
        say(
            "carol tries to approve: refused: "
            + json.loads(error.body)["message"].split("denied the request: ")[-1]
        )
    await create_as(sandbox, "bob@example.com", namespace, "activationapprovals", approval)
    say(f"bob approves: {approval['spec']['comment']!r}")
    body = await follow(
        custom, namespace, name, until={"Active", "ActivationFailed"}, seen={"AwaitingApproval"}
    )
    show_policy(sandbox, "projects/my-production")
    if body["status"]["phase"] != "Active":
        raise SystemExit(f"demo failed: {name} ended {body['status']['phase']}")
    sandbox.clock.advance(timedelta(minutes=31))
    say("… the sandbox clock jumps 31 minutes forward …")
    await follow(
        custom, namespace, name, until={"Expired"}, seen={"Active", "AwaitingApproval", "Activating"}
    )
    show_policy(sandbox, "projects/my-production")
    if sandbox.emulator.snapshot("projects/my-production")["bindings"]:
        raise SystemExit("demo failed: the approved binding was not removed")
    await wait_for(
        lambda: (
            not custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "activationrequests", name)[
                "metadata"
            ].get("finalizers")
        ),
        "the request to settle",
    )


async def break_glass_story(sandbox: Sandbox, custom: client.CustomObjectsApi, folder: Path) -> None:
    """3 a.m., no lead awake: alice breaks the glass; the leads are alerted; bob reviews it later."""
    say("Third story: break-glass. Grant prod-compute-admin lets SREs in for 1h without approval")
    grant = yaml.safe_load((folder / "grant.yaml").read_text())
    await asyncio.to_thread(custom.create_cluster_custom_object, GROUP, VERSION, "eligiblegrants", grant)
    await wait_for(lambda: _grant_ready(custom, grant["metadata"]["name"]), "grant Ready")
    request = yaml.safe_load((folder / "request.yaml").read_text())
    namespace, name = request["metadata"]["namespace"], request["metadata"]["name"]
    await create_as(sandbox, "alice@example.com", namespace, "activationrequests", request)
    say(f"alice breaks the glass: {request['spec']['justification']!r}")
    body = await follow(custom, namespace, name, until={"Active", "Rejected", "ActivationFailed"})
    if body["status"]["phase"] != "Active":
        raise SystemExit(f"demo failed: {name} ended {body['status']['phase']}")
    alert = next(
        e
        for e in await events_of(client.CoreV1Api(custom.api_client), namespace, name, count=2)
        if e.reason == "BreakGlassActivated"
    )
    say(f"every reviewer is alerted ({alert.type} {alert.reason}): {alert.message}")
    say(f"Reviewed: {_condition(body, 'Reviewed')}")
    review = yaml.safe_load((folder / "review.yaml").read_text())
    await create_as(sandbox, "bob@example.com", namespace, "activationapprovals", review)
    say(f"bob reviews it: {review['spec']['comment']!r}")
    await wait_for(
        lambda: (
            "status: True"
            in _condition(
                custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "activationrequests", name),
                "Reviewed",
            )
        ),
        "the review",
    )
    body = await asyncio.to_thread(
        custom.get_namespaced_custom_object, GROUP, VERSION, namespace, "activationrequests", name
    )
    say(f"Reviewed: {_condition(body, 'Reviewed')}")


def _condition(body: dict[str, Any], kind: str) -> str:
    found = next((c for c in (body.get("status") or {}).get("conditions", []) if c.get("type") == kind), {})
    return f"status: {found.get('status')}, {found.get('reason')}: {found.get('message')}"


async def create_as(sandbox: Sandbox, user: str, namespace: str, plural: str, body: dict[str, Any]) -> None:
    """Create one of our objects as `user` (through admission, which stamps who they are)."""
    await asyncio.to_thread(
        as_user(sandbox, user).create_namespaced_custom_object, GROUP, VERSION, namespace, plural, body
    )


def as_user(sandbox: Sandbox, context: str) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(
        client.ApiClient(kubernetes_configuration(sandbox.kubeconfig, context=context))
    )


async def follow(
    custom: client.CustomObjectsApi,
    namespace: str,
    name: str,
    *,
    until: set[str],
    seen: set[str] | None = None,
    timeout_s: float = 30,
) -> dict[str, Any]:
    """Print each phase the request passes through until one of `until`."""
    seen = set(seen or ())
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = await asyncio.to_thread(
            custom.get_namespaced_custom_object, GROUP, VERSION, namespace, "activationrequests", name
        )
        status = body.get("status") or {}
        phase = status.get("phase")
        if phase and phase not in seen:
            seen.add(phase)
            ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
            say(f"phase {phase:<12} {ready.get('reason', '')}: {ready.get('message', '')}")
        if phase in until:
            return body
        await asyncio.sleep(0.02)
    raise SystemExit(f"demo failed: {namespace}/{name} did not reach {until} in {timeout_s}s")


def show_policy(sandbox: Sandbox, resource: str) -> None:
    policy = sandbox.emulator.snapshot(resource)
    say(f"IAM policy of {resource} in the emulator ({len(policy['bindings'])} binding(s)):")
    for binding in policy["bindings"]:
        condition = binding.get("condition")
        when = f"  if {condition['expression']}" if condition else ""
        print(f"    {binding['role']:<24} {', '.join(binding['members'])}{when}")


async def wait_for(check: Any, what: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.05)
    raise SystemExit(f"demo failed: timed out waiting for {what}")


def _grant_ready(custom: client.CustomObjectsApi, name: str) -> bool:
    body = custom.get_cluster_custom_object(GROUP, VERSION, "eligiblegrants", name)
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (body.get("status") or {}).get("conditions", [])
    )


def say(text: str) -> None:
    print(f"==> {text}", flush=True)
