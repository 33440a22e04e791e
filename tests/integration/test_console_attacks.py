"""An insider attacks the web console: the console behind the sandbox's IAP stand-in, the operator's
admission and lifecycle, the sandbox API and the IAM emulator, all on 127.0.0.1, one sandbox for the
module. Assertions are signed with the stand-in's key (what IAP would send) or forged; people use
their own kubectl contexts where the attack is theirs. Each test asserts the SAFE behaviour, down to
the refusal's words: it fails while the hole is there."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt
from kubernetes import client
from multidict import CIMultiDict

from jitaccess.console import server
from jitaccess.console.backend_services import audience_of
from jitaccess.console.iap import HEADER, ISSUER, jwk_to_pem
from jitaccess.console.server import SECURITY_HEADERS, STATIC
from jitaccess.controller.operator import kubernetes_configuration
from jitaccess.policy.admission import CHAT_IDENTITY
from jitaccess.policy.ending_access import ON_BEHALF_OF
from jitaccess_sandbox.console_front import PROJECT, PROJECT_NUMBER
from jitaccess_sandbox.iap_standin import SigningKey
from jitaccess_sandbox.runner import CONSOLE_USER, Sandbox
from tests.integration.conftest import GROUP, VERSION, Cluster, sandbox_with_console
from tests.integration.test_console import HOSTILE, Browser, person, until
from tests.integration.test_trust import patch_as

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"
# A workload of the team's own namespace, and one that shares the console's account name elsewhere:
# neither is the console the operator trusts (--console-submitter names one username exactly).
GITOPS = "system:serviceaccount:team-sre:gitops"
LOOKALIKE = "system:serviceaccount:team-sre:jitaccess-console"
EXTRA = {GITOPS: ["system:serviceaccounts"], LOOKALIKE: ["system:serviceaccounts"]}
SECRET = "INC-9000: the merger data room, do not tell anyone"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def console_sandbox(tmp_path_factory: pytest.TempPathFactory):
    state = Path(tmp_path_factory.mktemp("console-attacks"))
    async with sandbox_with_console(state, extra_users=EXTRA) as running:
        running.write_kubeconfig(state / "workloads.kubeconfig", list(EXTRA))
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def cluster(console_sandbox):
    return Cluster(console_sandbox)


@pytest_asyncio.fixture(loop_scope="module")
async def session():
    async with aiohttp.ClientSession() as opened:
        yield opened


def console_url(console_sandbox: Sandbox) -> str:
    return f"http://127.0.0.1:{console_sandbox.front.consoles[0].port}"


async def raw(
    session, method: str, url: str, headers, data: bytes | str | None = None
) -> tuple[int, str, dict]:
    """One call with exactly these headers (a list of pairs may repeat a name)."""
    async with session.request(method, url, headers=CIMultiDict(headers), data=data) as answer:
        return answer.status, await answer.text(), dict(answer.headers)


async def on_the_wire(port: int, method: str, path: str, headers: list[tuple[str, str]]) -> tuple[int, str]:
    """One HTTP/1.1 request with exactly these header lines (repeated names kept, as sent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode(errors="replace")


def error_of(text: str) -> str:
    try:
        return str(json.loads(text).get("error"))
    except ValueError:
        return text


async def stored_requests(cluster: Cluster, grant: str, namespace: str = "team-sre") -> list[dict]:
    listed = await asyncio.to_thread(
        cluster.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, "activationrequests"
    )
    return [item for item in listed["items"] if item["spec"].get("grant") == grant]


async def may_request(cluster: Cluster, *users: str) -> None:
    """ClusterRole jitaccess-requester in team-sre for `users` (service accounts too)."""
    for user in users:
        body = {
            "metadata": {"name": f"atk-requester-{user.rsplit(':', 1)[-1]}", "namespace": "team-sre"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "jitaccess-requester",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }
        try:
            await asyncio.to_thread(cluster.rbac.create_namespaced_role_binding, "team-sre", body)
        except client.ApiException as error:
            if error.status != 409:
                raise


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(header: dict, claims: dict, signature: bytes = b"") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)])


def claims_for(console_sandbox: Sandbox, email: str = BOB) -> dict:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": console_sandbox.front.audience,
        "email": email,
        "iat": now,
        "exp": now + 600,
    }


# -- Identity-Aware Proxy's assertion --------------------------------------------------------------


async def test_assertions_iap_did_not_sign_name_nobody(console_sandbox, session):
    """alg none, HS256 keyed with IAP's public key, RS256 under IAP's key id, no kid, a kid IAP does
    not publish, and a key of the attacker's own carried in the header (jwk, jku, x5u)."""
    iap = console_sandbox.front.iap
    claims = claims_for(console_sandbox)
    public_pem = jwk_to_pem(iap.key.jwk()).encode()
    hs_header = {"alg": "HS256", "typ": "JWT", "kid": iap.key.kid}
    signing_input = token(hs_header, claims).rsplit(".", 1)[0].encode()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    mine = SigningKey()  # the attacker's own ES256 key
    evil_jwk = mine.jwk()

    def signed_by_mine(kid: str, **header) -> str:
        return jwt.encode(mine.signer, claims, header=header, key_id=kid).decode()

    cases = {
        "alg none": (token({"alg": "none", "kid": iap.key.kid}, claims), "not signed with ES256"),
        "alg None": (token({"alg": "None", "kid": iap.key.kid}, claims), "not signed with ES256"),
        "HS256 keyed with the public key": (
            token(hs_header, claims, hmac.new(public_pem, signing_input, hashlib.sha256).digest()),
            "not signed with ES256",
        ),
        "RS256 under IAP's kid": (
            jwt.encode(crypt.RSASigner.from_string(rsa_pem, key_id=iap.key.kid), claims).decode(),
            "not signed with ES256",
        ),
        "ES256, no kid": (jwt.encode(crypt.ES256Signer(mine.private), claims).decode(), "does not publish"),
        "a kid IAP does not publish": (signed_by_mine(mine.kid), "does not publish"),
        "IAP's kid, the attacker's key": (signed_by_mine(iap.key.kid), "signature does not verify"),
        "the key in the header (jwk)": (signed_by_mine(mine.kid, jwk=evil_jwk), "does not publish"),
        "IAP's kid, the key in the header": (
            signed_by_mine(iap.key.kid, jwk=evil_jwk),
            "signature does not verify",
        ),
        "jku to the attacker's set": (
            signed_by_mine(mine.kid, jku="https://evil.example/jwks.json"),
            "does not publish",
        ),
        "x5u to the attacker's certificate": (
            signed_by_mine(mine.kid, x5u="https://evil.example/cert.pem"),
            "does not publish",
        ),
        "kid not a string": (token({"alg": "ES256", "kid": ["k"]}, claims), "does not publish"),
        "four parts": (iap.assertion(BOB) + ".", "not a JWT"),
        "no signature": (iap.assertion(BOB).rsplit(".", 1)[0] + ".", "signature does not verify"),
    }
    base = console_url(console_sandbox)
    for what, (assertion, reason) in cases.items():
        status, text, _ = await raw(session, "GET", f"{base}/api/me", [(HEADER, assertion)])
        assert status == 401 and reason in error_of(text), (what, status, text)


