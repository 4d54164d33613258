"""OpenID Connect userinfo (OIDC Core §5.3): the bearer's user, released by scope."""

from __future__ import annotations

import pytest

from authserver.protocol.errors import InsufficientScope, InvalidBearerRequest, InvalidToken
from authserver.protocol.userinfo import presented_token
from tests.support.protocol_server import ProtocolServer


async def test_the_scope_decides_which_claims_are_released(server: ProtocolServer) -> None:
    client, user = server.web_client(), await server.user()
    user = await server.store.get_user(user.user_id)
    assert user is not None and user.updated_at is not None
    updated_at = int(user.updated_at.timestamp())
    for scope, expected in (
        ("openid", {"sub": user.user_id}),
        (
            "openid profile",
            {
                "sub": user.user_id,
                "preferred_username": user.username,
                "name": user.name,
                "updated_at": updated_at,
            },
        ),
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
        await server.userinfo.handle(presented_token(None, None, {}))
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


def test_the_token_is_taken_from_one_place_only() -> None:
    """RFC 6750 §2: the header or a form body, never both, never the query."""
    assert presented_token("Bearer t1", None, {}) == "t1"
    assert presented_token(None, {"access_token": ["t2"]}, {}) == "t2"
    for authorization, body, query in (
        ("Bearer t1", {"access_token": ["t2"]}, {}),
        (None, {"access_token": ["t2", "t2"]}, {}),
        (None, None, {"access_token": ["t3"]}),
        ("Bearer t1", None, {"access_token": ["t1"]}),
    ):
        with pytest.raises(InvalidBearerRequest) as refused:
            presented_token(authorization, body, query)
        assert refused.value.status_code == 400
        assert refused.value.headers["WWW-Authenticate"].startswith('Bearer error="invalid_request"')
    with pytest.raises(InvalidToken) as missing:
        presented_token(None, {"other": ["x"]}, {})
    assert "error=" not in missing.value.headers["WWW-Authenticate"]
