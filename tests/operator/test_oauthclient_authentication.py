"""OAuthClient spec.authentication, the pure parts: what each method registers, what the credentials Secret
says, and what only the operator can judge (the JWK Set's keys, the AuthServer's trusted issuers)."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from authyard_operator.endpoints import endpoint_urls
from authyard_operator.reconcile.oauthclient import (
    AdminAccess,
    NotReady,
    Target,
    auth_method_data,
    check_issuer_trusted,
    jwks_config_map,
    public_jwks,
    registration,
    token_audience,
)
from authyard_operator.spec.authserver import AuthServerSpec
from authyard_operator.spec.oauthclient import OAuthClientSpec
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://auth.example.com"


def _client(**authentication: Any) -> OAuthClientSpec:
    spec: dict[str, Any] = {"authServerRef": {"name": "auth"}, "scopes": ["orders.read"]}
    if authentication:
        spec["authentication"] = authentication
    return OAuthClientSpec.model_validate(spec)


def _target(**workload_identity: Any) -> Target:
    return Target(
        name="auth",
        namespace="platform",
        spec=AuthServerSpec.model_validate({"workloadIdentity": workload_identity}),
        admin=AdminAccess("http://auth.platform.svc:8080", "t" * 32),
        issuer=ISSUER,
        endpoints=endpoint_urls(ISSUER),
    )


def _ec_public_jwk(kid: str = "k1") -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key)), "kid": kid}


def _auth_keys(body: dict[str, Any]) -> dict[str, Any]:
    keys = ("token_endpoint_auth_method", "jwks", "jwks_uri", "token_endpoint_auth_signing_alg")
    return {key: body[key] for key in (*keys, "workload_identity", "client_secret") if key in body}


def test_client_secret_is_the_default_and_registers_as_before() -> None:
    body = registration(_client(), "orders", "team-a")
    assert _auth_keys(body) == {}  # a confidential client's choice of either secret method
    assert not _client().secretless and not _client(method="ClientSecret").secretless
    pinned = OAuthClientSpec.model_validate(
        {"authServerRef": {"name": "auth"}, "tokenEndpointAuthMethod": "client_secret_post"}
    )
    assert _auth_keys(registration(pinned, "orders", "team-a")) == {
        "token_endpoint_auth_method": "client_secret_post"
    }


def test_private_key_jwt_registers_inline_keys_a_uri_or_the_config_maps_keys() -> None:
    key = _ec_public_jwk()
    inline = _client(method="PrivateKeyJWT", jwks={"keys": [key]}, signingAlgorithm="ES256")
    assert inline.secretless
    assert _auth_keys(registration(inline, "orders", "team-a")) == {
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key]},
        "token_endpoint_auth_signing_alg": "ES256",
    }
    remote = _client(method="PrivateKeyJWT", jwksUri="https://orders.example.com/jwks.json")
    assert _auth_keys(registration(remote, "orders", "team-a")) == {
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks_uri": "https://orders.example.com/jwks.json",
    }
    from_config_map = _client(method="PrivateKeyJWT", jwksConfigMapRef={"name": "keys", "key": "jwks.json"})
    assert registration(from_config_map, "orders", "team-a", jwks={"keys": [key]})["jwks"] == {"keys": [key]}
    with pytest.raises(ValueError, match="JWK Set read from it"):
        registration(from_config_map, "orders", "team-a")  # the reconcile must read the ConfigMap first


def test_service_account_registers_workload_identity_with_the_exact_subject() -> None:
    default = _client(method="ServiceAccount", serviceAccountName="orders-api")
    assert default.secretless
    assert _auth_keys(registration(default, "orders", "team-a")) == {
        "token_endpoint_auth_method": "workload_identity",
        "workload_identity": {"issuer": "kubernetes", "subject": "system:serviceaccount:team-a:orders-api"},
    }
    other = _client(method="ServiceAccount", serviceAccountName="orders-api", issuer="prod-cluster")
    assert registration(other, "orders", "team-b")["workload_identity"] == {
        "issuer": "prod-cluster",
        "subject": "system:serviceaccount:team-b:orders-api",
    }


def test_the_secret_says_how_to_authenticate_and_never_holds_a_secret_for_secretless_methods() -> None:
    target = _target(trustedIssuers=[{"name": "prod", "issuer": "https://k8s.prod.example.com",
                                      "audiences": ["https://auth.prod.example.com", "other"]}])  # fmt: skip
    assert auth_method_data(_client(), target) == {
        "token_endpoint_auth_method": "client_secret_basic",
        "OAUTH_TOKEN_ENDPOINT_AUTH_METHOD": "client_secret_basic",
    }
    assert auth_method_data(_client(method="PrivateKeyJWT", jwksUri="https://o.example.com/k"), target) == {
        "token_endpoint_auth_method": "private_key_jwt",
        "OAUTH_TOKEN_ENDPOINT_AUTH_METHOD": "private_key_jwt",
    }
    service_account = _client(method="ServiceAccount", serviceAccountName="orders-api")
    assert auth_method_data(service_account, target) == {
        "token_endpoint_auth_method": "workload_identity",
        "OAUTH_TOKEN_ENDPOINT_AUTH_METHOD": "workload_identity",
        "service_account_token_audience": ISSUER,  # the projected token's audience: the AuthServer
        "OAUTH_SERVICE_ACCOUNT_TOKEN_AUDIENCE": ISSUER,
    }
    prod = _client(method="ServiceAccount", serviceAccountName="orders-api", issuer="prod")
    assert token_audience(prod, target) == "https://auth.prod.example.com"  # what that issuer demands


def test_a_service_account_client_must_name_an_issuer_its_authserver_trusts() -> None:
    default = _client(method="ServiceAccount", serviceAccountName="orders-api")
    check_issuer_trusted(default, _target())  # the AuthServer's own cluster, trusted by default
    with pytest.raises(NotReady) as refused:
        check_issuer_trusted(default, _target(kubernetes={"enabled": False}))
    assert refused.value.reason == "IssuerNotTrusted" and refused.value.retry_after is None
    assert "'kubernetes'" in refused.value.message and "it trusts: none" in refused.value.message

    prod = _client(method="ServiceAccount", serviceAccountName="orders-api", issuer="prod")
    listed = _target(trustedIssuers=[{"name": "prod", "issuer": "https://k8s.prod.example.com"}])
    check_issuer_trusted(prod, listed)
    with pytest.raises(NotReady) as unknown:
        check_issuer_trusted(prod, _target())
    assert unknown.value.reason == "IssuerNotTrusted" and "it trusts: kubernetes" in unknown.value.message
    check_issuer_trusted(_client(), _target(kubernetes={"enabled": False}))  # other methods: no issuer


def test_public_jwks_applies_the_servers_own_rules() -> None:
    key = _ec_public_jwk()
    assert public_jwks({"keys": [key]}, "here") == {"keys": [key]}
    private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1())))
    weak_rsa = json.loads(
        jwt.algorithms.RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 1024).public_key())  # noqa: S505 - refused
    )
    for document, words in [
        ({"keys": [private]}, "private"),
        ({"keys": [weak_rsa]}, "2048"),
        ({"keys": []}, "no keys"),
        ([key], '"keys" array'),
        ({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, "private members (k)"),  # an HMAC secret
    ]:
        with pytest.raises(NotReady) as refused:
            public_jwks(document, "ConfigMap keys key 'jwks.json'")
        assert refused.value.reason == "JwksInvalid" and refused.value.retry_after is None
        assert refused.value.message.startswith("ConfigMap keys key 'jwks.json' is not a public JWK Set: ")
        assert words in refused.value.message
        assert str(private["d"]) not in refused.value.message  # a refusal never repeats a private member


def test_the_config_map_a_raw_spec_names_for_its_keys() -> None:
    reference = {"name": "orders-keys", "key": "jwks.json"}
    assert jwks_config_map(
        {"authentication": {"method": "PrivateKeyJWT", "jwksConfigMapRef": reference}}
    ) == ("orders-keys")
    assert (
        jwks_config_map({"authentication": {"method": "ClientSecret", "jwksConfigMapRef": reference}}) is None
    )
    assert jwks_config_map({"authentication": {"method": "PrivateKeyJWT", "jwksUri": "https://x"}}) is None
    assert jwks_config_map({"authentication": "nonsense"}) is None
    assert jwks_config_map({}) is None