async def test_iap_signed_assertions_with_the_wrong_claims_name_nobody(console_sandbox, session):
    iap = console_sandbox.front.iap
    now = int(time.time())
    default_backend = next(
        item
        for item in console_sandbox.emulator.compute.items[PROJECT]
        if "default-http-backend" in item["name"]
    )
    other_backend = audience_of(PROJECT_NUMBER, default_backend["id"])
    cases = {
        "expired": ({"iat": now - 1200, "exp": now - 600}, "expired"),
        "issued in the future": ({"iat": now + 3600, "exp": now + 4200}, "not valid yet"),
        "not before a time to come": ({"nbf": now + 3600}, "not valid yet"),
        "no exp": ({"exp": None}, "malformed"),
        "no iat": ({"iat": None}, "malformed"),
        "audience a list with ours in it": ({"aud": [console_sandbox.front.audience, "other"]}, "another audience"),
        "another backend service of the project": ({"aud": other_backend}, "another audience"),
        "the project's App Engine audience": ({"aud": f"/projects/{PROJECT_NUMBER}/apps/{PROJECT}"}, "another audience"),
        "no audience": ({"aud": None}, "audience"),
        "issuer with a trailing slash": ({"iss": ISSUER + "/"}, "wrong issuer"),
        "issuer over http": ({"iss": "http://cloud.google.com/iap"}, "wrong issuer"),
        "Google's sign-in issuer": ({"iss": "https://accounts.google.com"}, "wrong issuer"),
        "no issuer": ({"iss": None}, "wrong issuer"),
        "email with a user: prefix": ({"email": f"user:{BOB}"}, "names no e-mail address"),
        "two addresses": ({"email": f"{BOB},{ALICE}"}, "names no e-mail address"),
        "a newline": ({"email": f"{BOB}\n"}, "names no e-mail address"),
        "white space": ({"email": f" {BOB}"}, "names no e-mail address"),
        "a Cyrillic a": ({"email": "\u0430lice@example.com"}, "names no e-mail address"),
        "a Kelvin sign (lowercases to k)": ({"email": "\u212aate@example.com"}, "names no e-mail address"),
        "a trailing dot": ({"email": f"{BOB}."}, "names no e-mail address"),
        "a list": ({"email": [BOB]}, "names no e-mail address"),
        "an external identity (Identity Platform)": (
            {"email": f"securetoken.google.com/{PROJECT}/tenant-1:{BOB}"},
            "names no e-mail address",
        ),
        "sub but no email": ({"email": None, "sub": f"accounts.google.com:{BOB}"}, "names no e-mail address"),
    }  # fmt: skip
    base = console_url(console_sandbox)
    for what, (overrides, reason) in cases.items():
        claims = {**claims_for(console_sandbox, ALICE), "sub": f"accounts.google.com:{ALICE}", **overrides}
        signed = iap.key.sign({k: v for k, v in claims.items() if v is not None})
        status, text, _ = await raw(session, "GET", f"{base}/api/me", [(HEADER, signed)])
        assert status == 401 and reason in error_of(text), (what, status, text)


async def test_two_assertions_on_one_request_are_refused_whichever_comes_first(console_sandbox, session):
    """IAP sets the header; a second one (a replayed or leaked assertion of someone else's, sent
    along by the client) must not decide who is asking."""
    iap = console_sandbox.front.iap
    base = console_url(console_sandbox)
    port = console_sandbox.front.consoles[0].port
    for headers in (
        [(HEADER, iap.assertion(BOB)), (HEADER, iap.assertion(ALICE))],
        [("X-Goog-IAP-JWT-Assertion", iap.assertion(BOB)), (HEADER, iap.assertion(ALICE))],
        [(HEADER, iap.assertion(ALICE)), (HEADER.upper(), iap.assertion(ALICE))],
        [(HEADER, iap.assertion(ALICE)), (HEADER, "")],
    ):
        status, text = await on_the_wire(port, "GET", "/api/me", headers)
        assert status == 401 and "more than one" in error_of(text), text
    status, text = await on_the_wire(port, "GET", "/api/me", [(HEADER.upper(), iap.assertion(ALICE))])
    assert status == 200 and json.loads(text)["member"] == f"user:{ALICE}"
    status, text, _ = await raw(session, "GET", f"{base}/api/me", [(HEADER, iap.assertion(ALICE))])
    assert status == 200


async def test_an_address_in_capitals_is_the_same_person_and_still_cannot_approve_her_own(
    cluster, console_sandbox, session
):
    approval = {"approvers": ["domain:example.com"], "timeout": "1h"}
    await cluster.grant("atk-capitals", cluster.project(), principals=[f"user:{ALICE}"], approval=approval)
    shouting = Browser(session, console_sandbox, ALICE)
    shouting.assertion = console_sandbox.front.iap.assertion("ALICE@EXAMPLE.COM")
    await shouting.signed_in()
    assert (await shouting.get("/api/me"))["member"] == f"user:{ALICE}"
    status, filed = await shouting.request("atk-capitals")
    assert status == 201, filed
    name = filed["created"]["name"]
    body = await cluster.wait_phase(name, "AwaitingApproval")
    assert body["spec"]["requester"] == f"user:{ALICE}"
    mixed = await person(session, console_sandbox, "Alice@Example.Com")
    status, refused = await mixed.call(
        "POST", f"/api/requests/team-sre/{name}/decisions", {"decision": "Approve"}
    )
    assert status == 403 and "cannot approve their own request" in refused["error"], refused


