"""The web console's API end to end: the console (its own service account, its watches) behind the
sandbox's IAP stand-in, the operator's admission and lifecycle, the IAM emulator; one sandbox for
the module. People come in with assertions the stand-in signs, as IAP would."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from kubernetes import client

from jitaccess.console.iap import HEADER
from jitaccess.console.server import CSP, STATIC
from jitaccess_sandbox.iap_standin import COOKIE, SigningKey
from jitaccess_sandbox.runner import CONSOLE_USER, Sandbox, _free_port
from tests.integration.conftest import GROUP, VERSION, Cluster, sandbox_with_console
from tests.integration.test_trust import patch_as

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
HOSTILE = '<img src=x onerror="alert(1)"><script>alert(document.cookie)</script>&amp; "quoted"'


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def console_sandbox(tmp_path_factory: pytest.TempPathFactory):
    state = Path(tmp_path_factory.mktemp("console-sandbox"))
    async with sandbox_with_console(state) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def cluster(console_sandbox):
    return Cluster(console_sandbox)


@pytest_asyncio.fixture(loop_scope="module")
async def session():
    async with aiohttp.ClientSession() as opened:
        yield opened


class Browser:
    """One person at one console replica: IAP's assertion on every call, the CSRF token on POSTs,
    and the headers a browser adds to a same-origin fetch."""

    def __init__(self, session: aiohttp.ClientSession, sandbox: Sandbox, email: str, port: int | None = None):
        front = sandbox.front
        self.session, self.email = session, email
        self.base = f"http://127.0.0.1:{port or front.consoles[0].port}"
        self.assertion = front.iap.assertion(email)
        self.token = ""

    async def call(self, method: str, path: str, body=None, **headers) -> tuple[int, dict]:
        sent = {HEADER: self.assertion}
        if method == "POST":
            sent.update({"Origin": self.base, "Sec-Fetch-Site": "same-origin", "X-CSRF-Token": self.token})
        sent.update(headers)
        data = json.dumps(body if body is not None else {}) if method == "POST" else None
        if method == "POST":
            sent.setdefault("Content-Type", "application/json")
        async with self.session.request(
            method, self.base + path, data=data, headers={k: v for k, v in sent.items() if v is not None}
        ) as answer:
            text = await answer.text()
            try:
                return answer.status, json.loads(text)
            except ValueError:  # aiohttp's own 404 and 405 are plain text
                return answer.status, {"text": text}

    async def signed_in(self) -> Browser:
        status, me = await self.call("GET", "/api/me")
        assert status == 200, me
        self.token = me["csrfToken"]
        return self

    async def get(self, path: str) -> dict:
        status, data = await self.call("GET", path)
        assert status == 200, data
        return data

    async def request(self, grant: str, **fields) -> tuple[int, dict]:
        return await self.call(
            "POST", "/api/requests", {"grant": grant, "justification": "INC-1: fix the edge", **fields}
        )


async def person(session, sandbox, email, port=None) -> Browser:
    return await Browser(session, sandbox, email, port).signed_in()


async def until(check, what: str, timeout_s: float = 20):
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.05)


async def test_a_request_through_the_console_is_stamped_with_the_iap_identity_and_activates(
    cluster, console_sandbox, session
):
    project = cluster.project()
    await cluster.grant("console-self", project, principals=["user:alice@example.com"])
    alice = await person(session, console_sandbox, "alice@example.com")
    status, filed = await alice.request("console-self", roles=["roles/compute.admin"], duration="30m")
    assert status == 201, filed
    name = filed["created"]["name"]
    body = await cluster.wait_phase(name, "Active")
    assert body["spec"]["requester"] == "user:alice@example.com" and body["spec"]["requesterGroups"] == []
    assert [b["members"] for b in cluster.bindings(project)] == [["user:alice@example.com"]]
    mine = await alice.get("/api/requests")
    assert mine["requests"][0]["name"] == name  # newest first

    async def shows_active():
        detail = await alice.get(f"/api/requests/team-sre/{name}")
        return detail["phase"] == "Active" and any(e["reason"] == "Activated" for e in detail["events"])

    await until(shows_active, "the console shows it Active with its Activated Event")
    detail = await alice.get(f"/api/requests/team-sre/{name}")
    assert (
        detail["resource"] == project and detail["roles"] == ["roles/compute.admin"] and detail["expiresAt"]
    )
    assert detail["may"]["revoke"] and detail["may"]["extend"] and not detail["may"]["decide"]


async def test_nobody_can_be_named_and_a_forged_assertion_gets_nothing(cluster, console_sandbox, session):
    await cluster.grant(
        "console-names", cluster.project(), principals=["user:alice@example.com", "user:bob@example.com"]
    )
    alice = await person(session, console_sandbox, "alice@example.com")
    for field in ("requester", "requesterGroups"):
        status, refused = await alice.request("console-names", **{field: "user:bob@example.com"})
        assert status == 400 and "files as you" in refused["error"], refused
    forger = SigningKey()  # not the key IAP publishes
    now = int(time.time())
    forged = forger.sign({"iss": "https://cloud.google.com/iap", "aud": console_sandbox.front.audience,
                          "email": "bob@example.com", "iat": now, "exp": now + 600})  # fmt: skip
    for assertion in (forged, None, "garbage"):
        status, answer = await alice.call("GET", "/api/me", **{HEADER: assertion})
        assert status == 401, answer
        status, answer = await alice.call(
            "POST", "/api/requests", {"grant": "console-names"}, **{HEADER: assertion}
        )
        assert status == 401, answer
    listed = await asyncio.to_thread(
        cluster.custom.list_namespaced_custom_object, GROUP, VERSION, "team-sre", "activationrequests"
    )
    assert not [i for i in listed["items"] if i["spec"]["grant"] == "console-names"]


async def test_through_the_iap_stand_in_a_client_sent_assertion_is_replaced(console_sandbox, session):
    front = console_sandbox.front
    async with aiohttp.ClientSession(cookies={COOKIE: "alice@example.com"}) as browser:
        async with browser.get(
            f"{front.url}/api/me", headers={HEADER: front.iap.assertion("bob@example.com")}
        ) as answer:
            assert (await answer.json())["email"] == "alice@example.com"
        async with browser.get(f"{front.url}/grants", allow_redirects=False) as answer:
            assert answer.status == 200 and answer.headers["Content-Security-Policy"] == CSP
    async with session.get(f"{front.url}/grants", allow_redirects=False) as answer:
        assert answer.status == 302 and answer.headers["Location"] == "/_iap/sign-in"


async def test_csrf_is_enforced_on_every_change(cluster, console_sandbox, session):
    await cluster.grant("console-csrf", cluster.project(), principals=["user:alice@example.com"])
    alice = await person(session, console_sandbox, "alice@example.com")
    bob = await person(session, console_sandbox, "bob@example.com")
    body = {"grant": "console-csrf", "justification": "INC-2: csrf"}
    for headers in (
        {"X-CSRF-Token": None},
        {"X-CSRF-Token": "garbage"},
        {"X-CSRF-Token": bob.token},  # bob's, not alice's
        {"Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Content-Type": "text/plain"},
    ):
        status, refused = await alice.call("POST", "/api/requests", body, **headers)
        assert status == 403 and "cross-site request forgery" in refused["error"], (headers, refused)
    listed = await asyncio.to_thread(
        cluster.custom.list_namespaced_custom_object, GROUP, VERSION, "team-sre", "activationrequests"
    )
    assert not [i for i in listed["items"] if i["spec"]["grant"] == "console-csrf"]
    status, _ = await alice.call("POST", "/api/requests", body)
    assert status == 201


async def test_a_justification_of_html_and_script_comes_back_as_data_and_the_page_never_parses_it(
    cluster, console_sandbox, session
):
    await cluster.grant("console-html", cluster.project(), principals=["user:alice@example.com"])
    alice = await person(session, console_sandbox, "alice@example.com")
    status, filed = await alice.request("console-html", justification=HOSTILE)
    assert status == 201, filed
    async with session.get(
        f"{alice.base}/api/requests/team-sre/{filed['created']['name']}", headers={HEADER: alice.assertion}
    ) as answer:
        assert answer.headers["Content-Type"].startswith("application/json")
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert (await answer.json())["justification"] == HOSTILE
    async with session.get(f"{alice.base}/requests/team-sre/x", headers={HEADER: alice.assertion}) as answer:
        page = await answer.text()
        assert answer.headers["Content-Security-Policy"] == CSP
        assert "frame-ancestors 'none'" in CSP and "unsafe-inline" not in CSP
    # The page: its script and style come from files; nothing inline, nothing that parses HTML.
    assert (
        not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
        and "<style" not in page
        and " style=" not in page
    )
    assert not re.search(r"\son[a-z]+=", page)
    script = (STATIC / "app.js").read_text()
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "DOMParser",
    ):
        assert sink not in script, sink
    assert "textContent" in script


async def test_alice_sees_only_her_grants_and_is_told_about_group_ones(cluster, console_sandbox, session):
    await cluster.grant("console-alice-direct", cluster.project(), principals=["user:alice@example.com"])
    await cluster.grant("console-sre-only", cluster.project(), principals=["group:sre@example.com"])
    await cluster.grant("console-bob-only", cluster.project(), principals=["user:bob@example.com"])
    await cluster.grant("console-domain", cluster.project(), principals=["domain:example.com"])
    await cluster.wait_grant_ready("console-domain")
    alice = await person(session, console_sandbox, "alice@example.com")

    async def seen():
        return {"console-alice-direct", "console-domain"} <= {
            g["name"] for g in (await alice.get("/api/grants"))["eligible"]
        }

    await until(seen, "alice's grants")
    grants = await alice.get("/api/grants")
    names = {g["name"] for g in grants["eligible"]}
    assert "console-bob-only" not in names and "console-sre-only" not in names
    # Grants that name groups are counted, never described: who may use them is not alice's to read.
    assert isinstance(grants["throughGroups"], int) and grants["throughGroups"] >= 1
    assert "console-sre-only" not in json.dumps(grants) and "sre@example.com" not in json.dumps(grants)


async def test_bob_approves_what_waits_for_him_and_carol_sees_nothing(cluster, console_sandbox, session):
    approval = {"approvers": ["user:bob@example.com"], "minApprovals": 1, "timeout": "1h"}
    await cluster.grant(
        "console-approved", cluster.project(), principals=["user:alice@example.com"], approval=approval
    )
    alice, bob, carol = [
        await person(session, console_sandbox, f"{who}@example.com") for who in ("alice", "bob", "carol")
    ]
    status, filed = await alice.request("console-approved", justification=HOSTILE)
    assert status == 201, filed
    name = filed["created"]["name"]
    await cluster.wait_phase(name, "AwaitingApproval")

    async def pending_for_bob():
        return [p for p in (await bob.get("/api/approvals"))["pending"] if p["name"] == name]

    await until(pending_for_bob, "bob's pending approval")
    [pending] = await pending_for_bob()
    assert (pending["requester"], pending["grant"], pending["roles"], pending["duration"]) == (
        "user:alice@example.com", "console-approved", ["roles/compute.admin", "roles/storage.admin"], "1h")  # fmt: skip
    assert pending["justification"] == HOSTILE and pending["step"] == "1/1"
    assert not [p for p in (await carol.get("/api/approvals"))["pending"] if p["name"] == name]
    assert not [p for p in (await alice.get("/api/approvals"))["pending"] if p["name"] == name]
    status, refused = await carol.call("GET", f"/api/requests/team-sre/{name}")
    assert status == 404  # not hers, and she decides nothing under its grant
    decision = {
        "decision": "Approve",
        "comment": "ok",
        "requestUID": pending["uid"],
        "requestDigest": pending["requestDigest"],
    }
    for who in (alice, carol):  # the requester herself, and someone who is no approver
        status, refused = await who.call("POST", f"/api/requests/team-sre/{name}/decisions", decision)
        assert status in (403, 404), refused
    status, filed = await bob.call("POST", f"/api/requests/team-sre/{name}/decisions", decision)
    assert status == 201, filed
    body = await cluster.wait_phase(name, "Active")
    assert body["status"]["approvals"][0]["approver"] == "user:bob@example.com"
    stored = await asyncio.to_thread(
        cluster.custom.get_namespaced_custom_object,
        GROUP,
        VERSION,
        "team-sre",
        "activationapprovals",
        filed["created"]["name"],
    )
    assert stored["spec"]["approver"] == "user:bob@example.com" and stored["spec"]["approverGroups"] == []


async def test_alice_cannot_approve_her_own_even_where_she_is_an_approver(cluster, console_sandbox, session):
    approval = {"approvers": ["domain:example.com"], "minApprovals": 1, "timeout": "1h"}
    await cluster.grant(
        "console-own", cluster.project(), principals=["user:alice@example.com"], approval=approval
    )
    alice = await person(session, console_sandbox, "alice@example.com")
    status, filed = await alice.request("console-own")
    name = filed["created"]["name"]
    body = await cluster.wait_phase(name, "AwaitingApproval")
    status, refused = await alice.call(
        "POST",
        f"/api/requests/team-sre/{name}/decisions",
        {"decision": "Approve", "requestUID": body["metadata"]["uid"]},
    )
    assert status == 403 and "cannot approve their own request" in refused["error"], refused


async def test_alice_revokes_her_access_and_bob_cannot(cluster, console_sandbox, session):
    project = cluster.project()
    await cluster.grant(
        "console-revoke", project, principals=["user:alice@example.com", "user:bob@example.com"]
    )
    alice = await person(session, console_sandbox, "alice@example.com")
    bob = await person(session, console_sandbox, "bob@example.com")
    status, filed = await alice.request("console-revoke", roles=["roles/compute.admin"])
    name = filed["created"]["name"]
    await cluster.wait_phase(name, "Active")
    status, refused = await bob.call("POST", f"/api/requests/team-sre/{name}/revoke")
    assert status == 403 and "only their own" in refused["error"]
    assert (await cluster.get(name))["status"]["phase"] == "Active" and cluster.bindings(project)
    status, revoked = await alice.call("POST", f"/api/requests/team-sre/{name}/revoke")
    assert status == 200, revoked
    body = await cluster.wait_phase(name, "Revoked")
    ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "RevokedByRequester"
    assert body["status"]["endedBy"] == f"user:alice@example.com via {CONSOLE_USER}"
    assert not cluster.bindings(project)


async def test_the_console_account_cannot_revoke_for_anyone_but_the_requester(
    cluster, console_sandbox, session
):
    """What the console's own credentials could try, and what people and a trusted submitter could."""
    await cluster.grant("console-hostile", cluster.project(), principals=["user:alice@example.com"])
    alice = await person(session, console_sandbox, "alice@example.com")
    _, filed = await alice.request("console-hostile")
    name = filed["created"]["name"]
    await cluster.wait_phase(name, "Active")
    behalf = {"annotations": {"jitaccess.dev/on-behalf-of": "user:alice@example.com"}}
    attempts = {
        "the console for bob": (CONSOLE_USER, {"metadata": {"annotations": {"jitaccess.dev/on-behalf-of": "user:bob@example.com"}}, "spec": {"revoke": True}}),
        "the console for nobody": (CONSOLE_USER, {"spec": {"revoke": True}}),
        "bob naming alice": ("bob@example.com", {"metadata": behalf, "spec": {"revoke": True}}),
        "a trusted submitter naming alice": ("admin", {"metadata": behalf, "spec": {"revoke": True}}),
    }  # fmt: skip
    for what, (user, patch) in attempts.items():
        with pytest.raises(client.ApiException) as caught:
            await patch_as(cluster, user, name, patch)
        assert caught.value.status in (403, 422), what
    with pytest.raises(client.ApiException):
        await cluster.delete(name, user=CONSOLE_USER)
    assert (await cluster.get(name))["status"]["phase"] == "Active"


