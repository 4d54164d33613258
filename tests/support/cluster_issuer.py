"""A Kubernetes cluster's service-account token issuer, emulated for workload identity tests.

Like the API server it serves ``/.well-known/openid-configuration`` and ``/openid/v1/jwks`` to callers with
a bearer token it accepts (the ``system:service-account-issuer-discovery`` role: any service account), and
nothing to anonymous ones (401). Its discovery document names the JWKS URI as the API server's does; its
JWK Set holds RSA keys with ``use: sig``, ``alg: RS256`` and a ``kid``. It mints tokens shaped like the
kubelet's projected service-account tokens (``iss``, ``sub = system:serviceaccount:<ns>:<name>``, ``aud``,
``exp``, ``iat``, ``nbf``, ``jti``, and the ``kubernetes.io`` claim with the namespace, the service account
and the pod), and rotates its signing keys the way an API server given a new key does: the new key signs,
the old one stays published until it is retired.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.client_assertions import public_jwk
from tests.support.jwks_server import QuietHandler, answer, serving_on_loopback

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"


@dataclass
class _Key:
    kid: str
    private: rsa.RSAPrivateKey


def _new_key() -> _Key:
    return _Key(uuid.uuid4().hex[:16], rsa.generate_private_key(public_exponent=65537, key_size=2048))


@dataclass
class ClusterIssuer:
    port: int = 0
    keys: list[_Key] = field(default_factory=list)  # published, oldest first; the last one signs
    # Bearer tokens the API server accepts for discovery (a service account's); empty: anonymous allowed.
    accepted_tokens: set[str] = field(default_factory=set)
    hits: dict[str, int] = field(default_factory=dict)  # path -> answered GETs (any status)
    authorizations: list[str | None] = field(default_factory=list)  # the Authorization header of each GET
    issuer_in_document: str | None = None  # None: the real issuer; else what discovery claims (a lie)
    scheme: str = "http"  # https: served with a certificate of a private CA (the cluster's)

    @property
    def issuer(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def signing_kid(self) -> str:
        return self.keys[-1].kid

    def rotate(self) -> str:
        """A new signing key, published beside the old ones; its kid."""
        self.keys.append(_new_key())
        return self.signing_kid

    def retire(self, kid: str) -> None:
        """Stop publishing ``kid`` (tokens it signed no longer verify)."""
        self.keys = [key for key in self.keys if key.kid != kid]

    def jwks(self) -> dict[str, Any]:
        return {
            "keys": [{**public_jwk(key.private, key.kid), "use": "sig", "alg": "RS256"} for key in self.keys]
        }

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer_in_document or self.issuer,
            "jwks_uri": f"{self.issuer}{JWKS_PATH}",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def token(
        self,
        namespace: str,
        service_account: str,
        audience: str | list[str],
        *,
        lifetime: int = 600,
        issued_at: int | None = None,
        kid: str | None = None,
        **overrides: Any,
    ) -> str:
        """A projected service-account token for a pod of ``service_account`` in ``namespace``, signed with
        the current key (or ``kid``'s). ``overrides`` replace claims; None leaves one out."""
        now = int(time.time()) if issued_at is None else issued_at
        claims: dict[str, Any] = {
            "aud": [audience] if isinstance(audience, str) else audience,
            "exp": now + lifetime,
            "iat": now,
            "iss": self.issuer,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": {
                "namespace": namespace,
                "node": {"name": "kind-worker", "uid": str(uuid.uuid4())},
                "pod": {"name": f"{service_account}-7d9c5b-x2x4q", "uid": str(uuid.uuid4())},
                "serviceaccount": {"name": service_account, "uid": str(uuid.uuid4())},
            },
            "nbf": now,
            "sub": f"system:serviceaccount:{namespace}:{service_account}",
        }
        claims.update(overrides)
        claims = {name: value for name, value in claims.items() if value is not None}
        key = next(key for key in self.keys if key.kid == (kid or self.signing_kid))
        return jwt.encode(claims, key.private, algorithm="RS256", headers={"kid": key.kid})


def _status(reason: str, code: int) -> dict[str, Any]:
    """The API server's error body (a metav1.Status)."""
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code}


@contextlib.contextmanager
def serving_cluster_issuer(
    accepted_tokens: set[str] | None = None, tls: ssl.SSLContext | None = None
) -> Iterator[ClusterIssuer]:
    state = ClusterIssuer(accepted_tokens=set(accepted_tokens or ()), scheme="https" if tls else "http")
    state.rotate()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            state.hits[self.path] = state.hits.get(self.path, 0) + 1
            authorization = self.headers.get("authorization")
            state.authorizations.append(authorization)
            scheme, _, presented = (authorization or "").partition(" ")
            accepted = scheme.lower() == "bearer" and presented in state.accepted_tokens
            if state.accepted_tokens and not accepted:
                self._answer(401, _status("Unauthorized", 401))
            elif self.path == DISCOVERY_PATH:
                self._answer(200, state.discovery())
            elif self.path == JWKS_PATH:
                self._answer(200, state.jwks(), "application/jwk-set+json")
            else:
                self._answer(404, _status("NotFound", 404))

        def _answer(self, status: int, document: dict[str, Any], kind: str = "application/json") -> None:
            answer(self, status, json.dumps(document).encode(), kind)

    with serving_on_loopback(Handler, tls) as port:
        state.port = port
        yield state
