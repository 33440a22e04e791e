"""Keyed MACs over what the operator vouches for: one construction for every seal it makes.

Admission seals what it admitted, the operator seals what it wrote to IAM and how a request
ended, and every binding it writes carries a MAC over the request it belongs to. All of them
are HMAC-SHA256 with the attestation key over a purpose and the parts, so a seal made for one
purpose (or one object) never verifies for another. Without the key, nobody can make one.
"""

from __future__ import annotations

import hashlib
import hmac
import json


def mac(key: bytes, purpose: str, *parts: object, length: int = 64) -> str:
    """The first `length` hex digits of HMAC-SHA256(key, [purpose, *parts] as canonical JSON)."""
    message = json.dumps([purpose, *parts], sort_keys=True, separators=(",", ":"), default=str).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:length]


def verify(key: bytes, seal: object, purpose: str, *parts: object, length: int = 64) -> bool:
    """Does `seal` (as `mac` made it, with the same `length`) vouch for these parts?"""
    if not key or not isinstance(seal, str) or len(seal) != length:
        return False
    return hmac.compare_digest(seal, mac(key, purpose, *parts, length=length))


def digest(*parts: object) -> str:
    """An unkeyed SHA-256 of the parts (canonical JSON): what an approval says it saw."""
    text = json.dumps(list(parts), sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
