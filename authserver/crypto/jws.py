"""Compact JWS for the tokens this server signs and verifies, and for the JWTs other parties sign for it
(client assertions, trusted issuers' tokens): one parse, no generic machinery.

PyJWT verifies any JWT from anywhere, and pays for it on every call (two parses to read the header first,
a per-character base64url check, stdlib json, algorithm lookups). Here the set of keys and algorithms is
ours: for our tokens the key comes from the ``kid`` and its algorithm from the key, never from the token (no
alg confusion, no ``none``); for another party's (``verify_signed``) the caller picks the key and its one
algorithm from an allow-list of asymmetric ones, and the header must name it. The header of each (key, typ)
is serialised once; claims go through orjson; ``cryptography`` signs and verifies directly (ES256 as raw
r||s, RFC 7518 §3.4; PS256 with a salt as long as the hash, §3.5). Errors are PyJWT's exception types, so
callers and tests keep catching ``jwt.PyJWTError``. PyJWT verifies what this signs, and this verifies what
PyJWT signs (tests/authserver/test_jws.py). JWKs are still read by PyJWT (``jwt.PyJWK``).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Collection, Iterable
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from jwt.exceptions import (
    DecodeError,
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidKeyError,
    InvalidSignatureError,
    InvalidTokenError,
    MissingRequiredClaimError,
)

# Three base64url segments (no padding) and nothing else: checked once, by a compiled regex.
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_ES256_SIGNATURE_BYTES = 64
_SHA256 = hashes.SHA256()
_ECDSA_SHA256 = ec.ECDSA(_SHA256)
_PKCS1V15 = padding.PKCS1v15()
# RFC 7518 §3.5: MGF1 with SHA-256 and a salt as long as the hash.
_PSS_SHA256 = padding.PSS(mgf=padding.MGF1(_SHA256), salt_length=_SHA256.digest_size)


# Which key objects each algorithm may use: ours sign (private keys), others' are verified (public keys).
_KeyTypes = dict[str, type[Any] | tuple[type[Any], ...]]
_PRIVATE_KEY_TYPES: _KeyTypes = {
    "ES256": ec.EllipticCurvePrivateKey,
    "RS256": rsa.RSAPrivateKey,
    "EdDSA": (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey),
}
_PUBLIC_KEY_TYPES: _KeyTypes = {
    "ES256": ec.EllipticCurvePublicKey,
    "RS256": rsa.RSAPublicKey,
    "PS256": rsa.RSAPublicKey,
    "EdDSA": (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey),
}


def _require_fit(alg: str, key: Any, key_types: _KeyTypes, where: str) -> None:
    """InvalidKeyError unless ``key`` is of a type ``alg`` is used with (ES256: on P-256, RFC 7518 §3.4)."""
    expected = key_types.get(alg)
    if expected is None or not isinstance(key, expected):
        raise InvalidKeyError(f"{where}{alg} does not fit a {type(key).__name__}")
    if alg == "ES256" and not isinstance(key.curve, ec.SECP256R1):
        raise InvalidKeyError(f"{where}ES256 needs a P-256 key")


def b64url_encode(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def b64url_decode(segment: str) -> bytes:
    """A segment already known to be base64url characters only; raises DecodeError on a bad length."""
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise DecodeError("invalid base64url segment") from None


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(b64url_decode(segment))
    except orjson.JSONDecodeError:
        raise DecodeError(f"the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise DecodeError(f"the {what} is not a JSON object")
    return value


class JwsKey:
    """One signing key: signs with its private half, verifies with its public half, one algorithm."""

    def __init__(self, kid: str, alg: str, private_key: Any) -> None:
        _require_fit(alg, private_key, _PRIVATE_KEY_TYPES, f"key {kid}: ")
        self.kid = kid
        self.alg = alg
        self.private_key = private_key
        self.public_key = private_key.public_key()
        self._headers: dict[str, bytes] = {}

    def _header(self, typ: str) -> bytes:
        header = self._headers.get(typ)
        if header is None:
            header = b64url_encode(orjson.dumps({"alg": self.alg, "kid": self.kid, "typ": typ})) + b"."
            self._headers[typ] = header
        return header

    def sign(self, claims: dict[str, Any], typ: str) -> str:
        signing_input = self._header(typ) + b64url_encode(orjson.dumps(claims))
        if self.alg == "ES256":
            r, s = decode_dss_signature(self.private_key.sign(signing_input, _ECDSA_SHA256))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        elif self.alg == "RS256":
            signature = self.private_key.sign(signing_input, _PKCS1V15, _SHA256)
        else:
            signature = self.private_key.sign(signing_input)
        return (signing_input + b"." + b64url_encode(signature)).decode()

    def signature_matches(self, signing_input: bytes, signature: bytes) -> bool:
        return _signature_matches(self.alg, self.public_key, signing_input, signature)


class VerificationKey:
    """Another party's public key (a client's, a trusted issuer's) and the one algorithm it is used with
    here: the lean verify path for the JWTs they sign (``verify_signed``)."""

    def __init__(self, alg: str, public_key: Any) -> None:
        _require_fit(alg, public_key, _PUBLIC_KEY_TYPES, "")
        self.alg = alg
        self.public_key = public_key

    def signature_matches(self, signing_input: bytes, signature: bytes) -> bool:
        return _signature_matches(self.alg, self.public_key, signing_input, signature)


def _signature_matches(alg: str, public_key: Any, signing_input: bytes, signature: bytes) -> bool:
    try:
        if alg == "ES256":
            if len(signature) != _ES256_SIGNATURE_BYTES:  # RFC 7518 §3.4: r || s, 32 octets each
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            public_key.verify(der, signing_input, _ECDSA_SHA256)
        elif alg == "RS256":
            public_key.verify(signature, signing_input, _PKCS1V15, _SHA256)
        elif alg == "PS256":
            public_key.verify(signature, signing_input, _PSS_SHA256, _SHA256)
        else:
            public_key.verify(signature, signing_input)
    except (InvalidSignature, ValueError):
        return False
    return True


def _numeric(claims: dict[str, Any], name: str) -> float:
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DecodeError(f"the {name} claim must be a number")
    return float(value)


def verify(
    token: str,
    keys: dict[str, JwsKey],
    *,
    typ: str | None = None,
    issuer: str | None = None,
    audience: str | None = None,
    verify_aud: bool = True,
    require: Iterable[str] = (),
    verify_exp: bool = True,
    leeway: float = 0,
    now: float | None = None,
) -> dict[str, Any]:
    """The claims of ``token`` if one of ``keys`` signed it and every check passes; raises a
    ``jwt.InvalidTokenError`` subclass otherwise.

    Checks: compact form and base64url; a known ``kid``; the header's ``alg`` equals that key's algorithm;
    no ``crit``; ``typ`` when asked; the signature; ``require``d claims; ``exp`` (unless ``verify_exp`` is
    off), ``nbf`` and ``iat`` against the clock with ``leeway``; ``iss``; ``aud`` like PyJWT (a token
    with an audience needs an expected one unless ``verify_aud`` is off).
    """
    header_segment, payload_segment, signature_segment = _segments(token)
    header = _json_object(header_segment, "header")
    kid = header.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidKeyError("unknown kid")
    _check_header(header, key.alg, typ)
    if not key.signature_matches(
        f"{header_segment}.{payload_segment}".encode(), b64url_decode(signature_segment)
    ):
        raise InvalidSignatureError("signature verification failed")
    claims = _json_object(payload_segment, "payload")
    audiences = None if audience is None else (audience,)
    _check_claims(claims, require, verify_exp, leeway, now, issuer, verify_aud, audiences)
    return claims


def verify_signed(
    token: str,
    key: VerificationKey,
    *,
    issuer: str,
    audiences: Collection[str],
    require: Iterable[str] = (),
    leeway: float = 0,
    now: float | None = None,
) -> dict[str, Any]:
    """The claims of a JWT another party signed with ``key`` (its algorithm chosen by the caller from an
    allow-list), with the checks of ``verify``: the header's ``alg``, no ``crit``, the signature, ``require``d
    claims, ``exp``/``nbf``/``iat`` with ``leeway``, ``iss`` equal to ``issuer`` and ``aud`` holding one of
    ``audiences`` (RFC 7519 §4.1.3: a string or an array of strings). Raises a ``jwt.InvalidTokenError``
    subclass, as PyJWT's decode would."""
    header_segment, payload_segment, signature_segment = _segments(token)
    _check_header(_json_object(header_segment, "header"), key.alg, None)
    if not key.signature_matches(
        f"{header_segment}.{payload_segment}".encode(), b64url_decode(signature_segment)
    ):
        raise InvalidSignatureError("signature verification failed")
    claims = _json_object(payload_segment, "payload")
    _check_claims(claims, require, True, leeway, now, issuer, True, tuple(audiences))
    return claims


