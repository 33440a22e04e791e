"""The operator's own HTTP calls to Kubernetes (controller.kube): against the sandbox API over
HTTPS, authenticated from the same kubernetes.client configuration as everything else, with the
official client's errors. No operator runs here, and no webhooks: only the calls are judged."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import pytest_asyncio
from kubernetes import client
from kubernetes.client.rest import ApiException

from jitaccess.clock import SystemClock
from jitaccess.controller.kube import Kube
from jitaccess.controller.operator import kubernetes_configuration
from jitaccess.policy.steps import Event
from jitaccess_sandbox.runner import OPERATOR_USER, Sandbox
from tests.integration.test_processes import free_port
from tests.unit.factories import request_body

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
GROUP, VERSION, PLURAL = "jitaccess.dev", "v1alpha1", "activationrequests"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    async with Sandbox(Path(tmp_path_factory.mktemp("kube")), run_operator=False) as running:
        admission = client.AdmissionregistrationV1Api(admin(running))
        # No operator answers them here: the calls under test are the operator's, not admission's.
        await asyncio.to_thread(admission.delete_validating_webhook_configuration, "jitaccess")
        await asyncio.to_thread(admission.delete_mutating_webhook_configuration, "jitaccess")
        yield running


def admin(sandbox: Sandbox) -> client.ApiClient:
    return client.ApiClient(kubernetes_configuration(sandbox.kubeconfig, context="admin"))


def operator_kube(sandbox: Sandbox, configuration: client.Configuration | None = None) -> Kube:
    configuration = configuration or kubernetes_configuration(
        sandbox.operator_kubeconfig, context=OPERATOR_USER
    )
    return Kube(client.ApiClient(configuration), SystemClock())


async def stored_request(sandbox: Sandbox, name: str) -> dict:
    body = request_body(name)
    body["metadata"] = {"name": name, "namespace": "team-sre"}
    custom = client.CustomObjectsApi(admin(sandbox))
    return await asyncio.to_thread(
        custom.create_namespaced_custom_object, GROUP, VERSION, "team-sre", PLURAL, body
    )


async def test_patches_merge_and_answer_the_stored_object_as_the_operator(sandbox):
    created = await stored_request(sandbox, "patched")
    kube = operator_kube(sandbox)
    try:
        shown = await kube.patch_request_status("team-sre", "patched", {"phase": "Active", "endedAt": "x"})
        assert shown is not None and shown["status"] == {"phase": "Active", "endedAt": "x"}
        cleared = await kube.patch_request_status("team-sre", "patched", {"endedAt": None})
        assert cleared is not None and cleared["status"] == {"phase": "Active"}  # a merge patch
        marked = await kube.patch_request("team-sre", "patched", {"metadata": {"annotations": {"a": "b"}}})
        assert marked is not None and marked["metadata"]["annotations"] == {"a": "b"}
        assert marked["metadata"]["uid"] == created["metadata"]["uid"]
        read = await kube.get_request("team-sre", "patched")
        assert (
            read is not None and read["metadata"]["resourceVersion"] == marked["metadata"]["resourceVersion"]
        )
        served = sandbox.api.served
        assert served[OPERATOR_USER, "patch", f"{PLURAL}.{GROUP}", "status"] == 2
        assert served[OPERATOR_USER, "patch", f"{PLURAL}.{GROUP}", ""] == 1
        assert kube.calls == 4
    finally:
        await kube.http.close()


async def test_gone_is_none_and_refusals_are_the_clients_api_exception(sandbox):
    kube = operator_kube(sandbox)
    try:
        assert await kube.patch_request_status("team-sre", "never-was", {"phase": "Active"}) is None
        assert await kube.get_request("team-sre", "never-was") is None
        stale = await stored_request(sandbox, "stale")
        await kube.patch_request("team-sre", "stale", {"metadata": {"labels": {"x": "1"}}})
        guarded = {"metadata": {"resourceVersion": stale["metadata"]["resourceVersion"], "finalizers": []}}
        with pytest.raises(ApiException) as conflict:
            await kube.patch_request("team-sre", "stale", guarded)
        assert conflict.value.status == 409 and json.loads(conflict.value.body)["reason"] == "Conflict"
    finally:
        await kube.http.close()
    carol = operator_kube(sandbox, kubernetes_configuration(sandbox.kubeconfig, context="carol@example.com"))
    try:
        with pytest.raises(ApiException) as forbidden:
            await carol.patch_grant_status("anything", {"activeRequests": 9})
        assert forbidden.value.status == 403
    finally:
        await carol.http.close()


async def test_an_expired_token_is_asked_for_again(sandbox):
    """A configuration whose token expires (in-cluster, or an exec plugin) refreshes it through its
    hook: a 401 asks the configuration again and tries once more; a bad token stays the API
    server's 401."""
    configuration = kubernetes_configuration(sandbox.operator_kubeconfig, context=OPERATOR_USER)
    good = configuration.api_key["BearerToken"]
    configuration.api_key["BearerToken"] = "Bearer expired"
    configuration.refresh_api_key_hook = None  # the kubeconfig loader's own: it would restore the token
    kube = operator_kube(sandbox, configuration)
    try:
        await stored_request(sandbox, "refreshed")
        with pytest.raises(ApiException) as unauthorised:
            await kube.get_request("team-sre", "refreshed")
        assert unauthorised.value.status == 401
        refreshed: list[bool] = []

        def refresh(config: client.Configuration) -> None:
            config.api_key["BearerToken"] = good
            refreshed.append(True)

        configuration.refresh_api_key_hook = refresh
        read = await kube.get_request("team-sre", "refreshed")
        assert read is not None and refreshed
    finally:
        await kube.http.close()


