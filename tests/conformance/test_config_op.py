"""``oidcc-config-certification-test-plan``: its one module, oidcc-discovery-endpoint-verification, each of
its conditions checked against a real ``authserver serve`` configured as in production, with an https issuer
(the workflow's HAProxy terminates TLS in front of the same plain-HTTP server; the module's https checks are
about the URLs the document names). The document is read through loopback HTTP; URLs under the issuer are
fetched there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest

from conformance.suite_config import suite_config
from harness.authserver import AuthServer, running_server

ISSUER = "https://op.authyard.test"
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# RFC 5646 language tags, as the module's locale syntax check reads them (RFC 8414 §2: *_locales_supported).
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*")
OIDC_RESPONSE_TYPES = {
    "code",
    "code id_token",
    "id_token",
    "token id_token",
    "code id_token token",
    "code token",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with running_server(tmp_path_factory.mktemp("oidcc-config"), AUTHSERVER_ISSUER=ISSUER) as running:
        yield running


def _local(server: AuthServer, url: str) -> str:
    """A URL the document names, reached on the test's loopback address."""
    assert url.startswith(ISSUER + "/"), url
    return server.base_url + url[len(ISSUER) :]


def _is_https_url(value: Any) -> bool:
    parts = urlsplit(value) if isinstance(value, str) else None
    return parts is not None and parts.scheme == "https" and bool(parts.netloc)


def test_oidcc_discovery_endpoint_verification(server: AuthServer) -> None:
    # The discovery URL the suite is given (conformance/suite_config.py): https, the well-known path.
    config = suite_config(
        ISSUER, {"client_id": "a", "client_secret": "s"}, {"client_id": "b", "client_secret": "t"}, "u", "p"
    )
    discovery_url = config["server"]["discoveryUrl"]
    assert _is_https_url(discovery_url) and discovery_url.endswith("/.well-known/openid-configuration")

    response = httpx.get(_local(server, discovery_url), timeout=15)
    assert response.status_code == 200  # OIDC Discovery §4
    assert response.headers["content-type"].split(";")[0].strip() == "application/json"
    metadata: dict[str, Any] = response.json()

    # OIDC Discovery §4.3, §7.2: the issuer is the discovery URL's prefix; RFC 8414 §2: https, no query
    # or fragment.
    assert metadata["issuer"] == discovery_url.removesuffix("/.well-known/openid-configuration")
    issuer = urlsplit(metadata["issuer"])
    assert issuer.scheme == "https" and not issuer.query and not issuer.fragment

    # Static clients: at least one OpenID response type (OIDC Discovery §3, Core §3).
    assert isinstance(metadata["response_types_supported"], list)
    assert OIDC_RESPONSE_TYPES & set(metadata["response_types_supported"])
    assert metadata["subject_types_supported"] and set(metadata["subject_types_supported"]) <= {
        "public",
        "pairwise",
    }
    # OIDC Discovery §3: RS256 MUST be included.
    assert "RS256" in metadata["id_token_signing_alg_values_supported"]
    if "userinfo_signing_alg_values_supported" in metadata:
        assert isinstance(metadata["userinfo_signing_alg_values_supported"], list)

    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint"):
        assert _is_https_url(metadata[name]), name
    if "registration_endpoint" in metadata:
        assert _is_https_url(metadata["registration_endpoint"])

    # jwks_uri: https, serving public signature keys only (RFC 7517 §4, RFC 7518 §6.3.2.1: no private parts,
    # no symmetric keys).
    assert _is_https_url(metadata["jwks_uri"])
    jwks = httpx.get(_local(server, metadata["jwks_uri"]), timeout=15)
    assert jwks.status_code == 200
    assert jwks.headers["content-type"].split(";")[0] in ("application/json", "application/jwk-set+json")
    keys = jwks.json()["keys"]
    assert keys
    private_members = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
    for key in keys:
        assert key["kty"] in ("RSA", "EC", "OKP") and not private_members & key.keys(), key.get("kid")
        jwt.PyJWK(key)  # parses as a usable public key

    # Informational in the module, stated plainly here: no request objects; the claims parameter is served
    # (OIDC Core §5.5), so the discovery document says so (OIDC Discovery §3).
    assert metadata["request_parameter_supported"] is False
    assert metadata["request_uri_parameter_supported"] is False
    assert "request_object_signing_alg_values_supported" not in metadata
    assert metadata["claims_parameter_supported"] is True

    # claims_supported is recommended (the module warns without it): an array naming at least sub.
    assert isinstance(metadata["claims_supported"], list) and "sub" in metadata["claims_supported"]
    # Static clients: grant_types_supported, when present, a non-empty array; ours names the code grant.
    assert metadata["grant_types_supported"] and "authorization_code" in metadata["grant_types_supported"]

    assert "openid" in metadata["scopes_supported"]
    assert all(SCOPE_TOKEN.fullmatch(scope) for scope in metadata["scopes_supported"])
    for name in ("ui_locales_supported", "claims_locales_supported"):
        for tag in metadata.get(name, []):
            assert LANGUAGE_TAG.fullmatch(tag), (name, tag)

    # Every endpoint the document names is https (the module's VerifyOPEndpointsUseHTTPS).
    endpoints = {name: value for name, value in metadata.items() if name.endswith(("_endpoint", "_uri"))}
    assert endpoints and all(_is_https_url(value) for value in endpoints.values()), endpoints

    # RFC 8414 §2, RFC 7636 §4.3: code_challenge_methods_supported is an array.
    assert isinstance(metadata["code_challenge_methods_supported"], list)
