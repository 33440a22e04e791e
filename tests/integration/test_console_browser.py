"""The web console in a real browser: Debian's Chromium, headless, driven by Playwright, signing in
through the sandbox's IAP stand-in as alice, bob and carol, each in a browser context of their own.
Pages change live (server-sent events, never a reload); a page error, a console error or a
Content-Security-Policy violation on any page fails the test. The screenshots in docs/images/ come
from here (1280x800): `JITACCESS_SCREENSHOTS=1 make test` refreshes them."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Locator, Page, async_playwright, expect

from jitaccess.console.iap import HEADER
from jitaccess_sandbox.runner import CONSOLE_USER, Sandbox
from tests.integration.conftest import Cluster, sandbox_with_console

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

CHROMIUM = "/usr/bin/chromium"  # Debian's; Playwright downloads no browser here
# A closed network otherwise stalls Chromium on its background fetches.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]  # fmt: skip
VIEWPORT = {"width": 1280, "height": 800}
WAIT_MS = 30_000
# Screenshots go to docs/images/ only when asked (JITACCESS_SCREENSHOTS=1, to refresh the docs'
# pictures), else to a temporary folder: a test run leaves the work tree as it found it.
IMAGES = (
    Path(__file__).resolve().parents[2] / "docs" / "images"
    if os.environ.get("JITACCESS_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "jitaccess-console-screenshots"
)
NAMESPACE = "team-sre"  # where the sandbox's console files requests
# Runs if the page ever parses it as HTML: an alert, a flag, a CSP violation (inline script).
HOSTILE = '<img src=x onerror="window.__pwned=1;alert(1)"><script>window.__pwned=1</script> & "INC-9"'
# Chromium reports a CSP violation on the console; this makes sure of it in the page's own words.
REPORT_CSP = """document.addEventListener("securitypolicyviolation", (e) =>
  console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));"""

STAGING, PAYMENTS = "projects/shop-staging", "projects/payments-prod"
SELF_GRANT, APPROVAL_GRANT = "storage-admin", "payments-admin"
GROUP_GRANT, BOB_GRANT = "sre-oncall", "bob-billing"


@pytest.fixture(scope="module", autouse=True)
def _chromium_is_there() -> None:
    """Before the sandbox starts: without the browser, skip here, but fail on CI (never a silent skip)."""
    if not os.access(CHROMIUM, os.X_OK):
        why = f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(f"{why}. On CI the console's browser tests must run, not skip.")
        pytest.skip(why)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox(tmp_path_factory: pytest.TempPathFactory):
    """The module's sandbox, with the console (conftest's `cluster` works on it)."""
    state = Path(tmp_path_factory.mktemp("browser-sandbox"))
    async with sandbox_with_console(state) as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium():
    expect.set_options(timeout=WAIT_MS)
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=WAIT_MS)
        yield browser
        await browser.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def grants(sandbox):
    """The module's grants: alice's own (self-approved), one bob approves, one for a group only,
    one for bob only; each on a project of its own in the IAM emulator."""
    setup = Cluster(sandbox)
    setup.emulator.resources.update({STAGING, PAYMENTS, "projects/billing"})
    justification = {"required": True, "pattern": "^(INC|CHG)-[0-9]+: .{10,}",
                     "hint": "Ticket number, then what you will do"}  # fmt: skip
    await setup.grant(SELF_GRANT, STAGING, principals=["user:alice@example.com"], defaultDuration="30m",
                      justification=justification)  # fmt: skip
    await setup.grant(
        APPROVAL_GRANT,
        PAYMENTS,
        principals=["user:alice@example.com"],
        approval={"approvers": ["user:bob@example.com"], "minApprovals": 1, "timeout": "1h"},
    )
    await setup.grant(GROUP_GRANT, STAGING, principals=["group:sre@example.com"])
    await setup.grant(BOB_GRANT, "projects/billing", principals=["user:bob@example.com"])
    for name in (SELF_GRANT, APPROVAL_GRANT, GROUP_GRANT, BOB_GRANT):
        await setup.wait_grant_ready(name)


class People:
    """Browser contexts of people signed in through the IAP stand-in; what went wrong on their pages."""

    def __init__(self, browser: Browser, url: str) -> None:
        self.browser, self.url = browser, url
        self.contexts: list[BrowserContext] = []
        self.problems: list[str] = []
        self.expected: list[re.Pattern[str]] = []  # console errors a test provokes on purpose

    async def sign_in(self, who: str, snapshot: bool = False) -> Page:
        context = await self.browser.new_context(
            viewport=VIEWPORT, device_scale_factor=1, locale="en-US", timezone_id="UTC", color_scheme="light"
        )
        self.contexts.append(context)
        await context.add_init_script(REPORT_CSP)
        page = await context.new_page()
        page.on("pageerror", lambda error: self.problems.append(f"{who}: page error: {error}"))
        page.on("console", lambda message: self._console(who, message))
        page.on("dialog", lambda dialog: self._dialog(who, dialog))
        await page.goto(self.url)
        await expect(page).to_have_url(f"{self.url}/_iap/sign-in")
        if snapshot:
            await snap(page, "sign-in")
        await page.click(f"#sign-in-{who}")
        await expect(page.locator("body")).to_have_attribute("data-loaded", "true")
        await expect(page.locator("#whoami-email")).to_have_text(f"{who}@example.com")
        await expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
        return page

    def expect_refusal(self, status: int, path: str) -> None:
        """Chromium logs a refused fetch as a console error; this one is the test's doing."""
        self.expected.append(re.compile(rf"status of {status} .*'url': '{re.escape(self.url)}{path}'"))

    def _console(self, who: str, message) -> None:
        if message.type == "error":
            problem = f"{who}: console error: {message.text} at {message.location}"
            if not any(pattern.search(problem) for pattern in self.expected):
                self.problems.append(problem)

    async def _dialog(self, who: str, dialog) -> None:
        self.problems.append(f"{who}: a dialog opened: {dialog.message}")
        await dialog.dismiss()

    async def close(self) -> list[str]:
        problems = list(self.problems)  # what the pages said while the test ran, not while closing
        for context in self.contexts:
            await context.close()
        return problems