async def test_alice_extends_her_access_through_the_console(cluster, console_sandbox, session):
    await cluster.grant(
        "console-extend", cluster.project(), principals=["user:alice@example.com"], maxDuration="2h"
    )
    alice = await person(session, console_sandbox, "alice@example.com")
    status, filed = await alice.request("console-extend", duration="30m")
    name = filed["created"]["name"]
    await cluster.wait_phase(name, "Active")
    status, more = await alice.call(
        "POST", f"/api/requests/team-sre/{name}/extend", {"duration": "30m", "justification": "INC-1: more"}
    )
    assert status == 201, more
    extension = await cluster.wait_phase(more["created"]["name"], "Active")
    assert extension["spec"]["extends"] == name and extension["spec"]["requester"] == "user:alice@example.com"
    await cluster.wait_phase(name, "Extended")


async def test_changes_reach_open_pages_as_server_sent_events(cluster, console_sandbox, session):
    alice = await person(session, console_sandbox, "alice@example.com")
    async with session.get(f"{alice.base}/api/stream", headers={HEADER: alice.assertion}) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert await stream.content.readuntil(b"\n\n") == b"retry: 2000\nevent: ready\ndata: {}\n\n"
        await cluster.grant("console-live", cluster.project(), principals=["user:alice@example.com"])
        async with asyncio.timeout(10):
            while not (await stream.content.readuntil(b"\n\n")).startswith(b"event: change"):
                pass


