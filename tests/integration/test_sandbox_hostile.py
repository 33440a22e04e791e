"""What an insider tried against the sandbox API, each answered as kube-apiserver answers it: no
write of server-managed metadata, no create through apply without `create`, no stored reviews,
no YAML bombs, no verbs served other than the one authorized, no tracebacks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from kubernetes.client import ApiException

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.sandbox_api]
REQUESTS = "/apis/jitaccess.dev/v1alpha1/namespaces/team-sre/activationrequests"


async def call(
    cluster: Any, method: str, path: str, user: str = "admin", body: Any = None, content_type: str = ""
) -> tuple[int, Any]:
    sandbox = cluster.sandbox
    headers = {"Authorization": f"Bearer {sandbox.tokens[user]}"}
    if content_type:
        headers["Content-Type"] = content_type
    data = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
    async with aiohttp.ClientSession() as session:
        async with session.request(
            method, sandbox.k8s_url + path, data=data, headers=headers, ssl=sandbox.api_ssl_context()
        ) as answer:
            text = await answer.text()
    try:
        return answer.status, json.loads(text)
    except ValueError:
        return answer.status, text


def request_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "ActivationRequest",
        "metadata": {"name": name, "namespace": "team-sre"},
        "spec": {"grant": "hostile-grant", "justification": "INC-1: a request to be attacked"},
    }


async def held(cluster: Any, name: str) -> dict[str, Any]:
    """alice's Active request `name` under the module's grant."""
    try:
        await cluster.grant("hostile-grant", cluster.project(), roles=["roles/compute.admin"])
    except ApiException as error:
        if error.status != 409:  # made by an earlier test of this module
            raise
    await cluster.wait_grant_ready("hostile-grant")
    await cluster.request_as("alice@example.com", name, "hostile-grant")
    return await cluster.wait_phase(name, "Active")


async def test_server_managed_metadata_cannot_be_written(cluster):
    await held(cluster, "hostile-meta")
    for patch in (
        {"metadata": {"generation": "x"}},
        {"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}},
        {"metadata": {"uid": "someone-else", "creationTimestamp": "2020-01-01T00:00:00Z"}},
    ):
        status, _ = await call(
            cluster,
            "PATCH",
            f"{REQUESTS}/hostile-meta",
            "alice@example.com",
            patch,
            "application/merge-patch+json",
        )
        assert status == 200
    body = await cluster.get("hostile-meta")
    assert body["metadata"]["generation"] == 1 and "deletionTimestamp" not in body["metadata"]
    assert body["metadata"]["uid"] != "someone-else" and body["status"]["phase"] == "Active"
    status, answer = await call(
        cluster,
        "PATCH",
        f"{REQUESTS}/hostile-meta",
        "alice@example.com",
        {"metadata": {"labels": {"n": 5}}},
        "application/merge-patch+json",
    )
    assert status == 400 and "metadata.labels" in answer["message"]
    await cluster.patch("hostile-meta", {"revoke": True})  # revocation still works
    await cluster.wait_phase("hostile-meta", "Revoked")


async def test_an_apply_that_would_create_needs_create_and_the_urls_name(cluster):
    # bob may patch requests here (a Role of this test), but not create them
    await asyncio.to_thread(
        cluster.rbac.create_namespaced_role,
        "team-sre",
        {
            "metadata": {"name": "hostile-patcher", "namespace": "team-sre"},
            "rules": [
                {"apiGroups": ["jitaccess.dev"], "resources": ["activationrequests"], "verbs": ["patch"]}
            ],
        },
    )
    await asyncio.to_thread(
        cluster.rbac.create_namespaced_role_binding,
        "team-sre",
        {
            "metadata": {"name": "hostile-patcher", "namespace": "team-sre"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "hostile-patcher"},
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob@example.com"}
            ],
        },
    )
    apply = "application/apply-patch+yaml"
    status, answer = await call(
        cluster,
        "PATCH",
        f"{REQUESTS}/bob-applied?fieldManager=bob",
        "bob@example.com",
        request_body("bob-applied"),
        apply,
    )
    assert status == 403 and 'cannot create resource "activationrequests"' in answer["message"]
    status, answer = await call(
        cluster,
        "PATCH",
        f"{REQUESTS}/alice-a?fieldManager=x",
        "alice@example.com",
        request_body("alice-b"),
        apply,
    )
    assert (
        status == 400
        and answer["message"]
        == "the name of the object (alice-b) does not match the name on the URL (alice-a)"
    )
    bomb = "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    status, answer = await call(
        cluster, "PATCH", f"{REQUESTS}/bomb?fieldManager=x&dryRun=All", "alice@example.com", bomb, apply
    )
    assert status == 400 and "YAML aliases are not accepted" in answer["message"]
    assert await cluster.get("bob-applied") is None and await cluster.get("alice-b") is None


async def test_reviews_are_answered_never_stored(cluster):
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {"name": "forged"},
        "spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}},
        "status": {"allowed": True},
    }
    status, answer = await call(
        cluster,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews/",
        "carol@example.com",
        review,
    )
    assert status == 201 and answer["status"]["allowed"] is False  # answered, the forged status ignored
    status, _ = await call(
        cluster,
        "POST",
        "/apis/authorization.k8s.io/v1/namespaces/team-sre/selfsubjectaccessreviews",
        "carol@example.com",
        review,
    )
    assert status == 404
    assert not cluster.sandbox.api.stored("authorization.k8s.io/v1/selfsubjectaccessreviews")


async def test_only_the_authorized_verb_is_served(cluster):
    await held(cluster, "hostile-verbs")
    status, answer = await call(cluster, "POST", f"{REQUESTS}/hostile-verbs", "alice@example.com", {})
    assert status == 405 and answer["reason"] == "MethodNotAllowed"
    status, text = await call(cluster, "GET", f"{REQUESTS}?watch=1&timeoutSeconds=1", "alice@example.com")
    assert (
        status == 200 and json.loads(str(text).splitlines()[0])["type"] == "ADDED"
    )  # a watch, as authorized
    status, answer = await call(cluster, "GET", "/apis/jitaccess.dev/v1alpha1/namespaces")
    assert status == 404 and "traceback" not in json.dumps(answer)
    status, _ = await call(cluster, "GET", "/apis/jitaccess.dev/v1alpha1/namespaces/team-sre/eligiblegrants")
    assert status == 404  # a cluster-scoped resource has no namespaced path


async def test_the_collectors_finalizer_does_not_keep_an_object_forever(cluster):
    await held(cluster, "hostile-foreground")
    body = await cluster.get("hostile-foreground")
    finalizers = [*body["metadata"]["finalizers"], "foregroundDeletion"]
    await cluster.patch_metadata("hostile-foreground", {"finalizers": finalizers})
    await cluster.delete("hostile-foreground")
    await cluster.wait_gone("hostile-foreground")