@pytest_asyncio.fixture(loop_scope="module")
async def people(chromium, sandbox, grants):
    opened = People(chromium, sandbox.console_url)
    yield opened
    problems = await opened.close()
    assert not problems, "\n".join(problems)


async def snap(page: Page, name: str, full_page: bool = False) -> None:
    """docs/images/console-NAME.png: the 1280x800 viewport, or the whole page where it runs longer."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    await page.screenshot(
        path=IMAGES / f"console-{name}.png", full_page=full_page, animations="disabled", caret="hide"
    )


async def mark(page: Page) -> None:
    """Leave a flag in the document: still there later means the page was never reloaded."""
    await page.evaluate("window.__sameDocument = true")


async def never_reloaded(page: Page) -> None:
    assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    assert await page.evaluate("typeof window.__pwned") == "undefined"


async def until(check, what: str, timeout_s: float = WAIT_MS / 1000) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out: {what}"
        await asyncio.sleep(0.02)


def cell(scope: Locator | Page, testid: str) -> Locator:
    return scope.locator(f"[data-testid={testid}]")


def event(page: Page, reason: str) -> Locator:
    """The detail page's timeline entry for the Event with this reason."""
    return page.locator(f"#request-events li[data-testid=event][data-reason={reason}]")


def request_named(page: Page) -> str:
    """The request a detail page shows, from its address (/requests/NAMESPACE/NAME)."""
    match = re.search(rf"/requests/{NAMESPACE}/([^/?#]+)$", page.url)
    assert match, page.url
    return match.group(1)