async def test_probes_need_no_identity_and_everything_else_does(console_sandbox, session):
    base = f"http://127.0.0.1:{console_sandbox.front.consoles[0].port}"
    for probe in ("/healthz", "/readyz"):
        async with session.get(base + probe) as answer:
            assert answer.status == 200
    for path in ("/", "/static/app.js", "/api/me", "/api/grants", "/api/stream"):
        async with session.get(base + path) as answer:
            assert answer.status == 401, path
            assert answer.headers["Content-Security-Policy"] == CSP


async def test_two_consoles_answer_alike_and_killing_one_loses_nothing(
    cluster, console_sandbox, session, tmp_path
):
    """A second replica as a process of its own (`jitaccess console`, the same flags and CSRF key):
    the same answers, each accepts the other's CSRF token, and a SIGKILL loses nothing."""
    await cluster.grant("console-replicas", cluster.project(), principals=["user:alice@example.com"])
    first = await person(session, console_sandbox, "alice@example.com")
    status, filed = await first.request("console-replicas")
    assert status == 201, filed
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "jitaccess.cli",
        *console_sandbox.front.console_args(),
        "--port",
        str(port),
    ]
    log = (tmp_path / "console.log").open("wb")

    async def started() -> subprocess.Popen:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

        async def ready():
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as answer:
                    return answer.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await until(ready, "the second console is ready", timeout_s=60)
        return process

    async def alike(second: Browser) -> None:
        paths = (
            "/api/grants",
            "/api/requests",
            "/api/approvals",
            f"/api/requests/team-sre/{filed['created']['name']}",
        )

        async def same():
            return all([await first.get(path) == await second.get(path) for path in paths])

        try:
            await until(same, "both replicas give the same answers")
        except TimeoutError:
            for path in paths:  # which answer differs, and how
                assert await first.get(path) == await second.get(path), path
            raise

    process = await started()
    try:
        second = Browser(session, console_sandbox, "alice@example.com", port=port)
        second.token = first.token  # issued by the other replica
        await alike(second)
        status, more = await second.request("console-replicas")
        assert status == 201, more
        await alike(second)
        process.kill()
        process.wait()
        names = {r["name"] for r in (await first.get("/api/requests"))["requests"]}
        assert {filed["created"]["name"], more["created"]["name"]} <= names
        process = await started()
        await alike(second)
    finally:
        process.kill()
        process.wait()
        log.close()


