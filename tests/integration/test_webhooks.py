"""Real AdmissionReview requests over HTTPS (verified against the server's CA) to the operator's webhooks."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import uuid
from typing import Any, NamedTuple

import aiohttp
import jsonpatch
import pytest
import pytest_asyncio

from jitaccess.policy.admission import ATTESTATION, IdentitySettings, attestation_valid
from jitaccess_sandbox.runner import Sandbox
from tests.integration.conftest import Cluster
from tests.integration.test_processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
KEY = b"an attestation key for the tests, 32+ bytes"
GITOPS = "system:serviceaccount:argocd:argocd-application-controller"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def webhook(tmp_path_factory):
    state = tmp_path_factory.mktemp("webhooks")
    port = free_port()
    async with Sandbox(state, run_operator=False, tick_s=0.05) as sandbox:
        reconciler = await sandbox.start_operator(
            webhook_port=port,
            webhook_cert_dir=state / "certs",
            attestation_key=KEY,
            identity=IdentitySettings(trusted_submitters=frozenset({GITOPS})),
        )
        cluster = Cluster(sandbox)
        await cluster.grant("wh-grant", "projects/my-sandbox", justification={"pattern": "^INC-[0-9]+: .+"})
        for _ in range(200):
            if reconciler.cache.grants.get("wh-grant"):
                break
            await asyncio.sleep(0.05)
        context = ssl.create_default_context(cafile=str(state / "certs" / "ca.crt"))
        yield Webhook(f"https://127.0.0.1:{port}", context, reconciler, cluster)


class Webhook(NamedTuple):
    url: str
    context: ssl.SSLContext
    reconciler: Any
    cluster: Cluster


def review(
    operation, obj, user="alice@example.com", groups=("sre@example.com", "system:authenticated"), old=None
):
    meta = obj["metadata"]
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "jitaccess.dev", "version": "v1alpha1", "kind": "ActivationRequest"},
            "resource": {"group": "jitaccess.dev", "version": "v1alpha1", "resource": "activationrequests"},
            "name": meta["name"],
            "namespace": meta["namespace"],
            "operation": operation,
            "userInfo": {"username": user, "groups": list(groups)},
            "object": obj,
            "oldObject": old,
            "dryRun": False,
        },
    }


def request(**spec):
    fields = {"grant": "wh-grant", "justification": "INC-7: rotate the keys", **spec}
    return {
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "ActivationRequest",
        "metadata": {"name": "r", "namespace": "team-sre"},
        "spec": fields,
    }


async def send(webhook, path, body):
    url, context = webhook.url, webhook.context
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/{path}", json=body, ssl=context) as answer,
    ):
        assert answer.status == 200
        return (await answer.json())["response"]


def mutated(obj, response):
    patch = json.loads(base64.b64decode(response["patch"])) if response.get("patch") else []
    return jsonpatch.apply_patch(obj, patch)


async def test_requester_is_stamped_from_user_info_and_sealed(webhook):
    response = await send(webhook, "stamp-requester", review("CREATE", request()))
    assert response["allowed"] is True
    final = mutated(request(), response)
    assert final["spec"]["requester"] == "user:alice@example.com"
    assert final["spec"]["requesterGroups"] == ["group:sre@example.com"]
    assert attestation_valid(final, KEY)
    assert final["metadata"]["finalizers"] == ["jitaccess.dev/revoke-on-delete"]
    validated = await send(webhook, "validate-request", review("CREATE", final))
    assert validated["allowed"] is True
    # Another finalizer would keep the request from ever going: only the operator's may be there.
    others = request()
    others["metadata"]["finalizers"] = ["example.com/keep"]
    refused = await send(webhook, "stamp-requester", review("CREATE", others))
    assert (
        refused["allowed"] is False
        and "metadata.finalizers[example.com/keep]" in refused["status"]["message"]
    )


async def test_allowed_but_worth_knowing_comes_back_as_warnings(webhook):
    response = await send(webhook, "stamp-requester", review("CREATE", request(duration="90m")))
    assert response["allowed"] is True
    assert any("longer than the grant's default 1h" in warning for warning in response["warnings"])


async def test_impersonation_is_refused(webhook):
    response = await send(
        webhook, "stamp-requester", review("CREATE", request(requester="user:bob@example.com"))
    )
    assert response["allowed"] is False
    assert "cannot act as user:bob@example.com" in response["status"]["message"]


async def test_trusted_submitter_may_file_for_alice(webhook):
    obj = request(requester="user:alice@example.com")
    response = await send(webhook, "stamp-requester", review("CREATE", obj, user=GITOPS, groups=()))
    assert response["allowed"] is True
    assert mutated(obj, response)["metadata"]["annotations"][ATTESTATION].startswith("v1:")


async def test_non_email_users_and_ineligible_requests_are_refused_naming_why(webhook):
    robot = await send(
        webhook, "stamp-requester", review("CREATE", request(), user="kubernetes-admin", groups=())
    )
    assert robot["allowed"] is False and "not an e-mail address" in robot["status"]["message"]
    carol = await send(
        webhook, "stamp-requester", review("CREATE", request(), user="carol@example.com", groups=())
    )
    assert carol["allowed"] is False and carol["status"]["message"].startswith("spec.requester: user:carol")
    bad = await send(webhook, "stamp-requester", review("CREATE", request(justification="because")))
    assert bad["allowed"] is False and bad["status"]["message"].startswith(
        "spec.justification: does not match"
    )


async def test_spec_edits_refused_and_revoke_allowed_once(webhook):
    old = request(requester="user:alice@example.com")
    edited = request(requester="user:alice@example.com", duration="2h")
    refused = await send(webhook, "validate-request", review("UPDATE", edited, old=old))
    assert refused["allowed"] is False and "immutable" in refused["status"]["message"]
    revoked = request(requester="user:alice@example.com", revoke=True)
    assert (await send(webhook, "validate-request", review("UPDATE", revoked, old=old)))["allowed"] is True
    back = await send(webhook, "validate-request", review("UPDATE", old, old=revoked))
    assert back["allowed"] is False and "cannot go back" in back["status"]["message"]


async def test_a_grant_the_watch_has_not_delivered_yet_is_looked_up_not_refused(webhook):
    """`kubectl apply -f grant.yaml -f request.yaml` must not race the operator's watch."""
    await webhook.cluster.grant("wh-fresh", "projects/my-sandbox")
    # Once the operator has written the grant's status (its last event), forget what the watch
    # delivered, as if the events were still on the wire.
    for _ in range(200):
        if (webhook.reconciler.cache.grant_bodies.get("wh-fresh") or {}).get("status"):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    assert webhook.reconciler.cache.grants.pop("wh-fresh", None)
    webhook.reconciler.cache.grant_bodies.pop("wh-fresh", None)
    answer = await send(webhook, "stamp-requester", review("CREATE", request(grant="wh-fresh")))
    assert answer["allowed"], answer
    missing = await send(webhook, "stamp-requester", review("CREATE", request(grant="wh-never-made")))
    assert not missing["allowed"]
    assert "EligibleGrant wh-never-made does not exist" in missing["status"]["message"]
