"""Who is asking: the assertion Identity-Aware Proxy signs onto every request it lets through.

IAP puts a JWT in `x-goog-iap-jwt-assertion`: ES256, signed with one of the keys Google publishes
as a JWK set, issuer `https://cloud.google.com/iap`, audience the backend service
(`/projects/NUMBER/global/backendServices/ID`), valid for minutes. google-auth checks the
signature, the audience and the time; this module finds the key, insists on ES256 and the issuer,
and turns the `email` claim into the one IAM member the console may speak for. Anything short of
that is `Unauthenticated`, with a short reason, and the console does nothing for the request.

An IAP identity proves an e-mail address and nothing else: no group membership.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.auth import exceptions as auth_errors
from google.auth import jwt
from multidict import CIMultiDictProxy

from jitaccess.api.names import EMAIL
from jitaccess.policy.admission import Caller, IdentitySettings, member_of

HEADER = "x-goog-iap-jwt-assertion"
ISSUER = "https://cloud.google.com/iap"
GOOGLE_KEYS = "https://www.gstatic.com/iap/verify/public_key-jwk"
SKEW_S = 30  # tolerated clock difference between Google and us, for iat and exp
KEYS_KEPT_S = 3600.0  # the key set is fetched again after this
UNKNOWN_KEY_PAUSE_S = 30.0  # an unknown kid fetches the set again at most this often
log = logging.getLogger(__name__)


class Unauthenticated(Exception):
    """No verified identity: 401, with this short reason."""


class KeysUnavailable(Exception):
    """The signing keys could not be fetched: nobody can be verified now (503)."""


@dataclass(frozen=True)
class Person:
    """Whom IAP verified: their e-mail address, as the IAM member the console names."""

    email: str
    member: str  # user:EMAIL (serviceAccount:EMAIL for a Google service account)
    expires: float  # the assertion's exp (seconds since the epoch)


def jwk_to_pem(jwk: Mapping[str, Any]) -> str | None:
    """The PEM public key of a P-256 JWK (what IAP signs with); None for any other kind of key."""
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        return None
    try:
        x, y = (int.from_bytes(_b64url(str(jwk[part])), "big") for part in ("x", "y"))
        key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    except (KeyError, ValueError):
        return None
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sent_assertion(headers: CIMultiDictProxy[str]) -> str | None:
    """The one assertion on a request. IAP sets exactly one; with two, one came from the client (a
    replayed or leaked assertion of someone else's, say) and which is IAP's cannot be told."""
    found = headers.getall(HEADER, [])
    if len(found) > 1:
        raise Unauthenticated(f"more than one {HEADER} header: IAP sends exactly one")
    return found[0] if found else None


class IapKeys:
    """The JWK set at `url`, kept for an hour; fetched again early when an assertion names a key
    not in it (IAP rotates its keys), but no more than every 30 s, so forged key ids cost nothing."""

    def __init__(self, url: str = GOOGLE_KEYS, clock: Callable[[], float] = time.monotonic) -> None:
        self.url, self.clock = url, clock
        self._keys: dict[str, str] = {}
        self._fetched: float | None = None
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None

    async def pem(self, kid: str) -> str | None:
        async with self._lock:
            now = self.clock()
            stale = self._fetched is None or now - self._fetched > KEYS_KEPT_S
            unknown = kid not in self._keys and (
                self._fetched is None or now - self._fetched > UNKNOWN_KEY_PAUSE_S
            )
            if stale or unknown:
                await self._fetch()
            return self._keys.get(kid)

    async def _fetch(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            async with self._session.get(self.url) as answer:
                answer.raise_for_status()
                document = await answer.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            if self._keys:  # keep verifying with the keys we had
                log.warning(
                    "could not fetch the IAP keys from %s (%s); using the ones fetched before",
                    self.url,
                    error,
                )
                self._fetched = self.clock()
                return
            raise KeysUnavailable(f"the IAP signing keys could not be fetched from {self.url}") from None
        keys = document.get("keys") if isinstance(document, dict) else None
        found = {
            str(jwk["kid"]): pem
            for jwk in keys or ()
            if isinstance(jwk, dict) and jwk.get("kid") and (pem := jwk_to_pem(jwk)) is not None
        }
        self._keys, self._fetched = found, self.clock()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class IapVerifier:
    """Checks one assertion for one audience. `audience` may be set later (resolved at start);
    until then nobody is verified. `clock` (seconds since the epoch) is checked against the
    assertion's times as well as google-auth's own clock."""

    def __init__(
        self,
        audience: str | None,
        keys: IapKeys,
        clock: Callable[[], float] = time.time,
        skew_s: int = SKEW_S,
    ) -> None:
        self.audience, self.keys, self.clock, self.skew_s = audience, keys, clock, skew_s

    async def verify(self, assertion: str | None) -> Person:
        if not assertion:
            raise Unauthenticated(
                f"no {HEADER} header: the console is reached only through Identity-Aware Proxy"
            )
        if self.audience is None:
            raise KeysUnavailable(
                "the IAP audience is not known yet (the backend service is being looked up)"
            )
        try:
            header = jwt.decode_header(assertion)
        except (ValueError, TypeError, auth_errors.GoogleAuthError):
            raise Unauthenticated("the IAP assertion is not a JWT") from None
        if not isinstance(header, dict) or header.get("alg") != "ES256":
            raise Unauthenticated("the IAP assertion is not signed with ES256")
        kid = header.get("kid")
        pem = await self.keys.pem(kid) if isinstance(kid, str) and kid else None
        if pem is None:
            raise Unauthenticated("the IAP assertion is signed with a key IAP does not publish")
        claims = self._decode(assertion, kid, pem)
        return self._person(claims)

    def _decode(self, assertion: str, kid: str, pem: str) -> Mapping[str, Any]:
        try:
            claims = jwt.decode(
                assertion, certs={kid: pem}, audience=self.audience, clock_skew_in_seconds=self.skew_s
            )
        except (ValueError, TypeError, auth_errors.GoogleAuthError) as error:
            raise Unauthenticated(_reason(str(error))) from None
        if not isinstance(claims, Mapping):
            raise Unauthenticated("the IAP assertion carries no claims")
        if claims.get("iss") != ISSUER:
            raise Unauthenticated("the IAP assertion has the wrong issuer")
        now = self.clock()
        expires, issued = claims.get("exp"), claims.get("iat")
        if not isinstance(expires, int | float) or expires + self.skew_s < now:
            raise Unauthenticated("the IAP assertion has expired")
        if not isinstance(issued, int | float) or issued - self.skew_s > now:
            raise Unauthenticated("the IAP assertion is not valid yet")
        not_before = claims.get("nbf", issued)  # IAP sets none; google-auth does not read it
        if not isinstance(not_before, int | float) or not_before - self.skew_s > now:
            raise Unauthenticated("the IAP assertion is not valid yet")
        return claims

    @staticmethod
    def _person(claims: Mapping[str, Any]) -> Person:
        email = claims.get("email")
        if not isinstance(email, str) or not EMAIL.fullmatch(email):
            raise Unauthenticated("the IAP assertion names no e-mail address")
        member, _ = member_of(Caller(email), IdentitySettings())
        if member is None:
            raise Unauthenticated("the IAP assertion names no Google identity")
        return Person(email=email.lower(), member=member, expires=float(claims["exp"]))


def _reason(message: str) -> str:
    """google-auth's words, shortened to what a client may be told."""
    lowered = message.lower()
    if "expired" in lowered:
        return "the IAP assertion has expired"
    if "too early" in lowered:
        return "the IAP assertion is not valid yet"
    if "audience" in lowered:
        return "the IAP assertion is for another audience"
    if "signature" in lowered or "key" in lowered or "certificate" in lowered:
        return "the IAP assertion's signature does not verify"
    return "the IAP assertion is malformed"