async def test_break_glass_through_the_console_and_its_review_by_bob(cluster, console_sandbox, session):
    await cluster.grant(
        "console-glass",
        cluster.project(),
        principals=["user:alice@example.com"],
        approval={"approvers": ["user:bob@example.com"], "timeout": "1h"},
        breakGlass={"allowed": True, "maxDuration": "1h", "reviewWithin": "24h"},
    )
    alice = await person(session, console_sandbox, "alice@example.com")
    bob = await person(session, console_sandbox, "bob@example.com")
    status, filed = await alice.request("console-glass", breakGlass=True, duration="30m")
    assert status == 201, filed
    name = filed["created"]["name"]
    body = await cluster.wait_phase(name, "Active")

    async def to_review():
        return [p for p in (await bob.get("/api/approvals"))["pending"] if p["name"] == name]

    await until(to_review, "bob's review")
    [waiting] = await to_review()
    assert waiting["kind"] == "review" and waiting["roles"] == ["roles/compute.admin", "roles/storage.admin"]
    assert (await bob.get(f"/api/requests/team-sre/{name}"))["may"]["review"]
    status, refused = await alice.call(
        "POST", f"/api/requests/team-sre/{name}/decisions", {"decision": "Review"}
    )
    assert status == 403, refused  # never the requester
    decision = {"decision": "Review", "comment": "seen", "requestUID": body["metadata"]["uid"]}
    status, filed = await bob.call("POST", f"/api/requests/team-sre/{name}/decisions", decision)
    assert status == 201, filed

    async def reviewed():
        conditions = ((await cluster.get(name)) or {}).get("status", {}).get("conditions", [])
        return any(c["type"] == "Reviewed" and c["status"] == "True" for c in conditions)

    await until(reviewed, "the request shows Reviewed")

    async def reviewed_gone():
        return not await to_review()

    await until(reviewed_gone, "nothing left for bob to review")


