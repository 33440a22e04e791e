"""The console's IAP verifier, with keys the tests make and serve as a JWK set over loopback HTTP:
only an ES256 assertion from a published key, for our audience, from IAP's issuer and in its time
names a person; everything else is refused with a short reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
import pytest_asyncio
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.auth import crypt, jwt

from jitaccess.console.iap import ISSUER, IapKeys, IapVerifier, KeysUnavailable, Unauthenticated, jwk_to_pem

AUDIENCE = "/projects/123456789012/global/backendServices/4242"


class Key:
    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = ec.generate_private_key(ec.SECP256R1())
        pem = self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self.signer = crypt.ES256Signer.from_string(pem, key_id=kid)

    def jwk(self) -> dict:
        numbers = self.private.public_key().public_numbers()

        def part(n):
            return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()

        return {
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "kid": self.kid,
            "x": part(numbers.x),
            "y": part(numbers.y),
        }

    def sign(self, **overrides) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "email": "alice@example.com",
            "sub": "1",
            "iat": now,
            "exp": now + 600,
        }
        claims.update(overrides)
        return jwt.encode(
            self.signer, {k: v for k, v in claims.items() if v is not None}, key_id=self.kid
        ).decode()


def unsigned(header: dict, claims: dict, signature: bytes = b"") -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return ".".join([part(json.dumps(header).encode()), part(json.dumps(claims).encode()), part(signature)])


@pytest_asyncio.fixture
async def published(unused_tcp_port):
    """Keys served as IAP serves them; `served["keys"]` may change, `served["fetches"]` counts."""
    served = {"keys": [Key("k1")], "fetches": 0, "status": 200}

    async def jwks(_: web.Request) -> web.Response:
        served["fetches"] += 1
        return web.json_response({"keys": [k.jwk() for k in served["keys"]]}, status=served["status"])

    app = web.Application()
    app.router.add_get("/jwk", jwks)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    served["url"] = f"http://127.0.0.1:{unused_tcp_port}/jwk"
    yield served
    await runner.cleanup()


@pytest_asyncio.fixture
async def verifier(published):
    keys = IapKeys(published["url"])
    yield IapVerifier(AUDIENCE, keys)
    await keys.close()


async def refused(verifier, assertion) -> str:
    with pytest.raises(Unauthenticated) as caught:
        await verifier.verify(assertion)
    return str(caught.value)


async def test_a_good_assertion_names_the_person_as_a_user(verifier, published):
    person = await verifier.verify(published["keys"][0].sign(email="Alice@Example.com"))
    assert (person.email, person.member) == ("alice@example.com", "user:alice@example.com")
    robot = await verifier.verify(published["keys"][0].sign(email="ci@p.iam.gserviceaccount.com"))
    assert robot.member == "serviceAccount:ci@p.iam.gserviceaccount.com"


async def test_missing_or_malformed_assertions_are_refused(verifier):
    assert "no x-goog-iap-jwt-assertion" in await refused(verifier, None)
    assert "no x-goog-iap-jwt-assertion" in await refused(verifier, "")
    assert "not a JWT" in await refused(verifier, "not-a-token")


async def test_a_forged_signature_is_refused(verifier, published):
    impostor = Key("k1")  # same key id, another key
    assert "signature" in await refused(verifier, impostor.sign())
    good = published["keys"][0].sign()
    header, claims, signature = good.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(claims + "=="))
    tampered["email"] = "bob@example.com"
    body = base64.urlsafe_b64encode(json.dumps(tampered).encode()).rstrip(b"=").decode()
    assert "signature" in await refused(verifier, f"{header}.{body}.{signature}")


async def test_expired_early_wrong_audience_and_wrong_issuer_are_refused(verifier, published):
    key = published["keys"][0]
    now = int(time.time())
    assert "expired" in await refused(verifier, key.sign(iat=now - 3600, exp=now - 600))
    assert "not valid yet" in await refused(verifier, key.sign(iat=now + 3600, exp=now + 4200))
    assert "another audience" in await refused(verifier, key.sign(aud="/projects/1/global/backendServices/2"))
    assert "issuer" in await refused(verifier, key.sign(iss="https://accounts.google.com"))
    assert "e-mail" in await refused(verifier, key.sign(email=None))
    assert "e-mail" in await refused(verifier, key.sign(email="not an address"))


async def test_the_injected_clock_is_checked_too(published):
    keys = IapKeys(published["url"])
    later = IapVerifier(AUDIENCE, keys, clock=lambda: time.time() + 3600)
    assert "expired" in await refused(later, published["keys"][0].sign())
    await keys.close()


async def test_alg_none_hs256_and_rs256_are_refused(verifier, published):
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "email": "alice@example.com", "iat": now, "exp": now + 600}
    assert "ES256" in await refused(verifier, unsigned({"alg": "none", "kid": "k1"}, claims))
    # HS256 keyed with the published public key: the classic confusion of algorithms.
    public = jwk_to_pem(published["keys"][0].jwk()).encode()
    header = {"alg": "HS256", "kid": "k1", "typ": "JWT"}
    signing_input = unsigned(header, claims).rsplit(".", 1)[0]
    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    assert "ES256" in await refused(verifier, unsigned(header, claims, mac))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    rs256 = jwt.encode(crypt.RSASigner.from_string(pem, key_id="k1"), claims, key_id="k1").decode()
    assert "ES256" in await refused(verifier, rs256)


async def test_an_unknown_key_fetches_the_set_again_but_not_more_than_every_30s(published):
    clock = [1000.0]
    keys = IapKeys(published["url"], clock=lambda: clock[0])
    verifier = IapVerifier(AUDIENCE, keys)
    await verifier.verify(published["keys"][0].sign())
    assert published["fetches"] == 1
    rotated = Key("k2")
    published["keys"].append(rotated)
    assert "does not publish" in await refused(verifier, rotated.sign())  # fetched less than 30 s ago
    assert "does not publish" in await refused(verifier, Key("k3").sign())
    assert published["fetches"] == 1
    clock[0] += 31
    assert (await verifier.verify(rotated.sign())).email == "alice@example.com"
    assert published["fetches"] == 2
    await keys.close()


async def test_keys_that_cannot_be_fetched_verify_nobody(published):
    published["status"] = 500
    keys = IapKeys(published["url"])
    with pytest.raises(KeysUnavailable):
        await IapVerifier(AUDIENCE, keys).verify(published["keys"][0].sign())
    await keys.close()
    no_audience = IapVerifier(None, IapKeys(published["url"]))
    with pytest.raises(KeysUnavailable):
        await no_audience.verify(published["keys"][0].sign())


def test_only_p256_keys_become_pems():
    assert jwk_to_pem(Key("a").jwk()).startswith("-----BEGIN PUBLIC KEY-----")
    assert jwk_to_pem({"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"}) is None
    assert jwk_to_pem({"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}) is None
    assert jwk_to_pem({"kty": "EC", "crv": "P-256", "x": "AA"}) is None
