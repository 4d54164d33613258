"""Tamper-proof values for cookies and hidden form fields: payload + expiry + HMAC-SHA256.

Used for the login session cookie and for carrying a validated authorization request through the
login and consent pages (so nothing the browser sends back can widen what was validated).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import orjson


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, key: bytes, purpose: str) -> None:
        # One derived key per purpose: a session cookie can never be replayed as a CSRF token or vice versa.
        self._key = hmac.new(key, purpose.encode(), hashlib.sha256).digest()

    def dumps(self, payload: dict[str, Any], ttl_seconds: float) -> str:
        body = _b64(orjson.dumps({"p": payload, "exp": int(time.time() + ttl_seconds)}))
        return f"{body}.{_b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())}"

    def derive(self, label: str, value: str) -> str:
        """A secret value derived from ``value`` (HMAC): recomputed when needed instead of being sent to the
        browser (the upstream sign-in's nonce and PKCE verifier, from its state)."""
        return _b64(hmac.new(self._key, f"{label}\x00{value}".encode(), hashlib.sha256).digest())

    def loads(self, value: str | None) -> dict[str, Any] | None:
        """The payload, or None when the value is missing, forged, malformed or expired."""
        if not value or value.count(".") != 1:
            return None
        body, signature = value.split(".")
        expected = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(signature, expected):
            return None
        try:
            decoded = orjson.loads(_unb64(body))
        except (ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(decoded, dict) or decoded.get("exp", 0) < time.time():
            return None
        payload = decoded.get("p")
        return payload if isinstance(payload, dict) else None
