"""The signing-key file: a private JWK set with one active key, a published next key and retiring keys.

Lifecycle (the same for the operator's scheduled signing-key rotation and ``authserver keys rotate``):
- ``new_document``: an active key that signs and a *next* key that is already published in JWKS, so that
  verifiers have cached it before it signs anything.
- ``rotate``: next becomes active, the old active key is *retiring* (published, never signs) and a new next
  key is generated; retiring keys are pruned once every token they signed has expired.

Document shape::

    {"active_kid": "...", "keys": [<private JWK>, ...], "retired_at": {"<kid>": <unix seconds>}}
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

SUPPORTED_ALGORITHMS = ("ES256", "RS256", "EdDSA")
# RFC 7638: the members of each key type that make its thumbprint.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    members = {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def generate_private_jwk(algorithm: str) -> dict[str, Any]:
    """A fresh private key as a JWK with ``kid`` (its RFC 7638 thumbprint), ``alg`` and ``use``."""
    if algorithm == "ES256":
        jwk = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True)
    elif algorithm == "RS256":
        jwk = RSAAlgorithm.to_jwk(
            rsa.generate_private_key(public_exponent=65537, key_size=2048), as_dict=True
        )
    elif algorithm == "EdDSA":
        jwk = OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate(), as_dict=True)
    else:
        raise ValueError(
            f"unsupported signing algorithm {algorithm!r}; use one of {', '.join(SUPPORTED_ALGORITHMS)}"
        )
    jwk.update(kid=jwk_thumbprint(jwk), alg=algorithm, use="sig")
    return jwk


def new_document(algorithm: str) -> dict[str, Any]:
    active, upcoming = generate_private_jwk(algorithm), generate_private_jwk(algorithm)
    return {"active_kid": active["kid"], "keys": [active, upcoming], "retired_at": {}}


def next_kid(document: dict[str, Any]) -> str | None:
    """The published key that will sign after the next signing-key rotation (neither active nor retiring)."""
    retired = document.get("retired_at", {})
    for key in document["keys"]:
        kid: str = key["kid"]
        if kid != document["active_kid"] and kid not in retired:
            return kid
    return None


def rotate(document: dict[str, Any], algorithm: str, now: float, retention_seconds: float) -> dict[str, Any]:
    """Promote the next key, retire the active one, publish a new next key, prune expired retirees.

    ``retention_seconds`` is how long a retired key must stay published: the longest lifetime of a token it
    may have signed (access and ID tokens), plus clock leeway.
    """
    promoted = next_kid(document)
    keys = list(document["keys"])
    if promoted is None or _algorithm_of(keys, promoted) != algorithm:
        fresh = generate_private_jwk(algorithm)
        keys.append(fresh)
        promoted = fresh["kid"]
    retired_at = dict(document.get("retired_at", {}))
    retired_at[document["active_kid"]] = now
    upcoming = generate_private_jwk(algorithm)
    keys.append(upcoming)
    return prune({"active_kid": promoted, "keys": keys, "retired_at": retired_at}, now, retention_seconds)


def prune(document: dict[str, Any], now: float, retention_seconds: float) -> dict[str, Any]:
    """Drop retired keys whose every token has expired; the result is a new document."""
    retired_at = document.get("retired_at", {})
    expired = {kid for kid, when in retired_at.items() if now - when > retention_seconds}
    expired.discard(document["active_kid"])
    return {
        "active_kid": document["active_kid"],
        "keys": [key for key in document["keys"] if key["kid"] not in expired],
        "retired_at": {kid: when for kid, when in retired_at.items() if kid not in expired},
    }


def validate_document(document: Any) -> None:
    """Raise ValueError with a readable message when a key file is not usable."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list) or not document["keys"]:
        raise ValueError("signing key file must be an object with a non-empty 'keys' list")
    kids = [key.get("kid") for key in document["keys"] if isinstance(key, dict)]
    if len(kids) != len(document["keys"]) or not all(isinstance(kid, str) and kid for kid in kids):
        raise ValueError("every signing key needs a 'kid'")
    if len(set(kids)) != len(kids):
        raise ValueError("signing key ids must be unique")
    if document.get("active_kid") not in kids:
        raise ValueError("'active_kid' must name one of the keys")
    for key in document["keys"]:
        if key.get("alg") not in SUPPORTED_ALGORITHMS:
            raise ValueError(f"key {key['kid']}: 'alg' must be one of {', '.join(SUPPORTED_ALGORITHMS)}")
        if "d" not in key:
            raise ValueError(f"key {key['kid']}: the private part ('d') is missing")


def _algorithm_of(keys: list[dict[str, Any]], kid: str) -> str | None:
    return next((key.get("alg") for key in keys if key["kid"] == kid), None)
