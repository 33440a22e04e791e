"""The console's rules that the attacks in tests/integration/test_console_attacks.py found missing,
each on its own: who may see a request (a decision on it, not one anywhere), one IAP assertion per
request, `nbf`, reads from other sites, and bodies that are not JSON however they fail to be. Keys
and bodies go over loopback HTTP, as in test_console_iap."""

from __future__ import annotations

import time

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from jitaccess.api.objects import parse_grant
from jitaccess.console.api import _json
from jitaccess.console.csrf import foreign_read
from jitaccess.console.iap import HEADER, IapKeys, IapVerifier, Unauthenticated, sent_assertion
from jitaccess.console.views import decisions_of, may_see
from tests.unit.test_console_iap import AUDIENCE, published  # noqa: F401  (fixture)

ALICE, CAROL = "user:alice@example.com", "user:carol@example.com"


def request(name: str = "alice-db-1", namespace: str = "team-sre") -> dict:
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": "u1"},
        "spec": {"grant": "db", "requester": ALICE, "justification": "INC-1: secret"},
    }


def approval(on: str, namespace: str = "team-sre", approver: str = CAROL) -> dict:
    return {
        "metadata": {"name": f"{on}-deny", "namespace": namespace},
        "spec": {"request": on, "decision": "Deny", "approver": approver},
    }


def grant() -> object:
    parsed, errors = parse_grant(
        {
            "metadata": {"name": "db"},
            "spec": {
                "resource": "projects/my-database",
                "roles": ["roles/cloudsql.admin"],
                "principals": [ALICE],
                "maxDuration": "1h",
            },
        }
    )
    assert parsed is not None, errors
    return parsed


def test_a_decision_shows_its_own_request_to_its_approver_and_no_other():
    body = request()
    elsewhere = [approval("bob-other-1"), approval("alice-db-1", namespace="default")]
    assert not may_see(body, grant(), CAROL, elsewhere)
    assert decisions_of(body, elsewhere) == []
    assert may_see(body, grant(), CAROL, [*elsewhere, approval("alice-db-1")])
    assert may_see(body, grant(), "user:Carol@Example.com", [approval("alice-db-1")])
    assert may_see(body, grant(), ALICE, [])  # the requester
    assert not may_see(body, None, CAROL, elsewhere)  # a grant gone changes nothing for her


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def test_a_request_carries_one_assertion_or_none():
    assert sent_assertion(headers()) is None
    assert sent_assertion(headers((HEADER.upper(), "a.b.c"))) == "a.b.c"
    for pairs in (
        ((HEADER, "a.b.c"), (HEADER, "d.e.f")),
        ((HEADER, "a.b.c"), ("X-Goog-Iap-Jwt-Assertion", "")),
    ):
        with pytest.raises(Unauthenticated, match="more than one x-goog-iap-jwt-assertion header"):
            sent_assertion(headers(*pairs))


@pytest_asyncio.fixture
async def verifier(published):  # noqa: F811
    keys = IapKeys(published["url"])
    yield IapVerifier(AUDIENCE, keys)
    await keys.close()


async def test_an_assertion_is_not_good_before_its_nbf(verifier, published):  # noqa: F811
    key, now = published["keys"][0], int(time.time())
    assert (await verifier.verify(key.sign(nbf=now - 60))).email == "alice@example.com"
    for nbf in (now + 3600, "soon"):
        with pytest.raises(Unauthenticated, match="not valid yet"):
            await verifier.verify(key.sign(nbf=nbf))


def test_another_sites_page_may_not_read_the_api():
    assert "cross-site request may not read" in str(foreign_read({"Sec-Fetch-Site": "cross-site"}))
    assert "same-site request may not read" in str(foreign_read({"Sec-Fetch-Site": "same-site"}))
    for site in ("same-origin", "none", None):  # the page itself; a typed URL; a client that says nothing
        assert foreign_read({"Sec-Fetch-Site": site} if site else {}) is None


@pytest_asyncio.fixture
async def echo(unused_tcp_port):
    """The console's body reader behind a real server: what it read, or its refusal."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"read": await _json(request)})

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    async with aiohttp.ClientSession() as session:
        yield session, f"http://127.0.0.1:{unused_tcp_port}/"
    await runner.cleanup()


async def test_a_body_that_is_no_json_is_a_400_however_it_fails(echo):
    session, url = echo
    cases = {
        "nested past the parser": ("[" * 200_000 + "]" * 200_000, "application/json"),
        "a charset nobody knows": ('{"grant": "g"}', "application/json; charset=x-no-such-charset"),
        "bytes that are no UTF-8": (b"\xff\xfe{}", "application/json"),
        "not JSON": ("{grant:", "application/json"),
    }
    for what, (data, content_type) in cases.items():
        async with session.post(url, data=data, headers={"Content-Type": content_type}) as answer:
            assert answer.status == 400, (what, await answer.text())
            assert (await answer.json()) == {"error": "the body must be JSON"}, what
    async with session.post(
        url, data='{"grant": "g"}', headers={"Content-Type": "application/json"}
    ) as answer:
        assert (await answer.json()) == {"read": {"grant": "g"}}