async def test_a_stream_ends_when_the_assertion_that_opened_it_expires(console_sandbox, session):
    """Someone whose IAP access is taken away stops hearing of changes: IAP signs no new assertion."""
    alice = await person(session, console_sandbox, ALICE)
    now = int(time.time())
    short = console_sandbox.front.iap.assertion(ALICE, iat=now, exp=now + 2)
    async with session.get(f"{alice.base}/api/stream", headers={HEADER: short}) as stream:
        assert stream.status == 200
        async with asyncio.timeout(10):
            await stream.content.read()  # to the end: the console closed it
    assert time.time() - now < 10


# -- naming someone else in what the console files -------------------------------------------------


async def test_no_body_names_anyone_or_reaches_past_the_fields_the_console_takes(
    cluster, console_sandbox, session
):
    await cluster.grant("atk-bodies", cluster.project(), principals=[f"user:{ALICE}", f"user:{BOB}"])
    alice = await person(session, console_sandbox, ALICE)
    identity = ("requester", "requesterGroups", "approver", "approverGroups")
    for field in identity:
        status, refused = await alice.request("atk-bodies", **{field: f"user:{BOB}"})
        assert status == 400 and refused["error"].startswith(f"{field}: the console files as you"), refused
    beyond = {
        "spec": {"requester": f"user:{BOB}"},
        "metadata": {"annotations": {ON_BEHALF_OF: f"user:{BOB}", CHAT_IDENTITY: "x"}},
        "namespace": "default",
        "name": "bobs-request",
        "extends": "someone-elses",
        "apiVersion": "jitaccess.dev/v1alpha1",
        "kind": "ActivationApproval",
        "onBehalfOf": f"user:{BOB}",
    }
    for field, value in beyond.items():
        status, refused = await alice.request("atk-bodies", **{field: value})
        assert status == 400 and refused["error"].startswith(f"{field}: not a field the console takes"), (
            refused
        )
    for body in ([], "atk-bodies", 7, [{"grant": "atk-bodies"}]):
        status, refused = await alice.call("POST", "/api/requests", body)
        assert status == 400 and "JSON object" in refused["error"], (body, refused)
    for field, value in (
        ("roles", "roles/owner"),
        ("roles", [{"role": "x"}]),
        ("breakGlass", "yes"),
        ("justification", ["a"]),
    ):
        status, refused = await alice.request("atk-bodies", **{field: value})
        assert status == 400 and refused["error"].startswith(f"{field}: must be"), refused
    for grant in ("../atk-bodies", "atk-bodies/../../secrets", "ATK-BODIES"):  # no such grant, however spelt
        status, refused = await alice.request(grant)
        assert status in (403, 422) and "spec.grant: must name an EligibleGrant" in refused["error"], refused
    assert not await stored_requests(cluster, "atk-bodies")
    status, filed = await alice.request("atk-bodies")
    assert status == 201
    name = filed["created"]["name"]
    await cluster.wait_phase(name, "Active")
    for body in (
        {"approver": f"user:{BOB}", "decision": "Approve"},
        {"approverGroups": ["x"], "decision": "Deny"},
    ):
        status, refused = await alice.call("POST", f"/api/requests/team-sre/{name}/decisions", body)
        assert status == 400 and "the console files as you" in refused["error"], refused
    for body in (
        {"requester": f"user:{BOB}"},
        {"grant": "atk-other"},
        {"roles": ["roles/owner"]},
        {"extends": "x"},
    ):
        status, refused = await alice.call("POST", f"/api/requests/team-sre/{name}/extend", body)
        assert status == 400, refused
    stored = await stored_requests(cluster, "atk-bodies")
    assert [r["spec"]["requester"] for r in stored] == [f"user:{ALICE}"]
    assert all(r["metadata"]["namespace"] == "team-sre" for r in stored)


async def test_urls_reach_only_kubernetes_names_and_never_say_whether_someone_elses_exists(
    cluster, console_sandbox, session
):
    await cluster.grant("atk-paths", cluster.project(), principals=[f"user:{ALICE}"])
    alice = await person(session, console_sandbox, ALICE)
    carol = await person(session, console_sandbox, CAROL)
    _, filed = await alice.request("atk-paths", justification=SECRET)
    name = filed["created"]["name"]
    await cluster.wait_phase(name, "Active")
    # Alice's own request through paths that are not its name: nothing, for her as for anyone.
    for path in (
        f"/api/requests/team-sre/{name}%2F..%2F{name}",
        f"/api/requests/team-sre/..%2Fteam-sre%2F{name}",
        f"/api/requests/team-sre/{name.upper()}",
        f"/api/requests/TEAM-SRE/{name}",
        f"/api/requests/team-sre/{name}%00",
        f"/api/requests/team-sre/{name}%20",
        f"/api/requests/team-sre/{'a' * 300}",
        f"/api/requests/kube-system/{name}",
        f"/api/requests/default/{name}",
    ):
        status, answer = await alice.call("GET", path)
        assert status == 404 and answer.get("error", "").startswith("no such request"), (path, answer)
    for path in ("/api/requests/team-sre/..%2F..%2Fapi%2Fv1%2Fsecrets", "/api/requests/team-sre/%2e%2e"):
        for action in ("revoke", "extend", "decisions"):
            status, answer = await alice.call("POST", f"{path}/{action}", {})
            assert status in (403, 404), (path, action, answer)  # ours, or aiohttp's: no route
    # Someone else's request and one that does not exist answer alike: no oracle.
    absent = await carol.call("GET", "/api/requests/team-sre/no-such-request-anywhere")
    hidden = await carol.call("GET", f"/api/requests/team-sre/{name}")
    assert absent == hidden == (404, {"error": "no such request, or not one of yours to see"})
    for action, expected in (
        ("revoke", "through the console a person revokes only their own access"),
        ("extend", "only the requester extends their access"),
        ("decisions", "no such request, or not one you decide on"),
    ):
        body = {"decision": "Deny"} if action == "decisions" else {}
        absent = await carol.call("POST", f"/api/requests/team-sre/no-such-request-anywhere/{action}", body)
        hidden = await carol.call("POST", f"/api/requests/team-sre/{name}/{action}", body)
        assert absent[1]["error"] == hidden[1]["error"] == expected, (action, absent, hidden)
    assert (await cluster.get(name))["status"]["phase"] == "Active"