async def file_request(page: Page, grant: str, justification: str, duration: str, uncheck=()) -> None:
    """The grant's Request button, then the form filled in (not sent yet)."""
    await page.click(f"[data-testid=request-button][data-grant={grant}]")
    form = page.locator("#request-form")
    await expect(form).to_be_visible()
    for role in uncheck:
        await form.locator(f'input[data-testid=role-checkbox][value="{role}"]').uncheck()
    await page.fill("#request-duration", duration)
    await page.fill("#request-justification", justification)


async def submitted(page: Page) -> str:
    """Request access; the page moves to the new request's detail, whose name this returns."""
    await page.click("#request-submit")
    await expect(page).to_have_url(re.compile(rf"/requests/{NAMESPACE}/[^/]+$"))
    await expect(page.locator("#message")).to_have_attribute("data-kind", "ok")
    return request_named(page)


async def test_alice_sees_only_her_grants_requests_and_watches_it_go_active_live(people, cluster):
    alice = await people.sign_in("alice", snapshot=True)
    grants = alice.locator("#view-grants")
    await expect(grants).to_be_visible()
    mine = grants.locator(f"[data-testid=grant-row][data-grant={SELF_GRANT}]")
    await expect(cell(mine, "grant-resource")).to_have_text(STAGING)
    await expect(cell(mine, "grant-roles")).to_have_text("roles/compute.admin, roles/storage.admin")
    await expect(cell(mine, "grant-max-duration")).to_have_text("2h")
    await expect(cell(mine, "grant-approval")).to_have_text("none (self-approved)")
    await expect(cell(mine, "grant-justification")).to_have_text("Ticket number, then what you will do")
    approved = grants.locator(f"[data-testid=grant-row][data-grant={APPROVAL_GRANT}]")
    await expect(cell(approved, "grant-approval")).to_have_text("1 of user:bob@example.com within 1h")
    # Bob's grant is not listed at all; the group's is only counted, apart (she may hold it through a group).
    await expect(cell(grants, "grant-row")).to_have_count(2)
    await expect(grants.locator(f"[data-grant={BOB_GRANT}]")).to_have_count(0)
    await expect(alice.locator("#group-only")).to_be_visible()
    await expect(alice.locator("#group-only-count")).to_have_text("1")
    await expect(alice.locator("#group-only")).not_to_contain_text(GROUP_GRANT)

    await file_request(
        alice, SELF_GRANT, "INC-4711: rotate the bucket keys", "45m", uncheck=["roles/compute.admin"]
    )
    await expect(alice.locator("#request-break-glass-row")).to_be_hidden()  # the grant has no break-glass
    await snap(alice, "grants", full_page=True)
    await mark(alice)
    # A justification the grant's pattern refuses: admission's words on the page, the form kept.
    await alice.fill("#request-justification", "rotate keys")
    people.expect_refusal(403, "/api/requests")
    await alice.click("#request-submit")
    await expect(alice.locator("#message")).to_have_attribute("data-kind", "error")
    await expect(alice.locator("#message")).to_have_text(re.compile("^spec.justification: does not match"))
    await expect(alice.locator("#request-form")).to_be_visible()
    await alice.fill("#request-justification", "INC-4711: rotate the bucket keys")
    cluster.emulator.stall(STAGING)  # IAM holds the binding: the page first shows the request on its way
    try:
        name = await submitted(alice)
        phase = alice.locator("#request-phase")
        await expect(phase).to_have_attribute("data-phase", re.compile("^(Pending|Activating)$"))
        await until(lambda: cluster.emulator.held(STAGING) > 0, "the operator's IAM call is held")
        await expect(phase).to_have_attribute("data-phase", "Activating")
    finally:
        cluster.emulator.release(STAGING)
    await expect(phase).to_have_attribute("data-phase", "Active")
    await expect(event(alice, "Activated")).to_have_count(1)
    await expect(alice.locator("#request-roles-shown")).to_have_text("roles/storage.admin")
    await expect(alice.locator("#request-duration-shown")).to_have_text("45m")
    await expect(alice.locator("#revoke-button")).to_be_visible()
    await never_reloaded(alice)
    spec = (await cluster.get(name))["spec"]
    assert (spec["requester"], spec["roles"]) == ("user:alice@example.com", ["roles/storage.admin"])

    await alice.click("#nav-requests")  # within the page, as the link does
    row = alice.locator(f"[data-testid=request-row][data-request='{NAMESPACE}/{name}']")
    await expect(row).to_have_attribute("data-phase", "Active")
    await expect(cell(row, "request-phase")).to_have_text("Active")
    await never_reloaded(alice)


