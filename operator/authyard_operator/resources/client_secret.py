"""The Secret an application mounts: its client's credentials and where to use them.

Keys: ``client_id``, ``client_secret``, ``issuer``, ``token_endpoint``, ``jwks_uri``, ``scope``,
``audience``, ``token_endpoint_auth_method``, and the same as environment-style ``OAUTH_*`` keys (``envFrom``
ready). A secretless client (private_key_jwt, workload_identity) gets no ``client_secret``; a
workload-identity client also gets ``service_account_token_audience``, the audience its pods' projected
service-account token must be issued for. During a
client-secret rotation the new secret is staged under ``next_client_secret`` before it is registered, so a
crash at any point can be resumed without losing a secret or inventing a second one.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import Any

from authyard_operator.constants import GROUP
from authyard_operator.resources.meta import labels

CLIENT_SECRET_KEY = "client_secret"  # noqa: S105 - a key name
STAGED_SECRET_KEY = "next_client_secret"  # noqa: S105 - a key name
ROTATION_HANDLED_ANNOTATION = f"{GROUP}/rotation-handled"
LAST_ROTATION_ANNOTATION = f"{GROUP}/last-rotation"
ROTATE_ANNOTATION = f"{GROUP}/rotate-secret"
COMPONENT = "oauth-client-credentials"


def generate_client_secret() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


@dataclass(frozen=True)
class Connection:
    """Where the application gets and verifies tokens."""

    issuer: str
    token_endpoint: str
    jwks_uri: str


def decoded_data(secret: dict[str, Any] | None) -> dict[str, str]:
    """The Secret's data, decoded; undecodable values are dropped (treated as absent)."""
    result = {}
    for key, value in ((secret or {}).get("data") or {}).items():
        try:
            result[key] = base64.b64decode(value, validate=True).decode()
        except (ValueError, TypeError):
            continue
    return result


def connection_data(
    client_id: str, connection: Connection, scopes: list[str], audiences: list[str]
) -> dict[str, str]:
    scope, audience = " ".join(scopes), " ".join(audiences)
    return {
        "client_id": client_id,
        "issuer": connection.issuer,
        "token_endpoint": connection.token_endpoint,
        "jwks_uri": connection.jwks_uri,
        "scope": scope,
        "audience": audience,
        "OAUTH_CLIENT_ID": client_id,
        "OAUTH_ISSUER": connection.issuer,
        "OAUTH_TOKEN_URL": connection.token_endpoint,
        "OAUTH_JWKS_URI": connection.jwks_uri,
        "OAUTH_SCOPE": scope,
        "OAUTH_AUDIENCE": audience,
    }


def authentication_data(method: str, token_audience: str | None = None) -> dict[str, str]:
    """How the application authenticates (the server's token_endpoint_auth_method) and, for workload
    identity, the audience of the projected service-account token it sends."""
    data = {"token_endpoint_auth_method": method, "OAUTH_TOKEN_ENDPOINT_AUTH_METHOD": method}
    if token_audience is not None:
        data["service_account_token_audience"] = token_audience
        data["OAUTH_SERVICE_ACCOUNT_TOKEN_AUDIENCE"] = token_audience
    return data


def render_credentials_secret(
    name: str,
    namespace: str,
    instance: str,
    data: dict[str, str],
    annotations: dict[str, str],
    existing: dict[str, Any] | None,
) -> dict[str, Any]:
    """The full Secret (replaced as a whole: the operator owns every key of a Generate-policy Secret)."""
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": labels(instance, COMPONENT),
        "annotations": annotations,
    }
    if existing is not None:
        metadata["resourceVersion"] = existing["metadata"]["resourceVersion"]  # optimistic concurrency
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": encode(data),
    }


def encode(data: dict[str, str]) -> dict[str, str]:
    return {key: base64.b64encode(value.encode()).decode() for key, value in sorted(data.items())}


def with_secret(data: dict[str, str], secret: str) -> dict[str, str]:
    return {**data, CLIENT_SECRET_KEY: secret, "OAUTH_CLIENT_SECRET": secret}


def controlled_by(secret: dict[str, Any], owner_uid: str) -> bool:
    return any(
        ref.get("uid") == owner_uid and ref.get("controller")
        for ref in secret["metadata"].get("ownerReferences", [])
    )