async def test_an_approval_elsewhere_does_not_open_every_request_to_its_approver(
    cluster, console_sandbox, session
):
    """Carol decides on one request of a grant she approves; that must not let her read the terms,
    justification, decisions and Events of requests under grants she has nothing to do with."""
    await cluster.grant(
        "atk-carol-approves",
        cluster.project(),
        principals=[f"user:{BOB}"],
        approval={"approvers": [f"user:{CAROL}"], "timeout": "1h"},
    )
    await cluster.grant("atk-alice-secret", cluster.project(), principals=[f"user:{ALICE}"])
    alice, bob, carol = [await person(session, console_sandbox, who) for who in (ALICE, BOB, CAROL)]
    _, secret = await alice.request("atk-alice-secret", justification=SECRET)
    _, asked = await bob.request("atk-carol-approves")
    await cluster.wait_phase(asked["created"]["name"], "AwaitingApproval")
    status, decided = await carol.call(
        "POST",
        f"/api/requests/team-sre/{asked['created']['name']}/decisions",
        {"decision": "Deny", "comment": "no"},
    )
    assert status == 201, decided

    async def carol_knows_her_decision():
        return (await carol.call("GET", f"/api/requests/team-sre/{asked['created']['name']}"))[0] == 200

    await until(carol_knows_her_decision, "carol sees the request she decided on")
    status, answer = await carol.call("GET", f"/api/requests/team-sre/{secret['created']['name']}")
    assert status == 404 and SECRET not in json.dumps(answer), answer


async def test_an_approval_before_its_step_opens_does_not_count(cluster, console_sandbox, session):
    steps = [
        {"approvers": [f"user:{BOB}"], "timeout": "1h"},
        {"approvers": [f"user:{CAROL}"], "timeout": "1h"},
    ]
    await cluster.grant(
        "atk-early", cluster.project(), principals=[f"user:{ALICE}"], approval={"steps": steps}
    )
    alice, bob, carol = [await person(session, console_sandbox, who) for who in (ALICE, BOB, CAROL)]
    _, filed = await alice.request("atk-early")
    name = filed["created"]["name"]
    await cluster.wait_phase(name, "AwaitingApproval")
    detail = await carol.get(f"/api/requests/team-sre/{name}")
    assert not detail["may"]["approve"] and "waits at step 1 of 2" in detail["may"]["why"]
    status, early = await carol.call(
        "POST", f"/api/requests/team-sre/{name}/decisions", {"decision": "Approve"}
    )
    assert status == 201, early  # filed, as with kubectl; the tally decides whether it counts
    status, approved = await bob.call(
        "POST", f"/api/requests/team-sre/{name}/decisions", {"decision": "Approve"}
    )
    assert status == 201, approved

    async def carol_asked_again():
        pending = (await carol.get("/api/approvals"))["pending"]
        return any(p["name"] == name and p["step"] == "2/2" for p in pending)

    await until(carol_asked_again, "step 2 waits for carol although she approved early")
    body = await cluster.get(name)
    assert body["status"]["phase"] == "AwaitingApproval" and not cluster.bindings(
        body["spec"].get("resource", "")
    )


async def test_an_approval_is_for_the_object_the_approver_was_shown(cluster, console_sandbox, session):
    """Alice swaps her request for another of the same name between bob's look and his click."""
    approval = {"approvers": [f"user:{BOB}"], "timeout": "1h"}
    await cluster.grant("atk-swap", cluster.project(), principals=[f"user:{ALICE}"], approval=approval)
    bob = await person(session, console_sandbox, BOB)
    await cluster.request_as(ALICE, "atk-swap-1", "atk-swap", roles=["roles/compute.admin"], duration="10m")
    await cluster.wait_phase("atk-swap-1", "AwaitingApproval")

    async def bob_sees_it():
        return any(p["name"] == "atk-swap-1" for p in (await bob.get("/api/approvals"))["pending"])

    await until(bob_sees_it, "bob's pending approval")
    shown = await bob.get("/api/requests/team-sre/atk-swap-1")
    await cluster.delete("atk-swap-1", user=ALICE)
    await cluster.wait_gone("atk-swap-1")
    await cluster.request_as(ALICE, "atk-swap-1", "atk-swap", duration="2h")  # every role, longer
    await cluster.wait_phase("atk-swap-1", "AwaitingApproval")
    status, refused = await bob.call(
        "POST",
        "/api/requests/team-sre/atk-swap-1/decisions",
        {"decision": "Approve", "requestUID": shown["uid"], "requestDigest": shown["may"]["requestDigest"]},
    )
    assert status == 403 and "is now another object" in refused["error"], refused
    assert (await cluster.get("atk-swap-1"))["status"]["phase"] == "AwaitingApproval"


async def test_one_approver_counts_once_however_often_they_approve(cluster, console_sandbox, session):
    approval = {"approvers": [f"user:{BOB}", f"user:{CAROL}"], "minApprovals": 2, "timeout": "1h"}
    await cluster.grant("atk-twice", cluster.project(), principals=[f"user:{ALICE}"], approval=approval)
    alice = await person(session, console_sandbox, ALICE)
    bob = await person(session, console_sandbox, BOB)
    bob_again = await person(session, console_sandbox, "BOB@example.com")
    _, filed = await alice.request("atk-twice")
    name = filed["created"]["name"]
    await cluster.wait_phase(name, "AwaitingApproval")
    for who in (bob, bob_again, bob):
        status, answer = await who.call(
            "POST", f"/api/requests/team-sre/{name}/decisions", {"decision": "Approve"}
        )
        assert status == 201, answer

    async def told():
        detail = await bob.get(f"/api/requests/team-sre/{name}")
        return detail["may"]["why"] == "has your approval already; one person counts once"

    await until(told, "the console tells bob his approval is in")
    await asyncio.sleep(0.5)  # some operator ticks
    assert (await cluster.get(name))["status"]["phase"] == "AwaitingApproval"