async def test_alice_waits_for_bob_who_approves_from_his_list_and_her_page_goes_active(people, cluster):
    alice = await people.sign_in("alice")
    await file_request(alice, APPROVAL_GRANT, "INC-4712: refund the double charges", "1h",
                       uncheck=["roles/storage.admin"])  # fmt: skip
    await mark(alice)
    name = await submitted(alice)
    await expect(alice.locator("#request-phase")).to_have_attribute("data-phase", "AwaitingApproval")
    await expect(alice.locator("#revoke-button")).to_have_text("Withdraw my request")
    await expect(alice.locator("#request-approval")).to_have_text("0 of 1 approval(s)")

    bob = await people.sign_in("bob")
    await expect(bob.locator("#approvals-count")).to_have_text(re.compile(r"^\(\d+\)$"))
    await bob.click("#nav-approvals")
    row = bob.locator(f"[data-testid=approval-row][data-request='{NAMESPACE}/{name}']")
    await expect(row).to_have_attribute("data-kind", "approval")
    for testid, shown in {
        "approval-requester": "user:alice@example.com",
        "approval-grant": APPROVAL_GRANT,
        "approval-resource": PAYMENTS,
        "approval-roles": "roles/compute.admin",
        "approval-duration": "1h",
        "approval-justification": "INC-4712: refund the double charges",
        "approval-step": "1/1",
    }.items():
        await expect(cell(row, testid)).to_have_text(shown)
    await expect(bob.locator("#approvals-empty")).to_be_hidden()
    await cell(row, "decision-comment").fill("ok, for INC-4712")
    await snap(bob, "approvals")
    await cell(row, "approve-button").click()
    await expect(bob.locator("#message")).to_have_attribute("data-kind", "ok")
    await expect(row).to_have_count(0)

    # Alice's page, open all along in her own browser context, follows.
    await expect(alice.locator("#request-phase")).to_have_attribute("data-phase", "Active")
    await expect(event(alice, "Activated")).to_have_count(1)
    decisions = alice.locator("#request-decisions li[data-testid=decision]")
    await expect(decisions).to_have_count(1)
    await expect(decisions).to_contain_text("Approve by user:bob@example.com")
    await expect(decisions).to_contain_text("ok, for INC-4712 (counts)")
    await expect(alice.locator("#request-approval")).to_have_text("approved by user:bob@example.com")
    await expect(alice.locator("#revoke-button")).to_have_text("Revoke my access")
    await never_reloaded(alice)
    await snap(alice, "request", full_page=True)
    body = await cluster.get(name)
    assert body["status"]["approvals"][0]["approver"] == "user:bob@example.com"


async def test_carol_finds_nothing_to_approve(people, cluster, sandbox):
    await cluster.request("waits-for-bob", APPROVAL_GRANT, justification="INC-4713: only bob approves")
    await cluster.wait_phase("waits-for-bob", "AwaitingApproval")
    assert "waits-for-bob" in await pending_for(sandbox, "bob@example.com")  # there is one, for bob
    carol = await people.sign_in("carol")
    await expect(carol.locator("#grants-empty")).to_be_visible()
    await expect(carol.locator("#approvals-count")).to_have_text("")
    await carol.click("#nav-approvals")
    await expect(carol.locator("#view-approvals")).to_be_visible()
    await expect(carol.locator("#approvals-empty")).to_be_visible()
    await expect(cell(carol, "approval-row")).to_have_count(0)
    await cluster.decide("bob@example.com", "waits-for-bob", "Deny")  # leave nothing pending for other tests