async def test_an_event_is_posted_on_the_object_it_tells_of(sandbox):
    created = await stored_request(sandbox, "told")
    kube = operator_kube(sandbox)
    try:
        await kube.post_event(created, Event("Normal", "Activated", "roles/x on projects/p"))
    finally:
        await kube.http.close()
    core = client.CoreV1Api(admin(sandbox))
    events = await asyncio.to_thread(
        core.list_namespaced_event, "team-sre", field_selector="involvedObject.name=told"
    )
    (event,) = events.items
    assert (event.reason, event.message, event.type) == ("Activated", "roles/x on projects/p", "Normal")
    assert event.involved_object.uid == created["metadata"]["uid"]


async def test_the_tls_server_name_is_honoured_and_a_dead_server_is_an_api_exception(sandbox):
    """What the kubeconfig says of TLS holds for these calls as for the official client's: the
    certificate is checked against `tls-server-name`; a server that cannot be reached (twice) is
    the client's ApiException, status 0, so callers that tolerate a failed call tolerate it."""
    await stored_request(sandbox, "named")
    for server_name, reachable in (("localhost", True), ("elsewhere.example.com", False)):
        configuration = kubernetes_configuration(sandbox.operator_kubeconfig, context=OPERATOR_USER)
        configuration.tls_server_name = server_name
        kube = operator_kube(sandbox, configuration)
        try:
            if reachable:
                assert await kube.get_request("team-sre", "named") is not None
            else:
                with pytest.raises(ApiException) as refused:
                    await kube.get_request("team-sre", "named")
                assert refused.value.status == 0 and "certificate" in str(refused.value.reason).lower()
        finally:
            await kube.http.close()
    configuration = kubernetes_configuration(sandbox.operator_kubeconfig, context=OPERATOR_USER)
    configuration.host = f"https://127.0.0.1:{free_port()}"
    configuration.refresh_api_key_hook = None  # the kubeconfig loader's: it would set the host back
    kube = operator_kube(sandbox, configuration)
    try:
        with pytest.raises(ApiException) as unreachable:
            await kube.patch_request_status("team-sre", "named", {"phase": "Active"})
        assert unreachable.value.status == 0
    finally:
        await kube.http.close()


async def test_calls_made_together_ask_for_the_token_once(sandbox):
    """An exec plugin is a process: twenty calls at once must not start twenty."""
    await stored_request(sandbox, "together")
    configuration = kubernetes_configuration(sandbox.operator_kubeconfig, context=OPERATOR_USER)
    asked: list[bool] = []

    def count(_: client.Configuration) -> None:
        asked.append(True)

    configuration.refresh_api_key_hook = count
    kube = operator_kube(sandbox, configuration)
    try:
        found = await asyncio.gather(*(kube.get_request("team-sre", "together") for _ in range(20)))
        assert all(body is not None for body in found) and len(asked) == 1
    finally:
        await kube.http.close()
