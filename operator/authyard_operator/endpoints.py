"""The issuer and the endpoint URLs applications use; the paths are the auth server's own."""

from __future__ import annotations

from authserver.protocol.metadata import ENDPOINT_PATHS
from authyard_operator.constants import HTTP_PORT
from authyard_operator.spec.authserver import AuthServerSpec

METADATA_PATH = "/.well-known/oauth-authorization-server"  # RFC 8414


def effective_issuer(name: str, namespace: str, spec: AuthServerSpec) -> str:
    """spec.issuer, or the in-cluster Service URL."""
    if spec.issuer:
        return spec.issuer.rstrip("/")
    return f"http://{name}.{namespace}.svc:{HTTP_PORT}"


def endpoint_urls(issuer: str) -> dict[str, str]:
    """status.endpoints"""
    return {
        "metadata": f"{issuer}{METADATA_PATH}",
        "token": f"{issuer}{ENDPOINT_PATHS['token_endpoint']}",
        "jwks": f"{issuer}{ENDPOINT_PATHS['jwks_uri']}",
        "authorization": f"{issuer}{ENDPOINT_PATHS['authorization_endpoint']}",
        "introspection": f"{issuer}{ENDPOINT_PATHS['introspection_endpoint']}",
        "revocation": f"{issuer}{ENDPOINT_PATHS['revocation_endpoint']}",
    }
