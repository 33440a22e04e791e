"""The Google side as code: deploy/terraform/ is formatted (`terraform fmt -check`
when terraform is installed), declares the variables of Google's JIT Access module, and grants
the operator nothing but get/setIamPolicy, to the Kubernetes service account of manifests/."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "deploy" / "terraform"
ALLOWED = {
    f"resourcemanager.{kind}.{verb}IamPolicy"
    for kind in ("projects", "folders", "organizations")
    for verb in ("get", "set")
}


def parsed(name: str) -> dict:
    with open(TERRAFORM / name) as handle:
        return hcl2.load(handle)


def unquote(text: str) -> str:
    return text.strip('"')


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_fmt_check_passes():
    done = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_variables_are_those_of_googles_jit_access_module():
    names = {unquote(name) for block in parsed("variables.tf")["variable"] for name in block}
    assert {"project_id", "scope_type", "scope_id", "organization_id"} <= names


def test_the_custom_role_holds_only_get_and_set_iam_policy_of_the_scope():
    (local,) = parsed("main.tf")["locals"]
    permissions = {scope: {unquote(p) for p in listed} for scope, listed in local["permissions"].items()}
    assert set(permissions) == {"project", "folder", "organization"}
    assert all(granted <= ALLOWED for granted in permissions.values())
    assert permissions["project"] == {
        "resourcemanager.projects.getIamPolicy",
        "resourcemanager.projects.setIamPolicy",
    }
    assert permissions["organization"] == ALLOWED


def test_workload_identity_names_the_operators_kubernetes_service_account():
    variables = {
        unquote(name): unquote(block[name].get("default") or "")
        for block in parsed("variables.tf")["variable"]
        for name in block
    }
    kustomization = yaml.safe_load((ROOT / "manifests" / "kustomization.yaml").read_text())
    accounts = [
        d
        for d in yaml.safe_load_all((ROOT / "manifests" / "rbac.yaml").read_text())
        if d and d["kind"] == "ServiceAccount"
    ]
    assert variables["kubernetes_namespace"] == kustomization["namespace"]
    assert variables["kubernetes_service_account"] == accounts[0]["metadata"]["name"]
    resources = {
        unquote(kind): body for block in parsed("main.tf")["resource"] for kind, body in block.items()
    }
    binding = resources["google_service_account_iam_member"]['"workload_identity"']
    assert unquote(binding["role"]) == "roles/iam.workloadIdentityUser"
    assert "svc.id.goog[${var.kubernetes_namespace}/${var.kubernetes_service_account}]" in binding["member"]