async def test_names_that_are_no_kubernetes_names_find_nothing(console_sandbox, session):
    alice = await person(session, console_sandbox, "alice@example.com")
    for path in ("/api/requests/Team_SRE/x", "/api/requests/team-sre/%2e%2e", "/api/requests/team-sre/a%2Fb"):
        status, answer = await alice.call("GET", path)
        assert status == 404, (path, answer)
        status, answer = await alice.call("POST", f"{path}/revoke")
        assert status in (403, 404), (path, answer)


async def test_a_later_steps_approver_sees_the_request_once_the_step_before_is_met(
    cluster, console_sandbox, session
):
    steps = [
        {"approvers": ["user:bob@example.com"], "timeout": "1h"},
        {"approvers": ["user:carol@example.com"], "timeout": "1h"},
    ]
    await cluster.grant(
        "console-two-steps",
        cluster.project(),
        principals=["user:alice@example.com"],
        approval={"steps": steps},
    )
    alice, bob, carol = [
        await person(session, console_sandbox, f"{who}@example.com") for who in ("alice", "bob", "carol")
    ]
    _, filed = await alice.request("console-two-steps")
    name = filed["created"]["name"]
    await cluster.wait_phase(name, "AwaitingApproval")

    def waiting_for(who: Browser):
        async def check():
            return [p for p in (await who.get("/api/approvals"))["pending"] if p["name"] == name]

        return check

    await until(waiting_for(bob), "step 1 waits for bob")
    assert not await waiting_for(carol)()
    [first] = await waiting_for(bob)()
    decision = {"decision": "Approve", "requestUID": first["uid"], "requestDigest": first["requestDigest"]}
    status, answer = await bob.call("POST", f"/api/requests/team-sre/{name}/decisions", decision)
    assert status == 201, answer
    await until(waiting_for(carol), "step 2 waits for carol")
    [second] = await waiting_for(carol)()
    assert second["step"] == "2/2" and not await waiting_for(bob)()
    # Times have whole seconds: an approval in the very second step 2 opened cannot be shown to come
    # after it (the operator asks to approve again), so carol decides in a later second, as people do.
    opened = int(time.time())

    async def next_second():
        return int(time.time()) > opened

    await until(next_second, "a new second")
    decision = {"decision": "Approve", "requestUID": second["uid"], "requestDigest": second["requestDigest"]}
    status, answer = await carol.call("POST", f"/api/requests/team-sre/{name}/decisions", decision)
    assert status == 201, answer
    await cluster.wait_phase(name, "Active")


async def test_a_console_limited_to_namespaces_shows_only_theirs(cluster, console_sandbox, session):
    await cluster.grant("console-scoped", cluster.project(), principals=["user:alice@example.com"])
    alice = await person(session, console_sandbox, "alice@example.com")
    _, filed = await alice.request("console-scoped")
    front = console_sandbox.front
    elsewhere = await front.add_console(namespaces=("default",))
    try:
        scoped = await person(session, console_sandbox, "alice@example.com", port=elsewhere.port)
        assert filed["created"]["name"] not in {
            r["name"] for r in (await scoped.get("/api/requests"))["requests"]
        }
        assert "console-scoped" in {g["name"] for g in (await scoped.get("/api/grants"))["eligible"]}
    finally:
        await front.stop_console(elsewhere)
