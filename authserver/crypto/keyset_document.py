"""The signing-key file: a private JWK set with, per algorithm, one active key, a published next key and
retiring keys.

One algorithm is the *primary*: its active key (``active_kid``) signs access tokens. Every algorithm in
``active_kids`` can sign ID tokens, because a client chooses its ID-token algorithm (OpenID Connect Dynamic
Client Registration §2, ``id_token_signed_response_alg``) and RS256 must always be available (OpenID
Connect Core §15.1).

Lifecycle (the same for the operator's scheduled signing-key rotation and ``authserver keys rotate``):
- ``new_document``: for each algorithm an active key that signs and a *next* key that is already published
  in JWKS, so that verifiers have cached it before it signs anything.
- ``rotate``: for each algorithm, next becomes active, the old active key is *retiring* (published, never
  signs) and a new next key is generated; retiring keys are pruned once every token they signed has expired.
- ``add_algorithms``: an algorithm the document lacks gets its active and next keys, nothing else changes
  (a document written before there were several algorithms gains RS256).

Document shape::

    {"active_kid": "...", "active_kids": {"<alg>": "<kid>", ...}, "keys": [<private JWK>, ...],
     "retired_at": {"<kid>": <unix seconds>}}

``active_kids`` is absent from a one-algorithm document (the shape before it existed); it then means
``{<alg of active_kid>: active_kid}``. A server that predates it reads ``active_kid`` and publishes every key.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

SUPPORTED_ALGORITHMS = ("ES256", "RS256", "EdDSA")
# OpenID Connect Core §15.1: an OP MUST support RS256 for ID tokens, so every key set can sign with it.
MANDATORY_ID_TOKEN_ALGORITHM = "RS256"  # noqa: S105 - an algorithm name
# RFC 7518 §3.3: RS256 keys of 2048 bits or more.
MIN_RSA_BITS = 2048
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


def algorithms_in_use(primary: str, *others: str) -> list[str]:
    """The algorithms a key set needs: the primary (access tokens) first, then RS256 and ``others``, once."""
    return list(dict.fromkeys((primary, MANDATORY_ID_TOKEN_ALGORITHM, *others)))


def new_document(primary: str, also: Iterable[str] = ()) -> dict[str, Any]:
    """A key set for ``primary`` (it signs access tokens) and each algorithm of ``also``: active and next."""
    active_kids: dict[str, str] = {}
    keys: list[dict[str, Any]] = []
    for algorithm in dict.fromkeys((primary, *also)):
        active, upcoming = generate_private_jwk(algorithm), generate_private_jwk(algorithm)
        active_kids[algorithm] = active["kid"]
        keys += [active, upcoming]
    return {"active_kid": active_kids[primary], "active_kids": active_kids, "keys": keys, "retired_at": {}}


def active_kids(document: dict[str, Any]) -> dict[str, str]:
    """The active key of each algorithm (a one-algorithm document: its ``active_kid``)."""
    explicit = document.get("active_kids")
    if isinstance(explicit, dict) and explicit:
        return dict(explicit)
    primary = _algorithm_of(document["keys"], document["active_kid"])
    return {primary: document["active_kid"]} if primary else {}


def next_kid(document: dict[str, Any], algorithm: str | None = None) -> str | None:
    """The published key of ``algorithm`` (default: the primary's) that will sign after the next
    signing-key rotation: neither active nor retiring."""
    algorithm = algorithm or _algorithm_of(document["keys"], document["active_kid"])
    retired = document.get("retired_at", {})
    active = set(active_kids(document).values()) | {document["active_kid"]}
    for key in document["keys"]:
        kid: str = key["kid"]
        if key.get("alg") == algorithm and kid not in active and kid not in retired:
            return kid
    return None


def rotate(
    document: dict[str, Any], primary: str, now: float, retention_seconds: float, also: Iterable[str] = ()
) -> dict[str, Any]:
    """For ``primary`` and each algorithm of ``also``: promote the next key, retire the active one, publish
    a new next key. An active algorithm no longer wanted retires its active key and drops its next key
    (it never signed). Then prune expired retirees.

    ``retention_seconds`` is how long a retired key must stay published: the longest lifetime of a token it
    may have signed (access and ID tokens), plus clock leeway.
    """
    wanted = list(dict.fromkeys((primary, *also)))
    current = active_kids(document)
    keys = list(document["keys"])
    retired_at = dict(document.get("retired_at", {}))
    # Next keys of algorithms no longer wanted: they never signed, so they go at once.
    unsigned = {next_kid(document, algorithm) for algorithm in current if algorithm not in wanted}
    promoted_kids: dict[str, str] = {}
    for algorithm in wanted:
        promoted = next_kid(document, algorithm)
        if promoted is None:
            fresh = generate_private_jwk(algorithm)
            keys.append(fresh)
            promoted = fresh["kid"]
        promoted_kids[algorithm] = promoted
        keys.append(generate_private_jwk(algorithm))
    for kid in current.values():
        retired_at[kid] = now
    retired_at[document["active_kid"]] = now
    rotated = {
        "active_kid": promoted_kids[primary],
        "active_kids": promoted_kids,
        "keys": [key for key in keys if key["kid"] not in unsigned],
        "retired_at": retired_at,
    }
    return prune(rotated, now, retention_seconds)


def add_algorithms(document: dict[str, Any], algorithms: Iterable[str]) -> dict[str, Any]:
    """The document with an active and a next key for each of ``algorithms`` it has no active key of;
    every existing key keeps its role. The result is a new document (the same content when none is missing).

    The new active key signs at once, without a rotation interval of being published first: until it
    exists, ID tokens asking for its algorithm are signed with the primary one, so a verifier meets a new
    ``kid`` either way, and finds it in JWKS when it refetches on an unknown ``kid``.
    """
    current = active_kids(document)
    keys = list(document["keys"])
    for algorithm in algorithms:
        if algorithm in current:
            continue
        active, upcoming = generate_private_jwk(algorithm), generate_private_jwk(algorithm)
        current[algorithm] = active["kid"]
        keys += [active, upcoming]
    return {
        "active_kid": document["active_kid"],
        "active_kids": current,
        "keys": keys,
        "retired_at": dict(document.get("retired_at", {})),
    }


def missing_algorithms(document: dict[str, Any], algorithms: Iterable[str]) -> list[str]:
    current = active_kids(document)
    return [algorithm for algorithm in algorithms if algorithm not in current]


def prune(document: dict[str, Any], now: float, retention_seconds: float) -> dict[str, Any]:
    """Drop retired keys whose every token has expired; the result is a new document."""
    retired_at = document.get("retired_at", {})
    expired = {kid for kid, when in retired_at.items() if now - when > retention_seconds}
    current = active_kids(document)
    expired -= set(current.values()) | {document["active_kid"]}
    pruned: dict[str, Any] = {"active_kid": document["active_kid"]}
    if "active_kids" in document:
        pruned["active_kids"] = current
    pruned["keys"] = [key for key in document["keys"] if key["kid"] not in expired]
    pruned["retired_at"] = {kid: when for kid, when in retired_at.items() if kid not in expired}
    return pruned


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
        if key["alg"] == "RS256" and _rsa_bits(key) < MIN_RSA_BITS:
            raise ValueError(f"key {key['kid']}: RS256 needs an RSA key of at least {MIN_RSA_BITS} bits")
    if "active_kids" in document:
        _validate_active_kids(document)


def _validate_active_kids(document: dict[str, Any]) -> None:
    explicit = document["active_kids"]
    if not isinstance(explicit, dict) or not explicit:
        raise ValueError("'active_kids' must map each algorithm to the kid of its active key")
    for algorithm, kid in explicit.items():
        if _algorithm_of(document["keys"], kid) != algorithm:
            raise ValueError(f"'active_kids': {algorithm} must name one of the keys of that algorithm")
    primary = _algorithm_of(document["keys"], document["active_kid"])
    if explicit.get(primary) != document["active_kid"]:
        raise ValueError(f"'active_kids' must name 'active_kid' as the active {primary} key")


def _rsa_bits(key: dict[str, Any]) -> int:
    modulus = key.get("n")
    if not isinstance(modulus, str):
        return 0
    try:
        raw = base64.urlsafe_b64decode(modulus + "=" * (-len(modulus) % 4))
    except ValueError:
        return 0
    return int.from_bytes(raw, "big").bit_length()


def _algorithm_of(keys: list[dict[str, Any]], kid: str) -> str | None:
    return next((key.get("alg") for key in keys if key["kid"] == kid), None)
