"""One sandbox (Kubernetes API + IAM emulator + operator on 127.0.0.1) per test module."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from kubernetes import client

from jitaccess.controller.operator import kubernetes_configuration
from jitaccess_sandbox.kube_apiserver import assets_dir
from jitaccess_sandbox.runner import OPERATOR_USER, Sandbox

GROUP, VERSION = "jitaccess.dev", "v1alpha1"
# Under KUBEBUILDER_ASSETS the cluster fixtures run a real kube-apiserver instead of the sandbox API.
KUBE_APISERVER = assets_dir()


def sandbox_with_console(state: Path, **options: Any) -> Sandbox:
    """A sandbox that serves the web console behind its IAP stand-in, admin a trusted submitter
    (it files requests for the people the tests act as); `options` add to it (extra_users, …)."""
    return Sandbox(
        state,
        tick_s=0.05,
        trusted_submitters=frozenset({"admin"}),
        kube_apiserver_assets=KUBE_APISERVER,
        console=True,
        **options,
    )


# Every (verb, resource, subresource) the operator called in any sandbox of this session.
OPERATOR_CALLS: set[tuple[str, str, str]] = set()
_names = itertools.count(1)


class Cluster:
    """What a test does to the cluster, through the official client, as a user would."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        api = client.ApiClient(kubernetes_configuration(sandbox.kubeconfig, context="admin"))
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.rbac = client.RbacAuthorizationV1Api(api)

    @property
    def emulator(self):
        return self.sandbox.emulator

    def project(self) -> str:
        """A fresh project that exists in the emulator."""
        name = f"projects/test-project-{next(_names)}"
        self.emulator.resources.add(name)
        return name

    async def grant(self, name: str, resource: str, **spec: Any) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "EligibleGrant",
            "metadata": {"name": name},
            "spec": {
                "resource": resource,
                "roles": ["roles/compute.admin", "roles/storage.admin"],
                "principals": ["user:alice@example.com", "group:sre@example.com"],
                "maxDuration": "2h",
                **spec,
            },
        }
        return await asyncio.to_thread(
            self.custom.create_cluster_custom_object, GROUP, VERSION, "eligiblegrants", body
        )

    async def wait_grant_ready(self, name: str, timeout_s: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            body = await asyncio.to_thread(
                self.custom.get_cluster_custom_object, GROUP, VERSION, "eligiblegrants", name
            )
            if any(c.get("type") == "Ready" for c in (body.get("status") or {}).get("conditions") or []):
                return body
            await asyncio.sleep(0.05)
        raise AssertionError(f"EligibleGrant {name} got no Ready condition")

    async def request(
        self, name: str, grant: str, namespace: str = "team-sre", **spec: Any
    ) -> dict[str, Any]:
        fields = {
            "grant": grant,
            "justification": "INC-4711: open port 443 on the edge firewall",
            "requester": "user:alice@example.com",
            **spec,
        }
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ActivationRequest",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {k: v for k, v in fields.items() if v is not None},
        }
        return await asyncio.to_thread(
            self.custom.create_namespaced_custom_object, GROUP, VERSION, namespace, "activationrequests", body
        )

    def as_user(self, context: str) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(
            client.ApiClient(kubernetes_configuration(self.sandbox.kubeconfig, context))
        )

    async def bind(self, role: str, *users: str, namespace: str = "team-sre") -> None:
        """Let `users` have ClusterRole `role` in `namespace`, as a cluster admin would (a RoleBinding)."""
        for user in users:
            body = {
                "metadata": {"name": f"{role}-{user.replace('@', '-at-')}", "namespace": namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
            }
            try:
                await asyncio.to_thread(self.rbac.create_namespaced_role_binding, namespace, body)
            except client.ApiException as error:
                if error.status != 409:
                    raise

    async def request_as(self, user: str, name: str, grant: str, namespace: str = "team-sre", **spec: Any):
        fields = {"grant": grant, "justification": "INC-4711: open port 443 on the edge firewall", **spec}
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ActivationRequest",
            "metadata": {"name": name, "namespace": namespace},
            "spec": fields,
        }
        return await asyncio.to_thread(
            self.as_user(user).create_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            "activationrequests",
            body,
        )

    async def decide(
        self,
        user: str,
        request: str,
        decision: str = "Approve",
        namespace: str = "team-sre",
        name: str | None = None,
    ) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ActivationApproval",
            "metadata": {
                "name": name or f"{user.split('@')[0]}-{decision.lower()}-{request}",
                "namespace": namespace,
            },
            "spec": {"request": request, "decision": decision, "comment": f"{decision} by {user}"},
        }
        return await asyncio.to_thread(
            self.as_user(user).create_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            "activationapprovals",
            body,
        )

    async def get(self, name: str, namespace: str = "team-sre") -> dict[str, Any] | None:
        try:
            return await asyncio.to_thread(
                self.custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                "activationrequests",
                name,
            )
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    async def patch(
        self, name: str, spec: dict[str, Any], namespace: str = "team-sre", user: str = "admin"
    ) -> None:
        await asyncio.to_thread(
            (self.custom if user == "admin" else self.as_user(user)).patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            "activationrequests",
            name,
            {"spec": spec},
        )

    async def patch_grant(self, name: str, patch: dict[str, Any]) -> None:
        await asyncio.to_thread(
            self.custom.patch_cluster_custom_object, GROUP, VERSION, "eligiblegrants", name, patch
        )

    async def patch_metadata(self, name: str, metadata: dict[str, Any], namespace: str = "team-sre") -> None:
        await asyncio.to_thread(
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            "activationrequests",
            name,
            {"metadata": metadata},
        )

    async def delete(self, name: str, namespace: str = "team-sre", user: str = "admin") -> None:
        await asyncio.to_thread(
            (self.custom if user == "admin" else self.as_user(user)).delete_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            "activationrequests",
            name,
        )

    async def delete_grant(self, name: str) -> None:
        await asyncio.to_thread(
            self.custom.delete_cluster_custom_object, GROUP, VERSION, "eligiblegrants", name
        )

    async def wait_phase(
        self, name: str, *phases: str, namespace: str = "team-sre", timeout_s: float = 20
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        body = None
        while time.monotonic() < deadline:
            body = await self.get(name, namespace)
            if body and (body.get("status") or {}).get("phase") in phases:
                return body
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"{namespace}/{name} did not reach {phases}; last seen: {body and body.get('status')}"
        )

    async def wait_gone(self, name: str, namespace: str = "team-sre", timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await self.get(name, namespace) is None:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{namespace}/{name} was not deleted")

    async def events(self, name: str, namespace: str = "team-sre") -> list[tuple[str, str, str]]:
        found = await asyncio.to_thread(
            self.core.list_namespaced_event, namespace, field_selector=f"involvedObject.name={name}"
        )
        ordered = sorted(found.items, key=lambda event: int(event.metadata.resource_version))
        return [(event.type, event.reason, event.message) for event in ordered]

    async def wait_event(self, name: str, reason: str, namespace: str = "team-sre", timeout_s: float = 10):
        """The Event follows the status patch that it tells of; give it its moment."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in await self.events(name, namespace):
                if event[1] == reason:
                    return event
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {reason} Event on {namespace}/{name}: {await self.events(name, namespace)}")

    def bindings(self, resource: str) -> list[dict[str, Any]]:
        return self.emulator.snapshot(resource)["bindings"]

    def sets(self, resource: str) -> int:
        return sum(
            1 for call in self.emulator.calls if call.method == "setIamPolicy" and call.resource == resource
        )

    def advance(self, **delta: float) -> None:
        self.sandbox.clock.advance(timedelta(**delta))


async def until(
    check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 240, every_s: float = 0.25
) -> None:
    """Poll `check` until it holds; fail naming `what` after `timeout_s` of real time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(every_s)
    raise AssertionError(f"timed out: {what}")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    state = Path(tmp_path_factory.mktemp("sandbox"))
    # admin files requests on behalf of others, as a GitOps controller configured as trusted submitter would.
    async with Sandbox(
        state, tick_s=0.05, trusted_submitters=frozenset({"admin"}), kube_apiserver_assets=KUBE_APISERVER
    ) as running:
        yield running
        if KUBE_APISERVER is None:
            OPERATOR_CALLS.update(
                (verb, resource, subresource)
                for (user, verb, resource, subresource) in running.api.served
                if user == OPERATOR_USER
            )


@pytest.fixture(autouse=True)
def _needs_the_sandbox_api(request: pytest.FixtureRequest) -> None:
    if KUBE_APISERVER is not None and request.node.get_closest_marker("sandbox_api"):
        pytest.skip("reads or switches the sandbox API's internals, which a real kube-apiserver has not")


@pytest_asyncio.fixture(loop_scope="module")
async def cluster(sandbox: Sandbox) -> Cluster:
    return Cluster(sandbox)
