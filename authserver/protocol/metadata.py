"""Discovery documents: RFC 8414 authorization server metadata and OpenID Connect discovery."""

from __future__ import annotations

from typing import Any

from authserver.crypto.client_jwks import ASSERTION_ALGORITHMS
from authserver.protocol.authorization import PROMPT_VALUES
from authserver.protocol.claims import USER_CLAIMS

ENDPOINT_PATHS = {
    "authorization_endpoint": "/authorize",
    "token_endpoint": "/token",
    "revocation_endpoint": "/revoke",
    "introspection_endpoint": "/introspect",
    "userinfo_endpoint": "/userinfo",
    "jwks_uri": "/.well-known/jwks.json",
    "end_session_endpoint": "/logout",  # OpenID Connect RP-Initiated Logout 1.0 §2.1
}


def endpoints(issuer: str) -> dict[str, str]:
    return {name: f"{issuer}{path}" for name, path in ENDPOINT_PATHS.items()}


def authorization_server_metadata(
    issuer: str, grant_types: list[str], scopes: list[str], signing_algorithms: list[str]
) -> dict[str, Any]:
    # private_key_jwt: RFC 7523 §2.2 / OIDC Core §9. client_secret_jwt is not offered: it needs the secret in
    # plaintext to check the HMAC, and this server keeps only its hash.
    auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
    assertion_algorithms = list(ASSERTION_ALGORITHMS)
    return {
        "issuer": issuer,
        **endpoints(issuer),
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grant_types,
        "token_endpoint_auth_methods_supported": auth_methods,
        "revocation_endpoint_auth_methods_supported": auth_methods,
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        # RFC 8414 §2: the JWS algorithms private_key_jwt assertions may use at each endpoint.
        "token_endpoint_auth_signing_alg_values_supported": assertion_algorithms,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algorithms,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algorithms,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "service_documentation": "https://github.com/authyard/authyard",
        # OpenID Connect discovery members (the same document serves both).
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": signing_algorithms,
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "at_hash",
            *(claim for claim in USER_CLAIMS if claim != "sub"),
        ],
        # OIDC Core §5.5 (Discovery §3): the claims request parameter is honoured.
        "claims_parameter_supported": True,
        # OIDC Discovery §3: request_uri_parameter_supported defaults to true, so both are said (Core §6).
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "prompt_values_supported": list(PROMPT_VALUES),
        # OpenID Connect Back-Channel Logout 1.0 §2.1: logout tokens are POSTed to registered clients, and
        # always carry sid (every session has one).
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }
