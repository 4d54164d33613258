"""How a client proves who it is at the token endpoint (RFC 6749 §2.3, RFC 7523 §2.2, OIDC Core §9).

Each method adds its credentials to the token request's form and headers; none keeps a secret anywhere but
in memory, and none puts one in an exception message.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import quote_plus

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from authyard_client.errors import ConfigurationError

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The signature algorithms the server accepts for client assertions; the key's type picks one by default.
_ALGORITHMS_BY_KEY = {"RSA": ("RS256", "PS256"), "EC": ("ES256",), "OKP": ("EdDSA",)}
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class ClientAuthentication(Protocol):
    """Adds a client's credentials to one token request."""

    @property
    def method(self) -> str: ...

    @property
    def client_id(self) -> str: ...

    def apply(self, form: dict[str, str], headers: dict[str, str], token_endpoint: str) -> None: ...


@dataclass(frozen=True)
class ClientSecretBasic:
    """HTTP Basic with the form-urlencoded client_id and secret (RFC 6749 §2.3.1)."""

    client_id: str
    client_secret: str = field(default="", repr=False)
    # A mounted Secret's client_secret file, read for each request so that a client-secret rotation the
    # operator writes into the Secret is picked up without a restart.
    secret_file: Path | None = None
    method: str = "client_secret_basic"

    def apply(self, form: dict[str, str], headers: dict[str, str], token_endpoint: str) -> None:
        # RFC 6749 §2.3.1: both parts are application/x-www-form-urlencoded before base64.
        pair = f"{quote_plus(self.client_id)}:{quote_plus(_secret(self.client_secret, self.secret_file))}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()


@dataclass(frozen=True)
class ClientSecretPost:
    """client_id and client_secret in the request body (RFC 6749 §2.3.1)."""

    client_id: str
    client_secret: str = field(default="", repr=False)
    secret_file: Path | None = None  # as for ClientSecretBasic
    method: str = "client_secret_post"

    def apply(self, form: dict[str, str], headers: dict[str, str], token_endpoint: str) -> None:
        form["client_id"] = self.client_id
        form["client_secret"] = _secret(self.client_secret, self.secret_file)


@dataclass(frozen=True)
class PrivateKeyJwt:
    """A JWT signed with the client's private key (RFC 7523 §2.2, §3; OIDC Core §9 private_key_jwt):
    iss = sub = client_id, aud = the token endpoint, a fresh jti, a short exp."""

    client_id: str
    key: SigningKey = field(repr=False)
    kid: str | None = None
    algorithm: str | None = None  # default: RS256 for RSA, ES256 for P-256, EdDSA for Ed25519
    lifetime_seconds: int = 60
    method: str = "private_key_jwt"

    def __post_init__(self) -> None:
        allowed = _ALGORITHMS_BY_KEY[_key_type(self.key)]
        if self.algorithm is None:
            object.__setattr__(self, "algorithm", allowed[0])
        elif self.algorithm not in allowed:
            raise ConfigurationError(f"a {_key_type(self.key)} key cannot sign {self.algorithm}")

    @classmethod
    def from_pem_file(
        cls, client_id: str, path: str | Path, *, kid: str | None = None, algorithm: str | None = None
    ) -> PrivateKeyJwt:
        try:
            loaded = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as error:
            raise ConfigurationError(
                f"cannot read a private key from {path}: {type(error).__name__}"
            ) from None
        if not isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
            raise ConfigurationError(f"{path}: only RSA, EC P-256 and Ed25519 keys sign client assertions")
        return cls(client_id, loaded, kid=kid, algorithm=algorithm)

    def assertion(self, audience: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "jti": secrets.token_urlsafe(24),  # RFC 7523 §3: the server spends each jti once
            "iat": now,
            "exp": now + self.lifetime_seconds,
        }
        headers = {"kid": self.kid} if self.kid else None
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers=headers)

    def apply(self, form: dict[str, str], headers: dict[str, str], token_endpoint: str) -> None:
        form["client_id"] = self.client_id
        form["client_assertion_type"] = JWT_BEARER
        form["client_assertion"] = self.assertion(token_endpoint)


@dataclass(frozen=True)
class WorkloadIdentity:
    """A token from an issuer the server trusts (a projected Kubernetes service-account token) sent as the
    client assertion (RFC 7523 §2.2). The file is read again for every request: the kubelet replaces it
    before it expires."""

    client_id: str
    token_file: Path
    method: str = "workload_identity"

    def read(self) -> str:
        try:
            token = self.token_file.read_text().strip()
        except OSError as error:
            raise ConfigurationError(
                f"cannot read the service-account token {self.token_file}: {error.strerror}"
            ) from None
        if not token:
            raise ConfigurationError(f"the service-account token file {self.token_file} is empty")
        return token

    def apply(self, form: dict[str, str], headers: dict[str, str], token_endpoint: str) -> None:
        form["client_id"] = self.client_id
        form["client_assertion_type"] = JWT_BEARER
        form["client_assertion"] = self.read()


def _secret(value: str, path: Path | None) -> str:
    if path is None:
        if not value:
            raise ConfigurationError("a client secret method needs client_secret or secret_file")
        return value
    try:
        secret = path.read_text().strip()
    except OSError as error:
        raise ConfigurationError(f"cannot read the client secret file {path}: {error.strerror}") from None
    if not secret:
        raise ConfigurationError(f"the client secret file {path} is empty")
    return secret


def _key_type(key: SigningKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise ConfigurationError("EC client keys must be P-256 (ES256)")
        return "EC"
    return "OKP"
