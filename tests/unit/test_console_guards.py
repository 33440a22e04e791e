"""The console's CSRF guard (pure), and finding the IAP audience among a project's backend services
(Compute's list, served by the emulator over loopback HTTP, read with google-auth's session)."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from jitaccess.console.backend_services import Ambiguous, NotYet, backend_service_id, resolve_audience, serves
from jitaccess.console.csrf import CsrfGuard
from jitaccess_emulator.server import Emulator, start

KEY = b"k" * 32
ALICE, BOB = "user:alice@example.com", "user:bob@example.com"


def headers(guard, member=ALICE, **extra):
    found = {
        "Host": "jit.example.com",
        "Origin": "https://jit.example.com",
        "Sec-Fetch-Site": "same-origin",
        "Content-Type": "application/json",
        "X-CSRF-Token": guard.token(member),
    }
    found.update(extra)
    return {k: v for k, v in found.items() if v is not None}


def test_a_token_is_bound_to_the_person_and_accepted_by_every_replica_with_the_key():
    guard, replica = CsrfGuard(KEY), CsrfGuard(KEY)
    assert guard.problem(headers(guard), ALICE) is None
    assert replica.problem(headers(guard), ALICE) is None  # no shared state but the key
    assert "not this person's" in guard.problem(headers(guard, member=BOB), ALICE)
    assert "not this person's" in CsrfGuard(b"x" * 32).problem(headers(guard), ALICE)
    assert "no X-CSRF-Token" in guard.problem(headers(guard, **{"X-CSRF-Token": None}), ALICE)
    assert "not this person's" in guard.problem(headers(guard, **{"X-CSRF-Token": "1.abc"}), ALICE)


def test_a_token_expires():
    now = [1_000_000.0]
    guard = CsrfGuard(KEY, clock=lambda: now[0], lifetime_s=60)
    token = headers(guard)
    now[0] += 61
    assert "expired" in guard.problem(token, ALICE)


def test_cross_site_requests_and_forms_are_refused():
    guard = CsrfGuard(KEY)
    assert "cross-site" in guard.problem(headers(guard, **{"Sec-Fetch-Site": "cross-site"}), ALICE)
    assert "same-site" in guard.problem(headers(guard, **{"Sec-Fetch-Site": "same-site"}), ALICE)
    assert "another origin" in guard.problem(headers(guard, Origin="https://evil.example"), ALICE)
    assert "another origin" in guard.problem(headers(guard, Origin="null"), ALICE)
    form = headers(guard, **{"Content-Type": "application/x-www-form-urlencoded"})
    assert "must be JSON" in guard.problem(form, ALICE)
    # A client that says neither (curl, a script) still needs the token and a JSON body.
    assert guard.problem(headers(guard, Origin=None, **{"Sec-Fetch-Site": None}), ALICE) is None


def test_a_short_key_is_refused():
    with pytest.raises(ValueError):
        CsrfGuard(b"short")


@pytest_asyncio.fixture
async def compute():
    emulator = Emulator()
    runner, url = await start(emulator)
    emulator.compute.add_project("my-project", "123456789012")
    yield emulator.compute, url
    await runner.cleanup()


async def test_the_backend_service_gke_made_for_the_service_gives_the_audience(compute):
    services, url = compute
    for index in range(600):  # more than one page
        services.add("my-project", f"k8s1-other-{index}", f"team-{index}/web")
    made = services.add("my-project", "k8s1-abc-jitaccess-console-80", "jitaccess-system/jitaccess-console")
    found = await asyncio.to_thread(
        backend_service_id, "my-project", "jitaccess-system/jitaccess-console", url
    )
    assert found == made["id"]
    assert services.listed == 2  # followed nextPageToken
    by_number = await resolve_audience(
        "123456789012", "123456789012", "jitaccess-system/jitaccess-console", url
    )
    assert by_number == f"/projects/123456789012/global/backendServices/{made['id']}"


async def test_none_yet_or_two_are_said_so(compute):
    services, url = compute
    with pytest.raises(NotYet):
        await asyncio.to_thread(backend_service_id, "my-project", "ns/svc", url)
    services.add("my-project", "a", "ns/svc", port="80")
    services.add("my-project", "b", "ns/svc", port="8080")
    with pytest.raises(Ambiguous) as caught:
        await asyncio.to_thread(backend_service_id, "my-project", "ns/svc", url)
    assert "a, b" in str(caught.value)
    with pytest.raises(RuntimeError, match="HTTP 404"):
        await asyncio.to_thread(backend_service_id, "no-such-project", "ns/svc", url)


async def test_resolving_waits_for_the_load_balancer(compute):
    services, url = compute
    waiting = asyncio.create_task(
        resolve_audience("my-project", "123456789012", "ns/late", url, pause_s=0.05)
    )
    await asyncio.sleep(0.2)
    assert not waiting.done()
    made = services.add("my-project", "k8s1-late", "ns/late")
    assert (await asyncio.wait_for(waiting, 10)).endswith(made["id"])


def test_only_gkes_description_counts():
    assert serves(
        {"description": '{"kubernetes.io/service-name": "ns/svc", "kubernetes.io/service-port": "80"}'},
        "ns/svc",
    )
    assert not serves({"description": '{"kubernetes.io/service-name": "ns/svc2"}'}, "ns/svc")
    assert not serves({"description": "ns/svc"}, "ns/svc")
    assert not serves({}, "ns/svc")


def test_the_console_refuses_to_start_without_what_it_needs(tmp_path, monkeypatch):
    from jitaccess.cli import parser
    from jitaccess.console.run import console_settings
    from jitaccess.run_flags import CONSOLE_FLAGS

    for flag in CONSOLE_FLAGS:
        monkeypatch.delenv(flag.variable, raising=False)
    key = tmp_path / "key"
    key.write_text("k" * 64)
    short = tmp_path / "short"
    short.write_text("k" * 8)
    audience = ["--iap-audience", "/projects/1/global/backendServices/2"]
    for argv, why in (
        (audience, "no --csrf-key-file"),
        ([*audience, "--csrf-key-file", str(short)], "at least 32 bytes"),
        (["--csrf-key-file", str(key)], "give --iap-audience"),
        (["--csrf-key-file", str(key), "--iap-audience", "4242"], "--iap-audience: /projects/"),
        (
            ["--csrf-key-file", str(key), "--iap-project-number", "1", "--iap-backend-service-of", "svc"],
            "NAMESPACE/SERVICE",
        ),
    ):
        with pytest.raises(SystemExit) as stopped:
            console_settings(parser().parse_args(["console", *argv]))
        assert why in str(stopped.value), argv
    found = console_settings(
        parser().parse_args(
            [
                "console",
                "--csrf-key-file",
                str(key),
                "--iap-project-number",
                "42",
                "--iap-backend-service-of",
                "ns/svc",
            ]
        )
    )
    assert found.backend_service_of == ("42", "42", "ns/svc", "https://compute.googleapis.com")
    assert found.requests_namespace == "jitaccess-requests" and found.port == 8080
