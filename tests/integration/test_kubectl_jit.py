"""`kubectl jit` driven against the sandbox as the people of the sandbox: alice asks,
bob approves or denies, alice follows, lists and revokes. One test goes through kubectl itself,
which finds the plugin on PATH as any installed kubectl plugin."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jitaccess.kubectl_jit import main
from tests.integration.test_kubectl import KUBECTL

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
BIN = Path(sys.executable).parent


async def jit(cluster, user: str, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    argv = ["--kubeconfig", str(cluster.sandbox.kubeconfig), "--context", user, *args]
    code = await asyncio.to_thread(main, argv, out)
    return code, out.getvalue()


async def test_ask_approve_follow_list_and_revoke(cluster):
    project = cluster.project()
    await cluster.grant(
        "jit-plugin",
        project,
        roles=["roles/compute.admin"],
        approval={"approvers": ["group:sre-leads@example.com"]},
    )
    await cluster.grant("jit-other-team", project, principals=["group:payments@example.com"])
    await cluster.wait_grant_ready("jit-plugin")

    code, grants = await jit(cluster, "alice@example.com", "grants")
    assert code == 0 and "jit-plugin" in grants and project in grants and "1 approval(s)" in grants
    assert "jit-other-team" not in grants  # alice is not among its principals

    code, said = await jit(
        cluster, "alice@example.com", "request", "jit-plugin", "--role", "roles/compute.admin",
        "--for", "45m", "--reason", "INC-7: rotate the load balancer certificate", "--name", "alice-lb",
    )  # fmt: skip
    assert code == 0 and "activationrequest/alice-lb created in team-sre" in said
    body = await cluster.wait_phase("alice-lb", "AwaitingApproval")
    assert body["spec"]["requester"] == "user:alice@example.com" and body["spec"]["duration"] == "45m"

    code, pending = await jit(cluster, "bob@example.com", "list", "--pending-my-approval")
    assert code == 0 and "alice-lb" in pending
    code, own = await jit(cluster, "alice@example.com", "list", "--pending-my-approval")
    assert "alice-lb" not in own  # nobody approves their own request
    code, mine = await jit(cluster, "alice@example.com", "list", "--mine")
    assert "alice-lb" in mine and "AwaitingApproval" in mine

    code, said = await jit(
        cluster, "bob@example.com", "approve", "alice-lb", "--comment", "cert expires today"
    )
    assert code == 0 and "approved alice-lb" in said
    code, progress = await jit(cluster, "alice@example.com", "status", "alice-lb", "--interval", "0.05")
    assert code == 0 and progress.strip().splitlines()[-1].startswith("alice-lb: Active")
    assert any(m for b in cluster.bindings(project) for m in b["members"] if m == "user:alice@example.com")

    code, said = await jit(cluster, "alice@example.com", "revoke", "alice-lb")
    assert code == 0
    await cluster.wait_phase("alice-lb", "Revoked")
    code, progress = await jit(cluster, "alice@example.com", "status", "alice-lb", "--interval", "0.05")
    assert code == 1 and "Revoked" in progress


async def test_a_denial_and_a_refusal_say_why(cluster):
    project = cluster.project()
    await cluster.grant("jit-deny", project, approval={"approvers": ["user:bob@example.com"]})
    await cluster.wait_grant_ready("jit-deny")
    await jit(
        cluster,
        "alice@example.com",
        "request",
        "jit-deny",
        "--reason",
        "INC-8: look at logs",
        "--name",
        "alice-logs",
    )
    await cluster.wait_phase("alice-logs", "AwaitingApproval")
    code, _ = await jit(cluster, "bob@example.com", "deny", "alice-logs", "--comment", "use the viewer role")
    assert code == 0
    await cluster.wait_phase("alice-logs", "Denied")
    code, _ = await jit(
        cluster, "carol@example.com", "request", "jit-deny", "--reason", "INC-9: curious", "--name", "carol-x"
    )
    assert code == 1 and await cluster.get("carol-x") is None  # refused at admission: not eligible


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl")
async def test_kubectl_finds_the_plugin_on_path(cluster):
    project = cluster.project()
    await cluster.grant("jit-path", project)
    await cluster.wait_grant_ready("jit-path")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    command = [
        KUBECTL,
        "jit",
        "--kubeconfig",
        str(cluster.sandbox.kubeconfig),
        "--context",
        "alice@example.com",
        "grants",
    ]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "jit-path" in done.stdout


async def test_break_glass_and_its_review_with_the_plugin(cluster):
    project = cluster.project()
    await cluster.grant(
        "jit-glass",
        project,
        roles=["roles/compute.admin"],
        breakGlass={"allowed": True, "reviewers": ["group:sre-leads@example.com"]},
    )
    await cluster.wait_grant_ready("jit-glass")
    code, said = await jit(
        cluster, "alice@example.com", "request", "jit-glass", "--break-glass",
        "--reason", "INC-9: everything is down", "--name", "alice-glass",
    )  # fmt: skip
    assert code == 0, said
    await cluster.wait_phase("alice-glass", "Active")
    code, _ = await jit(cluster, "alice@example.com", "review", "alice-glass", "--comment", "all fine")
    assert code == 1  # refused at admission: she cannot review her own break-glass access
    code, said = await jit(
        cluster, "bob@example.com", "review", "alice-glass", "--revoke", "--comment", "not needed"
    )
    assert code == 0 and "revoked (as reviewer) alice-glass" in said
    body = await cluster.wait_phase("alice-glass", "Revoked")
    assert body["status"]["conditions"][0]["reason"] == "RevokedByReviewer"
