"""The pure parts of OAuthClient reconciliation: tenancy policy, credentials Secret, registration body."""

from __future__ import annotations

import base64

import pytest
from authyard_operator.reconcile.oauthclient import client_id_for, registration
from authyard_operator.resources import client_secret as cs
from authyard_operator.spec.authserver import ClientPolicy
from authyard_operator.spec.oauthclient import OAuthClientSpec
from authyard_operator.tenancy import policy_violations
from pydantic import ValidationError


def _client(**fields: object) -> OAuthClientSpec:
    return OAuthClientSpec.model_validate({"authServerRef": {"name": "auth"}, **fields})


def test_default_policy_admits_only_the_authservers_own_namespace() -> None:
    policy = ClientPolicy()
    assert policy_violations(policy, "platform", "platform", _client()) == []
    problems = policy_violations(policy, "team-a", "platform", _client())
    assert len(problems) == 1 and "team-a" in problems[0] and "allowedNamespaces" in problems[0]


def test_policy_lists_every_refusal() -> None:
    policy = ClientPolicy.model_validate({
        "allowedNamespaces": ["team-a"], "allowedGrantTypes": ["client_credentials"],
        "allowedScopes": ["orders.read"], "allowedAudiences": ["https://orders.example.com"],
    })  # fmt: skip
    spec = _client(
        type="confidential", grantTypes=["client_credentials", "authorization_code"],
        redirectUris=["https://app.example.com/cb"], scopes=["orders.read", "admin"],
        audiences=["https://billing.example.com"],
    )  # fmt: skip
    problems = policy_violations(policy, "team-a", "platform", spec)
    assert [p.split(":")[0] for p in problems] == [
        "grant types not allowed by the AuthServer", "scopes not allowed by the AuthServer",
        "audiences not allowed by the AuthServer",
    ]  # fmt: skip
    assert "authorization_code" in problems[0] and "admin" in problems[1] and "billing" in problems[2]
    assert (
        policy_violations(ClientPolicy.model_validate({"allowedNamespaces": ["*"]}), "x", "y", _client())
        == []
    )


def test_credentials_secret_carries_connection_details_in_both_spellings() -> None:
    info = cs.connection_data(
        "team-a.orders",
        cs.Connection(
            "https://auth.example.com", "https://auth.example.com/token", "https://auth.example.com/jwks"
        ),
        ["orders.read", "orders.write"],
        ["https://orders.example.com"],
    )
    secret = cs.render_credentials_secret(
        "orders-oauth", "team-a", "orders", cs.with_secret(info, "s" * 43), {}, None
    )
    data = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert data["client_id"] == data["OAUTH_CLIENT_ID"] == "team-a.orders"
    assert data["client_secret"] == data["OAUTH_CLIENT_SECRET"] == "s" * 43
    assert data["token_endpoint"] == data["OAUTH_TOKEN_URL"] == "https://auth.example.com/token"
    assert (
        data["scope"] == "orders.read orders.write" and data["OAUTH_AUDIENCE"] == "https://orders.example.com"
    )
    assert "resourceVersion" not in secret["metadata"]
    assert cs.decoded_data(secret) == data


def test_replacing_an_existing_secret_carries_its_resource_version() -> None:
    existing = {"metadata": {"name": "x", "resourceVersion": "42"}, "data": {"client_secret": "!!not base64"}}
    assert cs.decoded_data(existing) == {}  # undecodable means absent, never a crash
    secret = cs.render_credentials_secret("x", "ns", "x", {"client_id": "a"}, {}, existing)
    assert secret["metadata"]["resourceVersion"] == "42"


def test_generated_secrets_are_256_bit_and_distinct() -> None:
    secrets = {cs.generate_client_secret() for _ in range(100)}
    assert len(secrets) == 100 and all(len(s) >= 43 for s in secrets)


def test_a_clients_rate_limit_reaches_the_registration_and_leaves_it() -> None:
    limited = registration(_client(rateLimit={"requestsPerSecond": 2.5, "burst": 5}), "batch", "a")
    assert limited["rate_limit"] == {"requests_per_second": 2.5, "burst": 5}
    # Absent from the PUT: the server drops the client's own limit, and the AuthServer's default applies.
    assert "rate_limit" not in registration(_client(), "batch", "a")


def test_registration_body_follows_the_spec() -> None:
    body = registration(
        _client(
            type="public",
            grantTypes=["authorization_code"],
            redirectUris=["https://app.example.com/cb"],
            scopes=["openid"],
        ),
        "spa",
        "team-b",
    )
    assert body == {
        "name": "team-b/spa",
        "type": "public",
        "grant_types": ["authorization_code"],
        "scopes": ["openid"],
        "audiences": [],
        "redirect_uris": ["https://app.example.com/cb"],
        "token_endpoint_auth_method": "none",
    }
    assert registration(_client(accessTokenTTL="5m"), "m2m", "a")["access_token_ttl"] == "5m"
    logout = ["https://app.example.com/signed-out"]
    assert (
        registration(_client(postLogoutRedirectUris=logout), "spa", "a")["post_logout_redirect_uris"]
        == logout
    )
    # A confidential client without a pin may use either secret method: no method is sent.
    assert "token_endpoint_auth_method" not in registration(_client(), "m2m", "a")
    pinned = registration(_client(tokenEndpointAuthMethod="client_secret_post"), "m2m", "a")
    assert pinned["token_endpoint_auth_method"] == "client_secret_post"
    assert "require_pkce" not in registration(_client(), "m2m", "a")
    assert registration(_client(pkce="OptionalWithNonce"), "m2m", "a")["require_pkce"] is False
    # OIDC Dynamic Client Registration's name for the client's ID-token algorithm; absent: the server's.
    assert (
        registration(_client(idTokenSigningAlg="ES256"), "m2m", "a")["id_token_signed_response_alg"]
        == "ES256"
    )
    assert "id_token_signed_response_alg" not in registration(_client(), "m2m", "a")
    # Back-Channel Logout 1.0 §2.2's names; absent from the body: the server forgets a URI it had.
    logout = {"uri": "https://app.example.com/bc-logout?tenant=a", "sessionRequired": True}
    body = registration(_client(backchannelLogout=logout), "m2m", "a")
    assert body["backchannel_logout_uri"] == "https://app.example.com/bc-logout?tenant=a"
    assert body["backchannel_logout_session_required"] is True
    loopback = registration(_client(backchannelLogout={"uri": "http://127.0.0.1:8000/bc"}), "m2m", "a")
    assert loopback["backchannel_logout_session_required"] is False
    assert "backchannel_logout_uri" not in registration(_client(), "m2m", "a")
    assert client_id_for("team-a", "orders") == "team-a.orders"