async def test_nobody_revokes_or_extends_someone_elses_access_through_the_console(
    cluster, console_sandbox, session
):
    project = cluster.project()
    await cluster.grant("atk-others", project, principals=[f"user:{ALICE}", f"user:{BOB}"])
    alice = await person(session, console_sandbox, ALICE)
    bob = await person(session, console_sandbox, BOB)
    _, filed = await alice.request("atk-others", duration="30m")
    name = filed["created"]["name"]
    await cluster.wait_phase(name, "Active")
    status, refused = await bob.call("POST", f"/api/requests/team-sre/{name}/extend", {"duration": "1h"})
    assert (status, refused["error"]) == (403, "only the requester extends their access")
    status, refused = await bob.call("POST", f"/api/requests/team-sre/{name}/revoke")
    assert (status, refused["error"]) == (403, "through the console a person revokes only their own access")
    for decision in ("Revoke", "Review"):  # a break-glass reviewer's words, on a request that is none
        status, refused = await bob.call(
            "POST", f"/api/requests/team-sre/{name}/decisions", {"decision": decision}
        )
        assert status == 404, refused  # bob decides nothing under this grant: not his to see
    # Deleting instead: the console has no such call, with or without the CSRF token.
    for method in ("DELETE", "PUT", "PATCH"):
        status, refused = await bob.call(method, f"/api/requests/team-sre/{name}")
        assert status in (403, 405), (method, refused)
        status, refused = await alice.call(
            method,
            f"/api/requests/team-sre/{name}",
            **{"Content-Type": "application/json", "X-CSRF-Token": alice.token},
        )
        assert status == 405, (method, refused)
    assert (await cluster.get(name))["status"]["phase"] == "Active"
    assert {tuple(b["members"]) for b in cluster.bindings(project)} == {(f"user:{ALICE}",)}


# -- the console's account, and accounts that are not it ------------------------------------------


async def test_on_behalf_of_is_the_consoles_word_alone(cluster, console_sandbox, session):
    """Alice with kubectl, a trusted GitOps submitter, another service account and one named like
    the console cannot use the console's annotation; the console's own account cannot use it but for
    a revocation by the requester, nor delete, nor change it afterwards."""
    await cluster.grant("atk-behalf", cluster.project(), principals=[f"user:{ALICE}"])
    alice = await person(session, console_sandbox, ALICE)
    _, filed = await alice.request("atk-behalf")
    name = filed["created"]["name"]
    await cluster.wait_phase(name, "Active")
    await may_request(cluster, GITOPS, LOOKALIKE)
    workloads = console_sandbox.state_dir / "workloads.kubeconfig"

    def as_workload(user: str) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(client.ApiClient(kubernetes_configuration(workloads, user)))

    def revoke_for(member: str) -> dict:
        return {"metadata": {"annotations": {ON_BEHALF_OF: member}}, "spec": {"revoke": True}}

    reserved = f"metadata.annotations[{ON_BEHALF_OF}]: only the jitaccess operator"
    for user in (ALICE, "admin"):
        with pytest.raises(client.ApiException) as caught:
            await patch_as(cluster, user, name, revoke_for(f"user:{ALICE}"))
        assert caught.value.status in (403, 422) and reserved in caught.value.body, (user, caught.value.body)
    for user in (GITOPS, LOOKALIKE):
        with pytest.raises(client.ApiException) as caught:
            await asyncio.to_thread(
                as_workload(user).patch_namespaced_custom_object,
                GROUP, VERSION, "team-sre", "activationrequests", name, revoke_for(f"user:{ALICE}"),
            )  # fmt: skip
        assert reserved in caught.value.body, (user, caught.value.body)
    with pytest.raises(client.ApiException) as caught:
        await patch_as(
            cluster, CONSOLE_USER, name, {"metadata": {"annotations": {ON_BEHALF_OF: f"user:{ALICE}"}}}
        )
    assert reserved in caught.value.body  # the annotation without a revocation: nothing to name anyone for
    with pytest.raises(client.ApiException) as caught:
        await patch_as(cluster, CONSOLE_USER, name, revoke_for("group:sre@example.com"))
    assert "it revokes only for the person it names there (user:EMAIL)" in caught.value.body
    with pytest.raises(client.ApiException) as caught:
        await cluster.delete(name, user=CONSOLE_USER)
    assert caught.value.status == 403
    # A request filed by kubectl may not carry the console's annotation either.
    with pytest.raises(client.ApiException) as caught:
        await asyncio.to_thread(
            cluster.as_user(ALICE).create_namespaced_custom_object, GROUP, VERSION, "team-sre", "activationrequests",
            {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ActivationRequest",
             "metadata": {"name": "atk-behalf-born", "annotations": {ON_BEHALF_OF: f"user:{ALICE}"}},
             "spec": {"grant": "atk-behalf", "justification": "INC-1"}},
        )  # fmt: skip
    assert f"metadata.annotations[{ON_BEHALF_OF}]: is set by the jitaccess operator" in caught.value.body
    assert (await cluster.get(name))["status"]["phase"] == "Active"
    # Once revoked by the requester through the console, the record names both, and stays.
    status, _ = await alice.call("POST", f"/api/requests/team-sre/{name}/revoke")
    assert status == 200
    body = await cluster.wait_phase(name, "Revoked")
    assert body["status"]["endedBy"] == f"user:{ALICE} via {CONSOLE_USER}"
    with pytest.raises(client.ApiException) as caught:
        await patch_as(
            cluster, CONSOLE_USER, name, {"metadata": {"annotations": {ON_BEHALF_OF: f"user:{BOB}"}}}
        )
    assert reserved in caught.value.body


