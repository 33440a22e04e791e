"""`kubectl jit` driven against the sandbox as the people of the sandbox: alice asks,
bob approves or denies, alice follows, lists and revokes. One test goes through kubectl itself,
which finds the plugin on PATH as any installed kubectl plugin. An approver sees what waits for
them at which step, and what they approve before they approve it."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jitaccess.kubectl_jit import main
from jitaccess.kubectl_review import age
from tests.integration.conftest import GROUP, VERSION, until
from tests.integration.test_kubectl import KUBECTL

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
BIN = Path(sys.executable).parent
ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"
TWO_STEPS = {
    "steps": [
        {"approvers": ["group:sre-leads@example.com"]},
        {"approvers": ["user:carol@example.com"]},
    ]
}


class Terminal(io.StringIO):
    """Someone at a terminal who answers `answer`; `meanwhile` runs while they read the summary."""

    def __init__(self, answer: str, meanwhile: Callable[[], None] | None = None) -> None:
        super().__init__(answer)
        self.meanwhile = meanwhile

    def isatty(self) -> bool:
        return True

    def readline(self, size: int | None = -1) -> str:
        if self.meanwhile is not None:
            self.meanwhile()
        return super().readline(size)


async def jit(cluster, user: str, *args: str, stdin: io.StringIO | None = None) -> tuple[int, str]:
    out = io.StringIO()
    argv = ["--kubeconfig", str(cluster.sandbox.kubeconfig), "--context", user, *args]
    code = await asyncio.to_thread(main, argv, out, stdin or io.StringIO(""))
    return code, out.getvalue()


def summary_of(said: str) -> dict[str, str]:
    """What `approve` showed, by label."""
    return dict(re.findall(r"^  ([a-z ]+):\s+(.*)$", said, re.MULTILINE))


def rows(table: str) -> dict[str, list[str]]:
    """A table's rows by NAME (the header under "NAME")."""
    return {line.split()[0]: line.split() for line in table.strip().splitlines()}


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
        cluster, "bob@example.com", "approve", "alice-lb", "--comment", "cert expires today", "--yes"
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
    code, _ = await jit(cluster, BOB, "deny", "alice-logs", "--comment", "use the viewer role", "-y")
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


async def test_pending_shows_the_step_that_waits_to_its_approvers_only(cluster, capsys):
    await cluster.bind("jitaccess-approver", CAROL)
    project = cluster.project()
    await cluster.grant("jit-steps", project, roles=["roles/compute.admin"], approval=TWO_STEPS)
    await cluster.wait_grant_ready("jit-steps")
    code, _ = await jit(
        cluster, ALICE, "request", "jit-steps", "--reason", "INC-10: two steps", "--name", "alice-steps"
    )
    assert code == 0
    await cluster.wait_phase("alice-steps", "AwaitingApproval")

    code, bobs = await jit(cluster, BOB, "pending")
    assert code == 0 and rows(bobs)["NAME"] == ["NAME", "REQUESTER", "GRANT", "ROLES", "STEP", "AGE"]
    row = rows(bobs)["alice-steps"]
    assert row[:5] == ["alice-steps", "user:alice@example.com", "jit-steps", "roles/compute.admin", "1/2"]
    assert re.fullmatch(r"\d+s", row[5]), row  # filed seconds ago
    code, listed = await jit(cluster, BOB, "list", "--pending-my-approval")
    assert code == 0 and rows(listed)["alice-steps"][:5] == row[:5]
    code, carols = await jit(cluster, CAROL, "pending")
    assert code == 0 and "alice-steps" not in carols  # hers is step 2, which has not opened
    code, own = await jit(cluster, ALICE, "pending")
    assert code == 0 and "alice-steps" not in own  # nobody approves their own request
    code, said = await jit(cluster, CAROL, "approve", "alice-steps", "--yes")
    assert code == 1 and "for group:sre-leads@example.com; an approval of yours would not count" in (
        capsys.readouterr().err
    )
    assert await approvals_of(cluster, "alice-steps") == []  # nothing filed that would be ignored

    code, said = await jit(cluster, BOB, "approve", "alice-steps", stdin=Terminal("y\n"))
    assert code == 0 and "Approve? [y/N]" in said and "approved alice-steps" in said

    async def carols_turn() -> bool:
        return "alice-steps" in (await jit(cluster, CAROL, "pending"))[1]

    await until(carols_turn, "carol sees step 2 once the operator counted bob's approval", timeout_s=20)
    _, carols = await jit(cluster, CAROL, "pending")
    assert rows(carols)["alice-steps"][4] == "2/2"
    _, bobs = await jit(cluster, BOB, "pending")
    assert "alice-steps" not in bobs  # he has approved; one person counts once
    code, said = await jit(cluster, CAROL, "approve", "alice-steps")
    assert code == 1 and "step 2 of 2 waits for 1 more approval(s) from user:carol@example.com" in said
    assert "Approve by user:bob@example.com at " in said  # the approvals so far