def test_backchannel_logout_hosts_are_limited_only_when_the_policy_lists_them() -> None:
    def problems(allowed: list[str] | None, uri: str) -> list[str]:
        policy = ClientPolicy.model_validate({"allowedBackchannelLogoutHosts": allowed} if allowed else {})
        return policy_violations(policy, "a", "a", _client(backchannelLogout={"uri": uri}))

    assert problems(None, "https://kubernetes.default.svc/logout") == []  # absent: any host
    allowed = ["app.example.com", "*.apps.example.com", "127.0.0.1"]
    assert problems(allowed, "https://APP.example.com./logout") == []  # DNS names compare case-insensitively
    assert problems(allowed, "https://a.b.apps.example.com/logout?x=1") == []
    assert problems(allowed, "http://127.0.0.1:8080/logout") == []
    for uri in (
        "https://apps.example.com/logout",  # "*.": a name under it, not the name itself
        "https://evilapps.example.com/logout",
        "https://kubernetes.default.svc/logout",
        "https://app.example.com.evil.test/logout",
    ):
        refused = problems(allowed, uri)
        assert len(refused) == 1 and "allowedBackchannelLogoutHosts" in refused[0], uri


def test_a_backchannel_logout_host_pattern_is_a_host_not_a_url() -> None:
    for bad in ("https://app.example.com", "app.example.com/logout", "*", "*.", "a b", "user@host"):
        with pytest.raises(ValidationError):
            ClientPolicy.model_validate({"allowedBackchannelLogoutHosts": [bad]})
    assert ClientPolicy.model_validate({"allowedBackchannelLogoutHosts": ["::1", "*.svc.cluster.local"]})


TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def test_token_exchange_reaches_the_registration_as_the_server_reads_it() -> None:
    """spec.tokenExchange → the admin API's token_exchange, which the server's own registration model
    accepts as it is; absent from the body: the server's defaults."""
    from authserver.admin.registration import ClientRegistration

    spec = _client(
        grantTypes=["client_credentials", TOKEN_EXCHANGE],
        tokenExchange={
            "audiences": ["https://orders-b.example.com", "billing"],
            "subjectAudiences": ["https://orders.example.com"],
            "allowImpersonation": True,
        },
    )
    body = registration(spec, "gateway", "team-a")
    assert body["grant_types"] == ["client_credentials", TOKEN_EXCHANGE]
    assert body["token_exchange"] == {
        "audiences": ["https://orders-b.example.com", "billing"],
        "subject_audiences": ["https://orders.example.com"],
        "allow_impersonation": True,
    }
    client = ClientRegistration.model_validate(body).desired_client("team-a.gateway")
    assert client.token_exchange is not None and client.token_exchange.audiences == (
        "https://orders-b.example.com",
        "billing",
    )
    assert client.token_exchange.allow_impersonation is True
    defaults = registration(_client(grantTypes=["client_credentials", TOKEN_EXCHANGE]), "gateway", "team-a")
    assert "token_exchange" not in defaults
    assert ClientRegistration.model_validate(defaults).desired_client("x").token_exchange is None


def test_token_exchange_is_offered_only_when_the_authserver_lists_it() -> None:
    spec = _client(grantTypes=["client_credentials", TOKEN_EXCHANGE], tokenExchange={"audiences": ["b"]})
    problems = policy_violations(ClientPolicy(), "platform", "platform", spec)
    assert len(problems) == 1 and TOKEN_EXCHANGE in problems[0] and "allowedGrantTypes" in problems[0]
    offered = ClientPolicy.model_validate({"allowedGrantTypes": ["client_credentials", TOKEN_EXCHANGE]})
    assert policy_violations(offered, "platform", "platform", spec) == []


def test_token_exchange_audiences_are_held_to_the_allowed_audiences() -> None:
    policy = ClientPolicy.model_validate({
        "allowedGrantTypes": ["client_credentials", TOKEN_EXCHANGE],
        "allowedAudiences": ["https://orders.example.com", "https://orders-b.example.com"],
    })  # fmt: skip
    spec = _client(
        grantTypes=["client_credentials", TOKEN_EXCHANGE],
        tokenExchange={"audiences": ["https://orders-b.example.com", "https://billing.example.com"]},
    )
    problems = policy_violations(policy, "platform", "platform", spec)
    assert len(problems) == 1 and "token-exchange audiences not allowed" in problems[0]
    assert "billing" in problems[0] and "orders-b" not in problems[0]
    assert "spec.tokenExchange.audiences" in problems[0]