async def test_only_the_consoles_own_account_may_name_someone(cluster, console_sandbox):
    """Files naming bob, as the team's GitOps workload (no trusted submitter) and as an account
    named like the console in another namespace: each is judged as itself."""
    await cluster.grant("atk-lookalike", cluster.project(), principals=[f"user:{BOB}"])
    await may_request(cluster, GITOPS, LOOKALIKE)
    workloads = console_sandbox.state_dir / "workloads.kubeconfig"
    for user in (GITOPS, LOOKALIKE):
        api = client.CustomObjectsApi(client.ApiClient(kubernetes_configuration(workloads, user)))
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ActivationRequest",
            "metadata": {"name": f"atk-lookalike-{user.rsplit(':', 1)[1]}"},
            "spec": {"grant": "atk-lookalike", "justification": "INC-1", "requester": f"user:{BOB}"},
        }
        with pytest.raises(client.ApiException) as caught:
            await asyncio.to_thread(
                api.create_namespaced_custom_object, GROUP, VERSION, "team-sre", "activationrequests", body
            )
        assert f"{user} is a Kubernetes service account" in caught.value.body, caught.value.body
    approval = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ActivationApproval",
        "metadata": {"name": "atk-chat-forged", "annotations": {CHAT_IDENTITY: "UBOB"}},
        "spec": {"request": "anything", "decision": "Approve", "approver": f"user:{BOB}"},
    }
    with pytest.raises(client.ApiException) as caught:
        await asyncio.to_thread(
            cluster.as_user(CONSOLE_USER).create_namespaced_custom_object,
            GROUP, VERSION, "team-sre", "activationapprovals", approval,
        )  # fmt: skip
    assert f"metadata.annotations[{CHAT_IDENTITY}]: is set by the jitaccess operator" in caught.value.body
    for spec, why in (
        (
            {"approver": f"user:{BOB}", "approverGroups": ["sre-leads@example.com"]},
            "proves no group membership",
        ),
        ({"approver": "group:sre-leads@example.com"}, "must be the user: member"),
        ({}, "must be the user: member"),
    ):
        forged = {**approval, "metadata": {"name": "atk-console-forged"}}
        forged["spec"] = {"request": "anything", "decision": "Approve", **spec}
        with pytest.raises(client.ApiException) as caught:
            await asyncio.to_thread(
                cluster.as_user(CONSOLE_USER).create_namespaced_custom_object,
                GROUP, VERSION, "team-sre", "activationapprovals", forged,
            )  # fmt: skip
        assert why in caught.value.body, (spec, caught.value.body)


# -- groups and domains ----------------------------------------------------------------------------


async def test_a_grant_or_step_that_names_only_groups_is_not_usable_through_the_console(
    cluster, console_sandbox, session
):
    """Alice is in sre@ (her kubectl login says so) and bob in sre-leads@; IAP says neither."""
    approval = {"approvers": ["group:sre-leads@example.com"], "timeout": "1h"}
    await cluster.grant("atk-group-only", cluster.project(), principals=["group:sre@example.com"])
    await cluster.grant("atk-group-step", cluster.project(), principals=[f"user:{ALICE}"], approval=approval)
    alice = await person(session, console_sandbox, ALICE)
    bob = await person(session, console_sandbox, BOB)
    status, refused = await alice.request("atk-group-only")
    assert status == 403 and f"user:{ALICE} is not eligible for grant atk-group-only" in refused["error"]
    assert not await stored_requests(cluster, "atk-group-only")
    grants = await alice.get("/api/grants")
    assert "atk-group-only" not in {g["name"] for g in grants["eligible"]}
    assert grants["throughGroups"] >= 1 and "atk-group-only" not in str(grants)
    # With kubectl her groups count: the membership is real, the console just cannot prove it.
    await cluster.request_as(ALICE, "atk-group-only-kubectl", "atk-group-only")
    await cluster.wait_phase("atk-group-only-kubectl", "Active")
    _, filed = await alice.request("atk-group-step")
    name = filed["created"]["name"]
    await cluster.wait_phase(name, "AwaitingApproval")
    assert name not in {p["name"] for p in (await bob.get("/api/approvals"))["pending"]}
    status, refused = await bob.call(
        "POST", f"/api/requests/team-sre/{name}/decisions", {"decision": "Approve"}
    )
    assert status == 404, refused  # a group's approver is nobody the console can show it to


async def test_a_domain_principal_covers_its_own_users_only(cluster, console_sandbox, session):
    await cluster.grant("atk-domain", cluster.project(), principals=["domain:example.com"])
    outsider = Browser(session, console_sandbox, "mallory@example.com.evil.test")
    await outsider.signed_in()
    suffix = Browser(session, console_sandbox, "mallory@notexample.com")
    await suffix.signed_in()
    for who in (outsider, suffix):
        assert "atk-domain" not in {g["name"] for g in (await who.get("/api/grants"))["eligible"]}
        status, refused = await who.request("atk-domain")
        assert status == 403 and "is not eligible for grant atk-domain" in refused["error"], refused
    alice = await person(session, console_sandbox, ALICE)
    status, filed = await alice.request("atk-domain")
    assert status == 201, filed


# -- the browser's side: forgery, headers, hostile text ---------------------------------------------