async def test_age_is_spelled_as_kubectl_spells_it():
    now = datetime(2030, 1, 10, tzinfo=UTC)

    def ago(**delta: float) -> str:
        return age((now - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ"), now)

    assert [ago(seconds=45), ago(minutes=5), ago(minutes=7, seconds=3), ago(hours=3)] == [
        "45s",
        "5m",
        "7m3s",
        "3h",
    ]
    assert [ago(hours=5, minutes=20), ago(days=2), ago(days=3, hours=4), ago(days=40)] == [
        "5h20m",
        "2d",
        "3d4h",
        "40d",
    ]
    assert ago(seconds=-30) == "0s" and age("yesterday", now) == "<unknown>"


async def test_approve_shows_what_is_approved_and_asks_before_filing(cluster, capsys):
    project = cluster.project()
    await cluster.grant("jit-show", project, approval={"approvers": ["user:bob@example.com"]})
    await cluster.wait_grant_ready("jit-show")
    await jit(
        cluster, ALICE, "request", "jit-show", "--role", "roles/storage.admin", "--for", "20m",
        "--reason", "INC-11: restore the backup bucket", "--name", "alice-show",
    )  # fmt: skip
    await cluster.wait_phase("alice-show", "AwaitingApproval")

    code, said = await jit(cluster, BOB, "approve", "alice-show")  # stdin is not a terminal
    assert code == 1 and "pass --yes to approve alice-show" in capsys.readouterr().err
    assert summary_of(said) == {
        "requester": "user:alice@example.com",
        "grant": "jit-show",
        "resource": project,
        "roles": "roles/storage.admin",
        "window": "as soon as approved, for 20m",
        "justification": "INC-11: restore the backup bucket",
        "phase": "AwaitingApproval",
        "approval": "0 of 1 approval(s)",
        "approvals so far": "none",
    }
    code, said = await jit(cluster, BOB, "approve", "alice-show", stdin=Terminal("\n"))
    assert code == 1 and "Approve? [y/N]" in said
    assert "not approved: nothing was filed" in capsys.readouterr().err
    assert await approvals_of(cluster, "alice-show") == []

    code, said = await jit(cluster, BOB, "approve", "alice-show", "--yes", "--comment", "restore it")
    assert code == 0 and "approved alice-show" in said
    body = await cluster.wait_phase("alice-show", "Active")
    [approval] = await approvals_of(cluster, "alice-show")
    assert approval["spec"]["requestUID"] == body["metadata"]["uid"] and approval["spec"]["requestDigest"]


async def test_an_approval_is_pinned_to_the_grant_as_shown(cluster, capsys):
    project = cluster.project()
    await cluster.grant(
        "jit-pin", project, roles=["roles/compute.admin"], approval={"approvers": ["user:bob@example.com"]}
    )
    await cluster.wait_grant_ready("jit-pin")
    await jit(cluster, ALICE, "request", "jit-pin", "--reason", "INC-12: all roles", "--name", "alice-pin")
    await cluster.wait_phase("alice-pin", "AwaitingApproval")

    def the_grant_grows() -> None:
        """While bob reads, the grant gains a role that alice's request (all roles) would get."""
        custom = cluster.custom
        patch = {"spec": {"roles": ["roles/compute.admin", "roles/storage.admin"]}}
        custom.patch_cluster_custom_object(GROUP, VERSION, "eligiblegrants", "jit-pin", patch)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # until the operator has seen it
            grant = custom.get_cluster_custom_object(GROUP, VERSION, "eligiblegrants", "jit-pin")
            ready = [c for c in grant.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
            if ready and ready[0].get("observedGeneration") == grant["metadata"]["generation"]:
                return
            time.sleep(0.05)

    code, said = await jit(cluster, BOB, "approve", "alice-pin", stdin=Terminal("y\n", the_grant_grows))
    assert code == 1 and summary_of(said)["roles"] == "roles/compute.admin"
    assert "changed since you reviewed it" in capsys.readouterr().err
    assert await approvals_of(cluster, "alice-pin") == []


@pytest.mark.sandbox_api
async def test_a_hostile_justification_is_printed_inert(cluster):
    project = cluster.project()
    await cluster.grant("jit-hostile", project, approval={"approvers": ["user:bob@example.com"]})
    await cluster.wait_grant_ready("jit-hostile")
    hostile = "INC-13\x1b[31m fine\n  approval:          1 of 1 approval(s)\r\x1b]0;owned\x07\u202e"
    # Written around admission (which refuses it), as a restore from backup could.
    cluster.sandbox.api.admission.enabled = False
    try:
        await cluster.request("alice-hostile", "jit-hostile", justification=hostile)
    finally:
        cluster.sandbox.api.admission.enabled = True
    code, said = await jit(cluster, BOB, "approve", "alice-hostile", "--yes")
    assert code == 1  # it never awaited approval: the operator refuses such a justification
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", said), repr(said)
    shown = summary_of(said)
    assert shown["justification"] == (
        "INC-13\\x1b[31m fine\\n  approval:          1 of 1 approval(s)\\r\\x1b]0;owned\\x07\\u202e"
    )
    assert shown["approval"] == "(cannot be counted)"  # the forged line is part of the justification


async def approvals_of(cluster, request: str) -> list[dict]:
    listed = await asyncio.to_thread(
        cluster.custom.list_namespaced_custom_object, GROUP, VERSION, "team-sre", "activationapprovals"
    )
    return [a for a in listed["items"] if a["spec"]["request"] == request]
