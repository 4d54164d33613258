"""private_key_jwt test material: client key pairs, their public JWKs, and assertions signed the right way or
in one of the ways a server must refuse (RFC 7523 §3, OIDC Core §9)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_OMIT = object()


@functools.cache
def rsa_key(number: int = 0) -> rsa.RSAPrivateKey:
    """RSA keys are slow to make: a few, made once per test session (``number`` tells them apart)."""
    del number
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def public_jwk(private: PrivateKey, kid: str | None = None) -> dict[str, Any]:
    public = private.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(public))
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = json.loads(ECAlgorithm.to_jwk(public))
    else:
        jwk = json.loads(OKPAlgorithm.to_jwk(public))
    if kid is not None:
        jwk["kid"] = kid
    return jwk


def private_pem(private: PrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(private: PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def claims_for(client_id: str, audience: str | list[str], **overrides: Any) -> dict[str, Any]:
    """Good claims for ``client_id``; an override of None leaves that claim out."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def sign(
    private: PrivateKey,
    algorithm: str,
    client_id: str,
    audience: str | list[str],
    kid: str | None = None,
    **claims: Any,
) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(
        claims_for(client_id, audience, **claims), private, algorithm=algorithm, headers=headers
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(client_id: str, audience: str, kid: str | None = None) -> str:
    """alg none (RFC 7519 §6): no signature at all."""
    header = {"alg": "none", "typ": "JWT", **({"kid": kid} if kid else {})}
    payload = claims_for(client_id, audience)
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}."


def hmac_with(secret: bytes, client_id: str, audience: str, kid: str | None = None) -> str:
    """HS256 keyed with ``secret`` (the alg-confusion attack keys it with the client's public key bytes)."""
    header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
    signing_input = (
        f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims_for(client_id, audience)).encode())}"
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"
