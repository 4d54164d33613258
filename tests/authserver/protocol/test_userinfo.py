"""OpenID Connect userinfo (OIDC Core §5.3): the bearer's user, released by scope."""

from __future__ import annotations

import pytest

from authserver.protocol.errors import InsufficientScope, InvalidToken
from tests.support.protocol_server import ProtocolServer


async def test_the_scope_decides_which_claims_are_released(server: ProtocolServer) -> None:
    client, user = server.web_client(), await server.user()
    for scope, expected in (
        ("openid", {"sub": user.user_id}),
        ("openid profile", {"sub": user.user_id, "preferred_username": user.username, "name": user.name}),
        ("openid email", {"sub": user.user_id, "email": user.email, "email_verified": True}),
    ):
        code, verifier = await server.authorize(client, user, scope=scope)
        token = (await server.redeem(client, code, verifier))["access_token"]
        assert await server.userinfo.handle(token) == expected, scope


async def test_without_openid_scope_or_a_live_token_there_is_no_userinfo(server: ProtocolServer) -> None:
    client, user = server.web_client(), await server.user()
    code, verifier = await server.authorize(client, user, scope="orders.read")
    token = (await server.redeem(client, code, verifier))["access_token"]
    with pytest.raises(InsufficientScope) as lacking:
        await server.userinfo.handle(token)
    assert lacking.value.status_code == 403 and 'scope="openid"' in lacking.value.headers["WWW-Authenticate"]
    with pytest.raises(InvalidToken, match="required"):
        await server.userinfo.handle(None)
    with pytest.raises(InvalidToken, match="invalid, expired or revoked"):
        await server.userinfo.handle("a.b.c")

    code, verifier = await server.authorize(client, user, scope="openid")
    token = (await server.redeem(client, code, verifier))["access_token"]
    await server.revoke(client, token=token)
    with pytest.raises(InvalidToken, match="invalid, expired or revoked"):
        await server.userinfo.handle(token)


async def test_a_deleted_users_token_gets_no_claims(server: ProtocolServer) -> None:
    client, user = server.web_client(), await server.user()
    code, verifier = await server.authorize(client, user, scope="openid")
    token = (await server.redeem(client, code, verifier))["access_token"]
    del server.store.users[user.user_id]
    with pytest.raises(InvalidToken, match="no longer exists"):
        await server.userinfo.handle(token)