async def test_a_page_of_another_site_cannot_make_a_signed_in_browser_file_anything(
    cluster, console_sandbox, session
):
    await cluster.grant("atk-csrf", cluster.project(), principals=[f"user:{ALICE}"])
    alice = await person(session, console_sandbox, ALICE)
    carol = await person(session, console_sandbox, CAROL)
    body = {"grant": "atk-csrf", "justification": "INC-2: forged"}
    forged_mac = hmac.new(b"k" * 32, b"guess", hashlib.sha256).hexdigest()
    attempts = {
        "Origin null (a sandboxed frame, a data: URL)": ({"Origin": "null"}, "another origin"),
        "a look-alike origin": ({"Origin": f"{alice.base}.evil.example"}, "another origin"),
        "another port": ({"Origin": "http://127.0.0.1:1"}, "another origin"),
        "same-site, other origin": ({"Sec-Fetch-Site": "same-site"}, "a same-site request"),
        "typed or bookmarked": ({"Sec-Fetch-Site": "none"}, "a none request"),
        "a form, urlencoded": ({"Content-Type": "application/x-www-form-urlencoded"}, "must be JSON"),
        "a form, multipart": ({"Content-Type": "multipart/form-data; boundary=x"}, "must be JSON"),
        "text/plain (a simple request)": ({"Content-Type": "text/plain"}, "must be JSON"),
        "no Content-Type": ({"Content-Type": ""}, "must be JSON"),
        "JSON-ish": ({"Content-Type": "application/json-patch+json"}, "must be JSON"),
        "carol's token": ({"X-CSRF-Token": carol.token}, "not this person's"),
        "a token made up": ({"X-CSRF-Token": f"{int(time.time())}.{forged_mac}"}, "not this person's"),
        "a token from the future": (
            {"X-CSRF-Token": f"{int(time.time()) + 10**6}.{forged_mac}"},
            "not this person's",
        ),
        "a token with a sign": ({"X-CSRF-Token": f"-1.{forged_mac}"}, "not this person's"),
        "a token in the query string": ({"X-CSRF-Token": None}, "no X-CSRF-Token"),
    }
    for what, (headers, reason) in attempts.items():
        path = "/api/requests?csrf=" + alice.token if "query" in what else "/api/requests"
        status, refused = await alice.call("POST", path, body, **headers)
        assert status == 403 and "cross-site request forgery" in refused["error"], (what, refused)
        assert reason in refused["error"], (what, refused)
    # A method override changes nothing: the route decides, and a GET never files.
    status, _ = await alice.call("GET", "/api/requests?_method=POST", **{"X-HTTP-Method-Override": "POST"})
    assert status == 200
    # A preflight is never answered with CORS headers, so a cross-site JSON POST never leaves the browser.
    status, _, headers = await raw(
        session, "OPTIONS", f"{alice.base}/api/requests",
        [(HEADER, alice.assertion), ("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST"),
         ("Access-Control-Request-Headers", "content-type,x-csrf-token")],
    )  # fmt: skip
    assert status in (403, 405) and not any(h.lower().startswith("access-control-") for h in headers)
    assert not await stored_requests(cluster, "atk-csrf")


async def test_every_answer_carries_the_security_headers(console_sandbox, session):
    """Pages, scripts, JSON, errors of every kind, probes and the event stream."""
    alice = await person(session, console_sandbox, ALICE)
    base = alice.base
    ok = [(HEADER, alice.assertion)]
    post = [*ok, ("X-CSRF-Token", alice.token), ("Content-Type", "application/json")]
    calls = [
        ("GET", "/", ok, None, 200),
        ("GET", "/requests/team-sre/x", ok, None, 200),
        ("GET", "/static/app.js", ok, None, 200),
        ("GET", "/static/app.css", ok, None, 200),
        ("GET", "/static/index.html", ok, None, 404),
        ("GET", "/static/..%2F..%2F__init__.py", ok, None, 404),
        ("GET", "/api/me", ok, None, 200),
        ("GET", "/api/no-such-thing", ok, None, 404),
        ("GET", "/api/requests/team-sre/nothing-here", ok, None, 404),
        ("GET", "/api/me", [], None, 401),
        ("POST", "/api/requests", ok, "{}", 403),
        ("POST", "/api/requests", post, "{not json", 400),
        ("POST", "/api/requests", post, "[]", 400),
        ("POST", "/api/requests", post, b"{" + b" " * (2 * 1024 * 1024) + b"}", 413),
        ("DELETE", "/api/me", post, None, 405),
        ("GET", "/healthz", [], None, 200),
        ("GET", "/readyz", [], None, 200),
        ("GET", "/favicon.ico", [], None, 204),
    ]
    for method, path, headers, data, expected in calls:
        status, _, answered = await raw(session, method, base + path, headers, data)
        assert status == expected, (method, path, status)
        for name, value in SECURITY_HEADERS.items():
            assert answered.get(name) == value, (method, path, name, answered.get(name))
    async with session.get(f"{base}/api/stream", headers={HEADER: alice.assertion}) as stream:
        for name, value in SECURITY_HEADERS.items():
            assert stream.headers.get(name) == value, name


async def test_no_answer_reflects_what_was_asked_for_as_markup(console_sandbox, session):
    """The page is one static file, whatever its path; errors are JSON or aiohttp's plain text."""
    alice = await person(session, console_sandbox, ALICE)
    page = (STATIC / "index.html").read_text()
    script = "%3Cscript%3Ealert(1)%3C%2Fscript%3E"
    status, text, headers = await raw(
        session, "GET", f"{alice.base}/requests/{script}/{script}", [(HEADER, alice.assertion)]
    )
    assert status == 200 and text == page and headers["Content-Type"].startswith("text/html")
    for path in (f"/api/{script}", f"/static/{script}", f"/api/requests/{script}/x", f"/{script}"):
        status, text, headers = await raw(session, "GET", alice.base + path, [(HEADER, alice.assertion)])
        assert "<script" not in text and not headers.get("Content-Type", "").startswith("text/html"), (
            path,
            text,
        )
    status, text, headers = await raw(session, "GET", f"{alice.base}/api/me", [(HEADER, f"<script>{script}")])
    assert status == 401 and "<script" not in text and headers["Content-Type"].startswith("application/json")


