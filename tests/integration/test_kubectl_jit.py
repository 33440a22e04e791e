"""`kubectl jit` driven against the sandbox as the people of the sandbox: alice asks,
bob approves or denies, alice follows, lists and revokes. One test goes through kubectl itself,
which finds the plugin on PATH as any installed kubectl plugin. An approver sees what waits for
them at which step, and what they approve before they approve it. It behaves as a kubectl
plugin: flags anywhere, -o json|yaml|name|wide, -A, `show` as describe, errors as kubectl's
one line, completion through kubectl's plugin protocol."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

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


async def jit_as_kubectl(cluster, user: str, *args: str) -> tuple[int, str, str]:
    """`args` with the kubectl flags after the command, as people type them; (code, out, err)."""
    out, err = io.StringIO(), io.StringIO()
    argv = [*args, "--kubeconfig", str(cluster.sandbox.kubeconfig), "--context", user]
    code = await asyncio.to_thread(main, argv, out, io.StringIO(""), err)
    return code, out.getvalue(), err.getvalue()


def facts_of(shown: str) -> dict[str, str]:
    """What `show` said, by label (the unindented `Label: value` lines)."""
    return dict(re.findall(r"^([A-Z][A-Za-z -]*):[ \t]+(\S.*)$", shown, re.MULTILINE))


def section(shown: str, title: str) -> list[list[str]]:
    """The rows of one of `show`'s indented tables (after its header and underline)."""
    rows = []
    for line in shown.split(f"\n{title}:\n", 1)[1].splitlines()[2:]:
        if not line.startswith("  ") or line.startswith("  ("):
            break
        rows.append(re.split(r" {3,}", line.strip()))
    return rows


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

    code, described = await jit(cluster, BOB, "show", "alice-hostile")
    assert code == 0 and not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", described), repr(described)
    assert facts_of(described)["Justification"] == shown["justification"]
    for output, read in (("json", json.loads), ("yaml", yaml.safe_load)):
        code, printed = await jit(cluster, BOB, "show", "alice-hostile", "-o", output)
        assert code == 0 and not re.search(r"[\x00-\x08\x0b-\x1f\x7f\u202e]", printed), repr(printed)
        assert read(printed)["spec"]["justification"] == hostile  # escaped, not changed


async def approvals_of(cluster, request: str) -> list[dict]:
    listed = await asyncio.to_thread(
        cluster.custom.list_namespaced_custom_object, GROUP, VERSION, "team-sre", "activationapprovals"
    )
    return [a for a in listed["items"] if a["spec"]["request"] == request]


async def test_output_formats_and_flags_after_the_command(cluster):
    project = cluster.project()
    await cluster.grant("jit-out", project, roles=["roles/compute.admin"])
    await cluster.wait_grant_ready("jit-out")
    code, said, _ = await jit_as_kubectl(
        cluster,
        ALICE,
        "request",
        "jit-out",
        "--reason",
        "INC-20: outputs",
        "--name",
        "alice-out",
        "-o",
        "name",
    )
    assert (code, said) == (0, "activationrequest.jitaccess.dev/alice-out\n")
    await cluster.wait_phase("alice-out", "Active")

    code, listed, _ = await jit_as_kubectl(cluster, ALICE, "list", "-o", "json", "-n", "team-sre")
    document = json.loads(listed)
    assert code == 0 and (document["apiVersion"], document["kind"]) == ("v1", "List")
    [mine] = [item for item in document["items"] if item["metadata"]["name"] == "alice-out"]
    assert mine["kind"] == "ActivationRequest" and mine["status"]["phase"] == "Active"
    code, listed = await jit(cluster, ALICE, "-o", "yaml", "list")
    assert code == 0 and "alice-out" in [i["metadata"]["name"] for i in yaml.safe_load(listed)["items"]]
    code, names, _ = await jit_as_kubectl(cluster, ALICE, "list", "-oname")
    assert "activationrequest.jitaccess.dev/alice-out" in names.splitlines()
    code, wide, _ = await jit_as_kubectl(cluster, ALICE, "list", "-o", "wide")
    assert rows(wide)["NAME"][-4:] == ["DURATION", "START", "REASON", "AGE"]
    assert rows(wide)["alice-out"][-2] == "Activated"
    code, grants, _ = await jit_as_kubectl(cluster, ALICE, "grants", "--output=json")
    assert "jit-out" in [g["metadata"]["name"] for g in json.loads(grants)["items"]]
    code, shown, _ = await jit_as_kubectl(cluster, ALICE, "show", "alice-out", "-o", "json")
    assert code == 0 and json.loads(shown)["metadata"]["name"] == "alice-out"  # the object, not a List
    code, followed, _ = await jit_as_kubectl(cluster, ALICE, "status", "alice-out", "-o", "yaml")
    assert code == 0 and yaml.safe_load(followed)["status"]["phase"] == "Active"  # no progress lines

    # The later flag wins: bob before the command, alice after it.
    argv = [
        "--kubeconfig",
        str(cluster.sandbox.kubeconfig),
        "--context",
        BOB,
        "list",
        "--mine",
        "--context",
        ALICE,
    ]
    out = io.StringIO()
    assert await asyncio.to_thread(main, argv, out, io.StringIO(""), io.StringIO()) == 0
    assert "alice-out" in rows(out.getvalue())


