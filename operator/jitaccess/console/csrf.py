"""Cross-site request forgery: a page of another site must not make a signed-in person's browser
file, approve or revoke anything. (Pure: the server hands it the request's headers.)

IAP signs in with a cookie, so the browser sends it with any request to the console, whoever
started it. Every state-changing call (POST) must therefore show three things another site
cannot produce: a token bound to the verified person (HMAC with a key every replica shares, so
either replica accepts what the other issued; it carries its own issue time, so nothing is
stored), a JSON body (a cross-site form cannot send one without a CORS preflight, which the
console never answers), and, where the browser says, a same-origin `Origin` / `Sec-Fetch-Site`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

TOKEN_HEADER = "X-CSRF-Token"
LIFETIME_S = 12 * 3600
MIN_KEY_BYTES = 32


class CsrfGuard:
    def __init__(
        self, key: bytes, clock: Callable[[], float] = time.time, lifetime_s: int = LIFETIME_S
    ) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(
                f"the CSRF key must be at least {MIN_KEY_BYTES} bytes (e.g. openssl rand -hex 32)"
            )
        self.key, self.clock, self.lifetime_s = key, clock, lifetime_s

    def token(self, member: str) -> str:
        """A token for `member`, valid for `lifetime_s` on every replica with the same key."""
        issued = str(int(self.clock()))
        return f"{issued}.{self._mac(member, issued)}"

    def _mac(self, member: str, issued: str) -> str:
        message = f"jitaccess-console-csrf/v1\0{member}\0{issued}".encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def token_problem(self, token: str | None, member: str) -> str | None:
        if not token:
            return f"no {TOKEN_HEADER} header: reload the page"
        issued, _, mac = token.partition(".")
        if not issued.isdigit() or not hmac.compare_digest(mac, self._mac(member, issued)):
            return f"the {TOKEN_HEADER} is not this person's: reload the page"
        if not 0 <= self.clock() - int(issued) <= self.lifetime_s:
            return f"the {TOKEN_HEADER} has expired: reload the page"
        return None

    def problem(self, headers: Mapping[str, str], member: str) -> str | None:
        """Why this state-changing request may not have come from the console's own page, or None."""
        site = headers.get("Sec-Fetch-Site")
        if site is not None and site != "same-origin":
            return f"a {site} request may not change anything here"
        origin = headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() != str(headers.get("Host", "")).lower():
            return "the request comes from another origin"
        content_type = str(headers.get("Content-Type", "")).split(";")[0].strip().lower()
        if content_type != "application/json":
            return "the body must be JSON (Content-Type: application/json)"
        return self.token_problem(headers.get(TOKEN_HEADER), member)


def foreign_read(headers: Mapping[str, str]) -> str | None:
    """Why a read of the API did not come from the console's own page, where the browser says
    (Fetch Metadata): another site may not use a signed-in person's session to read, time or hold
    open anything of theirs (their live-update streams are counted). A typed URL (`none`) reads."""
    site = headers.get("Sec-Fetch-Site")
    if site in ("cross-site", "same-site"):
        return f"a {site} request may not read the console's API; only the console's page does"
    return None


def read_key(path: str) -> bytes:
    """The key in a file (a mounted Secret), surrounding white space removed."""
    with open(path, "rb") as handle:
        return handle.read().strip()