def _segments(token: str) -> list[str]:
    if not isinstance(token, str) or _COMPACT.fullmatch(token) is None:
        raise DecodeError("not a compact JWS")
    return token.split(".")


def _check_header(header: dict[str, Any], alg: str, typ: str | None) -> None:
    # The algorithm is the key's, never the token's choice (RFC 8725 §3.1): a mismatch is refused.
    if header.get("alg") != alg:
        raise InvalidAlgorithmError("the token's alg is not its key's algorithm")
    if "crit" in header:  # RFC 7515 §4.1.11: extensions this code does not understand must be refused
        raise DecodeError("critical header parameters are not supported")
    if typ is not None and header.get("typ") != typ:
        raise InvalidTokenError(f"the token's typ is not {typ}")


def _check_claims(
    claims: dict[str, Any],
    require: Iterable[str],
    verify_exp: bool,
    leeway: float,
    now: float | None,
    issuer: str | None,
    verify_aud: bool,
    audiences: tuple[str, ...] | None,
) -> None:
    for name in require:
        if name not in claims:
            raise MissingRequiredClaimError(name)
    moment = time.time() if now is None else now
    if "exp" in claims:
        expires = _numeric(claims, "exp")
        if verify_exp and expires <= moment - leeway:
            raise ExpiredSignatureError("the token has expired")
    if "nbf" in claims and _numeric(claims, "nbf") > moment + leeway:
        raise ImmatureSignatureError("the token is not yet valid (nbf)")
    if "iat" in claims and _numeric(claims, "iat") > moment + leeway:
        raise ImmatureSignatureError("the token is not yet valid (iat)")
    if issuer is not None:
        if "iss" not in claims:
            raise MissingRequiredClaimError("iss")
        if claims["iss"] != issuer:
            raise InvalidIssuerError("invalid issuer")
    if not verify_aud or ("aud" not in claims and audiences is None):
        return
    presented = claims.get("aud")
    if isinstance(presented, str):
        presented = [presented]
    if not isinstance(presented, list) or not all(isinstance(value, str) for value in presented):
        raise InvalidAudienceError("invalid claim format in token (aud)")
    if audiences is None or not any(value in presented for value in audiences):
        raise InvalidAudienceError("invalid audience")