async def pending_for(sandbox: Sandbox, email: str) -> list[str]:
    """The requests the console's API lists as waiting for `email` (an assertion as IAP signs it)."""
    front = sandbox.front
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"http://127.0.0.1:{front.consoles[0].port}/api/approvals",
            headers={HEADER: front.iap.assertion(email)},
        ) as answer:
            assert answer.status == 200, await answer.text()
            return [item["name"] for item in (await answer.json())["pending"]]


async def test_a_justification_of_html_and_script_stays_text_on_every_page(people, cluster):
    alice = await people.sign_in("alice")
    await file_request(alice, APPROVAL_GRANT, HOSTILE, "30m")
    await mark(alice)
    name = await submitted(alice)
    await expect(alice.locator("#request-phase")).to_have_attribute("data-phase", "AwaitingApproval")
    await expect(alice.locator("#request-justification-shown")).to_have_text(HOSTILE)
    await expect(alice.locator("#request-justification-shown *")).to_have_count(0)

    bob = await people.sign_in("bob")
    await bob.click("#nav-approvals")
    row = bob.locator(f"[data-testid=approval-row][data-request='{NAMESPACE}/{name}']")
    shown = cell(row, "approval-justification")
    await expect(shown).to_have_text(HOSTILE)
    await expect(shown.locator("*")).to_have_count(0)
    await mark(bob)
    await cell(row, "approval-details").click()
    await expect(bob).to_have_url(f"{people.url}/requests/{NAMESPACE}/{name}")
    await expect(bob.locator("#request-justification-shown")).to_have_text(HOSTILE)
    await expect(bob.locator("#decision-form")).to_be_visible()
    await bob.fill("#decision-comment", HOSTILE)
    await bob.click("#deny-button")
    await expect(bob.locator("#request-phase")).to_have_attribute("data-phase", "Denied")
    decision = alice.locator("#request-decisions li[data-testid=decision]")
    await expect(alice.locator("#request-phase")).to_have_attribute("data-phase", "Denied")
    await expect(decision).to_contain_text("Deny by user:bob@example.com at")
    await expect(decision).to_contain_text(HOSTILE)
    assert await alice.locator("main img, main script").count() == 0
    for page in (alice, bob):
        await never_reloaded(page)


async def test_alice_revokes_her_access_from_the_detail_page(people, cluster):
    await cluster.request("to-revoke", SELF_GRANT, roles=["roles/storage.admin"], duration="30m",
                          justification="INC-4714: empty the staging bucket")  # fmt: skip
    await cluster.wait_phase("to-revoke", "Active")
    assert held_for(cluster, "to-revoke")
    alice = await people.sign_in("alice")
    await alice.click("#nav-requests")
    row = alice.locator(f"[data-testid=request-row][data-request='{NAMESPACE}/to-revoke']")
    await expect(row).to_have_attribute("data-phase", "Active")
    await snap(alice, "requests")
    await mark(alice)
    await row.locator("a[data-testid=request-link]").click()
    await expect(alice).to_have_url(f"{people.url}/requests/{NAMESPACE}/to-revoke")
    phase = alice.locator("#request-phase")
    await expect(phase).to_have_attribute("data-phase", "Active")
    await alice.click("#revoke-button")
    await expect(phase).to_have_attribute("data-phase", "Revoked")
    await expect(alice.locator("#request-ended-by")).to_have_text(
        f"user:alice@example.com via {CONSOLE_USER}"
    )
    await expect(alice.locator("#revoke-button")).to_be_hidden()
    await expect(event(alice, "RevokedByRequester")).to_have_count(1)
    await never_reloaded(alice)
    assert not held_for(cluster, "to-revoke")


def held_for(cluster: Cluster, request: str) -> list[dict]:
    """The bindings in IAM whose condition names `request`."""
    return [b for b in cluster.bindings(STAGING) if request in str(b.get("condition"))]
