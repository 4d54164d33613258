"""client_credentials (RFC 6749 §4.4) and client authentication at the token endpoint (RFC 6749 §2.3)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from authserver.protocol.errors import (
    InvalidClient,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from authserver.protocol.models import ClientType, TokenEndpointAuthMethod
from tests.support.protocol_server import API, ISSUER, ProtocolServer, RegisteredForTest, form


async def test_a_confidential_client_gets_an_rfc9068_access_token_for_itself(server: ProtocolServer) -> None:
    client = server.confidential_client()
    body = await server.token(client, grant_type="client_credentials")
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert "refresh_token" not in body and "id_token" not in body
    claims = server.keys.verify(body["access_token"], typ="at+jwt", issuer=ISSUER, audience=API)
    assert claims["sub"] == claims["client_id"] == client.client_id
    assert claims["scope"] == body["scope"] == "orders.read orders.write"
    assert claims["exp"] - claims["iat"] == 900


async def test_scope_and_resource_narrow_the_token(server: ProtocolServer) -> None:
    other = "https://billing.example.com"
    client = server.confidential_client(audiences=(API, other), access_token_ttl_seconds=60)
    body = await server.token(client, grant_type="client_credentials", scope="orders.read", resource=other)
    claims = server.keys.verify(body["access_token"], typ="at+jwt", audience=other)
    assert claims["scope"] == "orders.read" and claims["aud"] == other and body["expires_in"] == 60
    both = await server.token(client, grant_type="client_credentials", resource=[API, other])
    assert server.keys.verify(both["access_token"], audience=API)["aud"] == [API, other]


async def test_a_client_without_audiences_gets_the_servers_default(server: ProtocolServer) -> None:
    client = server.confidential_client(audiences=())
    body = await server.token(client, grant_type="client_credentials")
    assert server.keys.verify(body["access_token"], audience=ISSUER)["aud"] == ISSUER


async def test_what_the_client_may_not_ask_for_is_refused(server: ProtocolServer) -> None:
    client = server.confidential_client(scopes=("orders.read", "openid"))
    with pytest.raises(InvalidScope):
        await server.token(client, grant_type="client_credentials", scope="orders.write")
    with pytest.raises(InvalidScope):  # OIDC scopes describe a user; this token has none
        await server.token(client, grant_type="client_credentials", scope="openid")
    with pytest.raises(InvalidTarget):
        await server.token(client, grant_type="client_credentials", resource="https://elsewhere.example")
    with pytest.raises(UnauthorizedClient):
        await server.token(client, grant_type="refresh_token", refresh_token="x")
    with pytest.raises(UnsupportedGrantType):
        await server.token(client, grant_type="password")
    with pytest.raises(InvalidRequest):
        await server.token_endpoint.handle(
            {"grant_type": ["client_credentials", "client_credentials"]}, client.authorization
        )


async def test_client_authentication_failures_are_invalid_client(server: ProtocolServer) -> None:
    client = server.confidential_client()
    wrong = RegisteredForTest(client.client, "not-the-secret")
    with pytest.raises(InvalidClient) as refused:
        await server.token(wrong, grant_type="client_credentials")
    assert refused.value.status_code == 401 and "WWW-Authenticate" in refused.value.headers
    unknown = RegisteredForTest(replace(client.client, client_id="nobody"), client.secret)
    with pytest.raises(InvalidClient):
        await server.token(unknown, grant_type="client_credentials")
    with pytest.raises(InvalidClient):  # a confidential client must send its secret
        await server.token_endpoint.handle(
            form(grant_type="client_credentials", client_id=client.client_id), None
        )
    with pytest.raises(InvalidClient):  # registered for Basic, so a secret in the body is refused
        await server.token_endpoint.handle(
            form(
                grant_type="client_credentials", client_id=client.client_id, client_secret=client.secret or ""
            ),
            None,
        )


async def test_client_secret_post_when_registered_for_it(server: ProtocolServer) -> None:
    client = server.confidential_client(token_endpoint_auth_method=TokenEndpointAuthMethod.CLIENT_SECRET_POST)
    params = form(
        grant_type="client_credentials", client_id=client.client_id, client_secret=client.secret or ""
    )
    result = await server.token_endpoint.handle(params, None)
    assert result.client.client_id == client.client_id and result.grant_type == "client_credentials"


async def test_a_public_client_cannot_use_client_credentials(server: ProtocolServer) -> None:
    client = server.web_client(grant_types=("client_credentials",))
    assert client.client.client_type is ClientType.PUBLIC
    with pytest.raises(UnauthorizedClient):
        await server.token(client, grant_type="client_credentials")