async def test_hostile_text_from_people_and_admins_comes_back_as_json_data(cluster, console_sandbox, session):
    hint = '<a href="javascript:alert(1)">hint</a>'
    approval = {"approvers": [f"user:{BOB}"], "timeout": "1h"}
    await cluster.grant(
        "atk-hostile",
        cluster.project(),
        principals=[f"user:{ALICE}"],
        approval=approval,
        justification={"required": True, "hint": hint},
    )
    alice = await person(session, console_sandbox, ALICE)
    bob = await person(session, console_sandbox, BOB)
    grants = await alice.get("/api/grants")
    assert next(g for g in grants["eligible"] if g["name"] == "atk-hostile")["justification"]["hint"] == hint
    status, filed = await alice.request("atk-hostile", justification=HOSTILE)
    assert status == 201, filed
    name = filed["created"]["name"]
    await cluster.wait_phase(name, "AwaitingApproval")
    status, _ = await bob.call(
        "POST", f"/api/requests/team-sre/{name}/decisions", {"decision": "Deny", "comment": HOSTILE}
    )
    assert status == 201
    await cluster.wait_phase(name, "Denied")

    async def shown():
        detail = await alice.get(f"/api/requests/team-sre/{name}")
        return any(d["comment"] == HOSTILE for d in detail["decisions"]) and detail["events"]

    await until(shown, "the decision and its Events in the console")
    status, text, headers = await raw(
        session, "GET", f"{alice.base}/api/requests/team-sre/{name}", [(HEADER, alice.assertion)]
    )
    assert (
        headers["Content-Type"].startswith("application/json")
        and headers["X-Content-Type-Options"] == "nosniff"
    )
    detail = json.loads(text)
    assert detail["justification"] == HOSTILE and detail["decisions"][0]["comment"] == HOSTILE


async def test_a_live_stream_tells_that_something_changed_and_nothing_else(cluster, console_sandbox, session):
    """Bob's stream while alice files a request under a grant bob has nothing to do with."""
    await cluster.grant("atk-stream", cluster.project(), principals=[f"user:{ALICE}"])
    alice = await person(session, console_sandbox, ALICE)
    bob = await person(session, console_sandbox, BOB)
    seen = b""
    async with session.get(f"{bob.base}/api/stream", headers={HEADER: bob.assertion}) as stream:
        seen += await stream.content.readuntil(b"\n\n")
        status, filed = await alice.request("atk-stream", justification=SECRET)
        assert status == 201
        await cluster.wait_phase(filed["created"]["name"], "Active")
        async with asyncio.timeout(10):
            while b"event: change" not in seen:
                seen += await stream.content.readuntil(b"\n\n")
    for event in seen.decode().strip().split("\n\n"):
        lines = [line for line in event.split("\n") if not line.startswith(("retry:", ":"))]
        assert lines in (["event: ready", "data: {}"], ["event: change", f"data: {lines[-1][6:]}"]), event
        assert lines[-1][6:] == "{}" or lines[-1][6:].isdigit(), event
    assert SECRET.encode() not in seen and filed["created"]["name"].encode() not in seen


# -- too much of anything -------------------------------------------------------------------------


async def test_bodies_too_big_too_deep_or_in_no_known_charset_are_refused_plainly(
    cluster, console_sandbox, session
):
    await cluster.grant("atk-bodies-big", cluster.project(), principals=[f"user:{ALICE}"])
    alice = await person(session, console_sandbox, ALICE)
    headers = [
        (HEADER, alice.assertion),
        ("X-CSRF-Token", alice.token),
        ("Content-Type", "application/json"),
    ]
    huge = json.dumps({"grant": "atk-bodies-big", "justification": "x" * (2 * 1024 * 1024)})
    status, text, _ = await raw(session, "POST", f"{alice.base}/api/requests", headers, huge)
    assert status == 413, text
    deep = "[" * 200_000 + "]" * 200_000
    status, text, _ = await raw(session, "POST", f"{alice.base}/api/requests", headers, deep)
    assert status == 400 and error_of(text) == "the body must be JSON", text
    charset = [*headers[:2], ("Content-Type", "application/json; charset=x-no-such-charset")]
    status, text, _ = await raw(
        session, "POST", f"{alice.base}/api/requests", charset, json.dumps({"grant": "atk-bodies-big"})
    )
    assert status == 400 and error_of(text) == "the body must be JSON", text
    status, text, _ = await raw(session, "POST", f"{alice.base}/api/requests", headers, b"\xff\xfe{}")
    assert status == 400 and error_of(text) == "the body must be JSON", text
    assert not await stored_requests(cluster, "atk-bodies-big")
    status, _ = await alice.call("GET", "/api/me")
    assert status == 200


async def test_one_person_cannot_hold_all_the_live_streams(console_sandbox, session):
    """Past the limit a new stream ends the person's oldest: their count never grows, and a person
    who reloads often still gets a live page; nobody else's streams are touched. (People of their
    own: no stream of an earlier test is still waiting here for its keepalive to find its page gone.)"""
    dana = await person(session, console_sandbox, "dana@example.com")
    erin = await person(session, console_sandbox, "erin@example.com")
    limit = server.MAX_STREAMS_PER_PERSON
    streams = console_sandbox.front.consoles[0]._streams
    opened = []
    try:
        async with session.get(f"{erin.base}/api/stream", headers={HEADER: erin.assertion}) as others:
            assert (await others.content.readuntil(b"\n\n")).startswith(b"retry:")
            for _ in range(limit + 3):
                stream = await session.get(f"{dana.base}/api/stream", headers={HEADER: dana.assertion})
                opened.append(stream)
                assert stream.status == 200
                await stream.content.readuntil(b"\n\n")
            async with asyncio.timeout(5):
                for oldest in opened[:3]:
                    await oldest.content.read()  # to its end: the console ended it
                    assert oldest.content.at_eof()
            assert len(streams["user:dana@example.com"]) == limit and not opened[-1].content.at_eof()
            assert len(streams["user:erin@example.com"]) == 1 and not others.content.at_eof()
            for site in ("cross-site", "same-site"):  # another site's page cannot open them in her name
                async with session.get(
                    f"{dana.base}/api/stream", headers={HEADER: dana.assertion, "Sec-Fetch-Site": site}
                ) as foreign:
                    assert foreign.status == 403 and "may not read" in (await foreign.json())["error"]
            status, _ = await dana.call("GET", "/api/me")
            assert status == 200  # the rest of the console still serves her
    finally:
        for stream in opened:
            stream.close()


async def test_a_slow_client_holds_up_nobody_else(console_sandbox, session):
    alice = await person(session, console_sandbox, ALICE)
    port = console_sandbox.front.consoles[0].port
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"POST /api/requests HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{HEADER}: {alice.assertion}\r\n"
            f"X-CSRF-Token: {alice.token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{".encode()
        )
        await writer.drain()
        async with asyncio.timeout(5):
            status, _ = await alice.call("GET", "/api/me")
        assert status == 200
    finally:
        writer.close()
