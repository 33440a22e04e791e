"""A local stand-in for Identity-Aware Proxy in front of the sandbox's console.

Google's IAP signs people in, then forwards each request to the backend with an
`x-goog-iap-jwt-assertion` it signs with its ES256 keys, published as a JWK set. This does the
same on 127.0.0.1: a sign-in page to pick alice, bob or carol (a cookie remembers whom), a reverse
proxy that replaces whatever assertion a client sent with one it signs for that person (issuer
`https://cloud.google.com/iap`, the backend service's audience, ten minutes), and its JWK set at
/_iap/jwk, where the console is pointed with --iap-keys-url. The Host header goes through as a load
balancer passes it. Tests also mint assertions with it (`assertion`), good or deliberately bad.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import time
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.auth import crypt, jwt

from jitaccess.console.iap import HEADER, ISSUER

PEOPLE = ("alice@example.com", "bob@example.com", "carol@example.com")
COOKIE = "sandbox-iap-user"
LIFETIME_S = 600
# Not forwarded: hop-by-hop headers, and what only the proxy may say about who is asking.
DROPPED = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization",
     "content-length", "cookie"}
)  # fmt: skip
PAGE_CSP = "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"


def _b64url(number: int) -> str:
    return base64.urlsafe_b64encode(number.to_bytes(32, "big")).rstrip(b"=").decode()


class SigningKey:
    """An ES256 key with its JWK (what IAP publishes at gstatic.com)."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.kid = secrets.token_hex(8)
        pem = self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self.signer = crypt.ES256Signer.from_string(pem, key_id=self.kid)

    def jwk(self) -> dict[str, str]:
        numbers = self.private.public_key().public_numbers()
        return {"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
                "x": _b64url(numbers.x), "y": _b64url(numbers.y)}  # fmt: skip

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(self.signer, claims, key_id=self.kid).decode()


class IapStandIn:
    def __init__(self, upstream: str, audience: str, people: tuple[str, ...] = PEOPLE) -> None:
        self.upstream, self.audience, self.people = upstream.rstrip("/"), audience, people
        self.key = SigningKey()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    def assertion(self, email: str, **overrides: Any) -> str:
        """What IAP would send for `email` now; `overrides` change or (None) drop claims."""
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": self.audience, "email": email, "sub": f"accounts.google.com:{int(hashlib.sha256(email.encode()).hexdigest()[:15], 16)}",
                  "iat": now, "exp": now + LIFETIME_S, "hd": email.partition("@")[2]}  # fmt: skip
        claims.update(overrides)
        return self.key.sign({k: v for k, v in claims.items() if v is not None})

    async def start(self, port: int = 0) -> str:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_get("/_iap/jwk", self._jwk)
        app.router.add_get("/_iap/sign-in", self._sign_in_page)
        app.router.add_post("/_iap/sign-in", self._sign_in)
        app.router.add_route("*", "/_iap/sign-out", self._sign_out)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None)
        )
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{bound}"
        return self.url

    @property
    def keys_url(self) -> str:
        return f"{self.url}/_iap/jwk"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _jwk(self, _: web.Request) -> web.Response:
        return web.json_response({"keys": [self.key.jwk()]})

    async def _sign_in_page(self, _: web.Request) -> web.Response:
        buttons = "\n".join(
            f'<p><button type="submit" name="person" value="{html.escape(p)}" id="sign-in-{html.escape(p.split("@")[0])}">'
            f"Sign in as {html.escape(p)}</button></p>"
            for p in self.people
        )
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in (sandbox IAP)</title></head>'
            "<body><h1>jitaccess sandbox: sign in</h1><p>A stand-in for Identity-Aware Proxy: pick who you are.</p>"
            f'<form method="post" action="/_iap/sign-in">{buttons}</form></body></html>'
        )
        return web.Response(
            text=page, content_type="text/html", headers={"Content-Security-Policy": PAGE_CSP}
        )

    async def _sign_in(self, request: web.Request) -> web.Response:
        person = str((await request.post()).get("person") or "")
        if person not in self.people:
            raise web.HTTPBadRequest(text="pick one of the sandbox's people")
        response = _see_other("/")
        response.set_cookie(COOKIE, person, httponly=True, samesite="Strict", path="/")
        return response

    async def _sign_out(self, _: web.Request) -> web.Response:
        response = _see_other("/_iap/sign-in")
        response.del_cookie(COOKIE, path="/")
        return response

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        person = request.cookies.get(COOKIE)
        if person not in self.people:
            if request.method == "GET":
                raise web.HTTPFound("/_iap/sign-in")
            raise web.HTTPUnauthorized(text="sign in first (/_iap/sign-in)")
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in DROPPED and not name.lower().startswith("x-goog-")
        }
        headers[HEADER] = self.assertion(person)
        headers["x-goog-authenticated-user-email"] = f"accounts.google.com:{person}"
        assert self._session is not None
        async with self._session.request(
            request.method,
            self.upstream + request.rel_url.path_qs,
            headers=headers,
            data=await request.read(),
        ) as answer:
            response = web.StreamResponse(status=answer.status, reason=answer.reason)
            for name, value in answer.headers.items():
                if name.lower() not in DROPPED:
                    response.headers.add(name, value)
            await response.prepare(request)
            try:
                async for chunk in answer.content.iter_any():
                    await response.write(chunk)
                await response.write_eof()
            except ConnectionError:
                pass  # the browser went (a page closed with its event stream open)
            return response


def _see_other(location: str) -> web.Response:
    """A 303 that carries a cookie (aiohttp deprecates returning its HTTPSeeOther exception)."""
    return web.Response(status=303, headers={"Location": location})
