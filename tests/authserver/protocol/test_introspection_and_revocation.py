"""Introspection (RFC 7662) and revocation (RFC 7009): who may ask, and what each answer says."""

from __future__ import annotations

import pytest

from authserver.protocol.errors import InvalidClient, InvalidRequest, UnauthorizedClient
from authserver.protocol.revocation_list import RevocationList
from tests.support.protocol_server import API, ISSUER, ProtocolServer, RegisteredForTest, form


async def _access_token(server: ProtocolServer, client: RegisteredForTest) -> str:
    return (await server.token(client, grant_type="client_credentials"))["access_token"]


async def _refresh_token(server: ProtocolServer, client: RegisteredForTest) -> str:
    code, verifier = await server.authorize(client, await server.user())
    return (await server.redeem(client, code, verifier))["refresh_token"]


async def test_an_access_token_is_active_until_revoked(server: ProtocolServer) -> None:
    client, resource_server = server.confidential_client(), server.confidential_client()
    token = await _access_token(server, client)
    body = await server.introspect(resource_server, token=token)
    assert body["active"] is True and body["token_type"] == "Bearer"
    assert (body["client_id"], body["iss"], body["aud"]) == (client.client_id, ISSUER, API)

    await server.revoke(client, token=token)
    assert await server.introspect(resource_server, token=token) == {"active": False}
    # Another worker learns it from the store (RFC 7009 §2: revocation takes effect everywhere).
    elsewhere = RevocationList()
    revoked = await server.store.revoked_since(elsewhere.synced_until)
    assert [jti for jti, _ in revoked.access_tokens] == [server.keys.verify(token, audience=API)["jti"]]
    assert revoked.grants == []  # an access token revokes only itself


async def test_public_and_unauthenticated_callers_may_not_introspect(server: ProtocolServer) -> None:
    token = await _access_token(server, server.confidential_client())
    public = server.web_client()
    with pytest.raises(InvalidClient, match="public clients may not introspect"):
        await server.introspect(public, token=token)
    with pytest.raises(InvalidClient):
        await server.introspection.handle(form(token=token), None)
    wrong = RegisteredForTest(server.confidential_client().client, "not-the-secret")
    with pytest.raises(InvalidClient):
        await server.introspect(wrong, token=token)
    # The caller is checked before the request: a public client without a token is still invalid_client.
    with pytest.raises(InvalidClient):
        await server.introspect(public)
    with pytest.raises(InvalidRequest, match="'token' is required"):
        await server.introspect(server.confidential_client())


async def test_garbage_and_id_tokens_are_inactive_not_errors(server: ProtocolServer) -> None:
    caller, client = server.confidential_client(), server.web_client()
    code, verifier = await server.authorize(client, await server.user())
    id_token = (await server.redeem(client, code, verifier))["id_token"]
    for token in ("x", "a.b.c", "." * 5000, id_token):  # an ID token is not an access token (RFC 9068 §4)
        assert await server.introspect(caller, token=token) == {"active": False}


async def test_a_refresh_token_is_active_until_rotated_or_revoked(server: ProtocolServer) -> None:
    caller, client = server.confidential_client(), server.web_client()
    token = await _refresh_token(server, client)
    body = await server.introspect(caller, token=token, token_type_hint="refresh_token")
    assert body["active"] is True and body["token_type"] == "refresh_token"
    assert body["client_id"] == client.client_id and body["scope"] == "openid profile orders.read"
    newer = (await server.token(client, grant_type="refresh_token", refresh_token=token))["refresh_token"]
    assert await server.introspect(caller, token=token) == {"active": False}
    assert (await server.introspect(caller, token=newer))["active"] is True

    await server.revoke(client, token=newer, token_type_hint="refresh_token")
    assert await server.introspect(caller, token=newer) == {"active": False}


async def test_a_client_revokes_only_its_own_tokens(server: ProtocolServer) -> None:
    owner, other = server.confidential_client(), server.confidential_client()
    token = await _access_token(server, owner)
    with pytest.raises(UnauthorizedClient):
        await server.revoke(other, token=token)
    web, stranger = server.web_client(), server.web_client()
    refresh = await _refresh_token(server, web)
    with pytest.raises(UnauthorizedClient):
        await server.revoke(stranger, token=refresh)
    assert (await server.introspect(other, token=token))["active"] is True
    assert (await server.introspect(other, token=refresh))["active"] is True


async def test_revoking_an_unknown_token_succeeds_and_needs_a_token(server: ProtocolServer) -> None:
    client = server.confidential_client()
    await server.revoke(client, token="never-issued")  # RFC 7009 §2.2: nothing to do is success
    with pytest.raises(InvalidRequest):
        await server.revoke(client)
    with pytest.raises(InvalidClient):
        await server.revocation.handle(form(token="x"), None)
