"""Authyard's client kit: access tokens for workloads, and their verification at resource servers.

It depends on httpx and PyJWT only; :mod:`authyard_client.resource_server` needs Starlette (or FastAPI), and
metrics are exported when prometheus_client is installed. It imports nothing of the server or the operator.
"""

from authyard_client.client_auth import (
    JWT_BEARER,
    ClientAuthentication,
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    WorkloadIdentity,
)
from authyard_client.errors import (
    BearerTokenError,
    ClientKitError,
    ConfigurationError,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    TokenRequestError,
    TokenUnavailable,
    VerifierUnavailable,
)
from authyard_client.httpx_auth import BearerAuth
from authyard_client.metrics import RefreshStats
from authyard_client.refresh import AccessToken, RefreshPolicy
from authyard_client.settings import ClientSettings
from authyard_client.token_source import AsyncTokenSource, TokenSource
from authyard_client.verifier import DEFAULT_ALGORITHMS, TokenVerifier, VerifiedToken

__all__ = [
    "DEFAULT_ALGORITHMS",
    "JWT_BEARER",
    "AccessToken",
    "AsyncTokenSource",
    "BearerAuth",
    "BearerTokenError",
    "ClientAuthentication",
    "ClientKitError",
    "ClientSecretBasic",
    "ClientSecretPost",
    "ClientSettings",
    "ConfigurationError",
    "InsufficientScope",
    "InvalidRequest",
    "InvalidToken",
    "PrivateKeyJwt",
    "RefreshPolicy",
    "RefreshStats",
    "TokenRequestError",
    "TokenSource",
    "TokenUnavailable",
    "TokenVerifier",
    "VerifiedToken",
    "VerifierUnavailable",
    "WorkloadIdentity",
]
