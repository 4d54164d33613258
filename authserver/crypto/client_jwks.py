"""A client's public keys for private_key_jwt (RFC 7523 §2.2, OIDC Core §9): a JWK Set (RFC 7517 §5) as
registered inline (``jwks``) or served at the client's ``jwks_uri``, checked to hold public signing keys only.

A key is usable with the algorithms its type allows (``ALGORITHMS_BY_KEY``): never ``none``, never HMAC, so
a public key can never serve as an HMAC secret (the "alg confusion" attack).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

# The JWS algorithms a client assertion may use, per key type (and curve): RFC 7518 §3, RFC 8037 §3.1.
ASSERTION_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
_ALGORITHMS_BY_KEY: dict[tuple[str, str | None], tuple[str, ...]] = {
    ("RSA", None): ("RS256", "PS256"),
    ("EC", "P-256"): ("ES256",),
    ("OKP", "Ed25519"): ("EdDSA",),
}
# RFC 7517 §9.2 / RFC 7518 §6: members that only private (or symmetric) keys have.
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
MAX_KEYS = 16
_MIN_RSA_BITS = 2048  # RFC 7518 §3.3


class InvalidJwks(ValueError):
    """The document is not a JWK Set of public signing keys; the message says why (it holds no secret)."""


def algorithms_for(key: Mapping[str, Any]) -> tuple[str, ...]:
    """The assertion algorithms this (already checked) key can verify."""
    kty, curve = key.get("kty"), key.get("crv") if key.get("kty") != "RSA" else None
    if not isinstance(kty, str) or not isinstance(curve, str | None):  # a JSON array or object is no type
        return ()
    return _ALGORITHMS_BY_KEY.get((kty, curve), ())


def parse_jwks_text(text: str | bytes) -> tuple[dict[str, Any], ...]:
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise InvalidJwks("not JSON") from None
    return check_public_jwks(document)


def check_public_jwks(document: object) -> tuple[dict[str, Any], ...]:
    """The keys of ``document`` if it is a JWK Set of public RSA, P-256 or Ed25519 signing keys."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise InvalidJwks('a JWK Set is an object with a "keys" array (RFC 7517 §5)')
    keys: Sequence[object] = document["keys"]
    if not keys:
        raise InvalidJwks("the JWK Set has no keys")
    if len(keys) > MAX_KEYS:
        raise InvalidJwks(f"the JWK Set has more than {MAX_KEYS} keys")
    checked = tuple(_check_key(index, key) for index, key in enumerate(keys))
    kids = [key["kid"] for key in checked if "kid" in key]
    if len(kids) != len(set(kids)):
        raise InvalidJwks("two keys have the same kid")
    return checked


def _check_key(index: int, key: object) -> dict[str, Any]:
    where = f"key {index}"
    if not isinstance(key, dict):
        raise InvalidJwks(f"{where} is not an object")
    private = [member for member in _PRIVATE_MEMBERS if member in key]
    if private:
        raise InvalidJwks(f"{where} has private members ({', '.join(private)}): register public keys only")
    if "kid" in key and (not isinstance(key["kid"], str) or not key["kid"] or len(key["kid"]) > 255):
        raise InvalidJwks(f"{where}: kid must be a non-empty string")
    where = f"key {key['kid']!r}" if isinstance(key.get("kid"), str) else where
    algorithms = algorithms_for(key)
    if not algorithms:
        raise InvalidJwks(f"{where}: only RSA, EC P-256 and OKP Ed25519 keys are accepted")
    if key.get("use", "sig") != "sig":
        raise InvalidJwks(f"{where}: use must be sig")
    if "alg" in key and key["alg"] not in algorithms:
        raise InvalidJwks(f"{where}: alg must be one of {', '.join(algorithms)} for this key type")
    try:
        loaded = jwt.PyJWK(key, algorithm=algorithms[0])
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
        raise InvalidJwks(f"{where} is not a valid public key") from None
    if isinstance(loaded.key, rsa.RSAPublicKey) and loaded.key.key_size < _MIN_RSA_BITS:
        raise InvalidJwks(f"{where}: RSA keys need at least {_MIN_RSA_BITS} bits")
    return dict(key)