async def test_a_generated_name_and_a_scheduled_start(cluster):
    project = cluster.project()
    await cluster.grant(
        "jit.names", project, roles=["roles/compute.admin"], approval={"approvers": [f"user:{BOB}"]}
    )
    await cluster.wait_grant_ready("jit.names")
    code, said, err = await jit_as_kubectl(
        cluster, ALICE, "request", "jit.names", "--reason", "INC-21: later", "--start", "+2h", "-o", "name"
    )
    assert code == 0, err
    name = said.strip().removeprefix("activationrequest.jitaccess.dev/")
    assert re.fullmatch(r"alice-jit-names-[0-9a-f]{6}", name), name  # who and what, as a DNS label
    body = await cluster.wait_phase(name, "AwaitingApproval")
    start = datetime.fromisoformat(body["spec"]["startTime"])
    assert abs(start - (datetime.now(UTC) + timedelta(hours=2))) < timedelta(seconds=30)


async def test_errors_are_one_kubectl_line_and_never_a_traceback(cluster):
    code, out, err = await jit_as_kubectl(cluster, "nope", "list")
    assert (code, out, err) == (1, "", 'error: context "nope" does not exist\n')
    done = await asyncio.to_thread(
        subprocess.run,
        [
            str(BIN / "kubectl-jit"),
            "list",
            "--kubeconfig",
            str(cluster.sandbox.kubeconfig),
            "--context",
            "nope",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (1, 'error: context "nope" does not exist\n')

    code, _, err = await jit_as_kubectl(cluster, ALICE, "show", "nothere")
    assert (code, err) == (
        1,
        'Error from server (NotFound): activationrequests.jitaccess.dev "nothere" not found\n',
    )
    code, _, err = await jit_as_kubectl(cluster, CAROL, "list", "-n", "kube-system")
    assert code == 1 and err.startswith("Error from server (Forbidden): ") and err.count("\n") == 1
    project = cluster.project()
    await cluster.grant("jit-errors", project)
    await cluster.wait_grant_ready("jit-errors")
    code, _, err = await jit_as_kubectl(
        cluster, ALICE, "request", "jit-errors", "--reason", "x", "--name", "Bad_Name"
    )
    assert code == 1 and err.startswith("Error from server (Invalid): ") and "Bad_Name" in err
    assert err.count("\n") == 1
    code, _, err = await jit_as_kubectl(
        cluster, ALICE, "request", "jit-errors", "--for", "9h", "--reason", "x"
    )
    assert (
        code == 1 and err.startswith("Error from server (") and "maxDuration" in err and err.count("\n") == 1
    )


async def test_show_tells_the_whole_story(cluster):
    project = cluster.project()
    await cluster.grant(
        "jit-story", project, roles=["roles/compute.admin"], approval={"approvers": [f"user:{BOB}"]}
    )
    await cluster.wait_grant_ready("jit-story")
    await jit(
        cluster,
        ALICE,
        "request",
        "jit-story",
        "--for",
        "25m",
        "--reason",
        "INC-22: the story",
        "--name",
        "alice-story",
    )
    await cluster.wait_phase("alice-story", "AwaitingApproval")
    code, _ = await jit(cluster, BOB, "approve", "alice-story", "--comment", "go ahead", "--yes")
    assert code == 0
    await cluster.wait_phase("alice-story", "Active")
    await cluster.wait_event("alice-story", "Activated")

    code, shown = await jit(cluster, BOB, "show", "alice-story")
    facts = facts_of(shown)
    assert code == 0 and {k: facts[k] for k in ("Name", "Namespace", "Phase", "Requester", "Grant")} == {
        "Name": "alice-story",
        "Namespace": "team-sre",
        "Phase": "Active",
        "Requester": "user:alice@example.com",
        "Grant": "jit-story",
    }
    assert (facts["Resource"], facts["Roles"], facts["Window"]) == (
        project,
        "roles/compute.admin",
        "as soon as approved, for 25m",
    )
    assert facts["Justification"] == "INC-22: the story" and facts["Expires"]
    assert facts["Approval"] == "1 of 1 approval(s) (user:bob@example.com)"
    [approval] = section(shown, "Approvals")
    assert approval[:2] == ["Approve", "user:bob@example.com"] and approval[3] == "yes"
    assert approval[4].startswith("counts") and approval[-1] == "go ahead"
    ready = [row for row in section(shown, "Conditions") if row[0] == "Ready"]
    assert ready and ready[0][1:3] == ["True", "Activated"]
    assert "Activated" in [row[1] for row in section(shown, "Events")]

    # alice may not read the decisions: she sees those that count, from the request's status.
    code, hers = await jit(cluster, ALICE, "show", "alice-story")
    assert code == 0 and section(hers, "Approvals")[0][:2] == ["Approve", "user:bob@example.com"]
    assert "you may not read its activationapprovals" in hers


async def test_all_namespaces(cluster):
    project = cluster.project()
    await cluster.grant("jit-all", project, approval={"approvers": [f"user:{BOB}"]})
    await cluster.wait_grant_ready("jit-all")
    await jit(cluster, ALICE, "request", "jit-all", "--reason", "INC-23: everywhere", "--name", "alice-all")
    await cluster.wait_phase("alice-all", "AwaitingApproval")
    code, everything, _ = await jit_as_kubectl(cluster, "admin", "list", "-A")
    assert code == 0 and rows(everything)["NAMESPACE"][:2] == ["NAMESPACE", "NAME"]
    assert rows(everything)["team-sre"]  # rows start with their namespace
    assert any(line.split()[:2] == ["team-sre", "alice-all"] for line in everything.splitlines())
    # alice may list neither all namespaces nor the namespaces: her kubeconfig's, and a warning.
    code, hers, warned = await jit_as_kubectl(cluster, ALICE, "list", "-A", "-o", "name")
    assert code == 0 and "activationrequest.jitaccess.dev/alice-all" in hers.splitlines()
    assert warned.startswith("warning: ") and "team-sre" in warned
    code, bobs, _ = await jit_as_kubectl(cluster, BOB, "pending", "-A")
    assert code == 0 and any(line.split()[:2] == ["team-sre", "alice-all"] for line in bobs.splitlines())


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl")
async def test_kubectl_completes_jit_through_kubectl_complete_jit(cluster, tmp_path):
    """kubectl 1.26+ runs `kubectl_complete-jit WORDS...` from PATH to complete `kubectl jit`."""
    project = cluster.project()
    await cluster.grant("jit-complete", project, approval={"approvers": [f"user:{BOB}"]})
    await cluster.wait_grant_ready("jit-complete")
    await jit(cluster, ALICE, "request", "jit-complete", "--reason", "INC-24: tab", "--name", "alice-tab")
    await cluster.wait_phase("alice-tab", "AwaitingApproval")
    helper = tmp_path / "kubectl_complete-jit"
    helper.write_text(f'#!/bin/sh\nexec "{BIN / "kubectl-jit"}" __complete "$@"\n')
    helper.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}{os.pathsep}{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}

    async def offered(*words: str) -> list[str]:
        command = [KUBECTL, "__complete", "jit", "--kubeconfig", str(cluster.sandbox.kubeconfig), *words]
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, env=env, timeout=60
        )
        return done.stdout.splitlines()

    # Four completions at once: each is kubectl starting kubectl_complete-jit, a Python process.
    approvable, to_approve, grants, commands = await asyncio.gather(
        offered("--context", BOB, "approve", "alice-t"),
        offered("--context", BOB, "approve", ""),
        offered("--context", ALICE, "request", ""),
        offered(""),
    )
    assert approvable == ["alice-tab", ":4"]
    assert "alice-out" not in to_approve  # Active: nothing to approve
    assert "jit-complete" in grants
    assert "show" in commands
