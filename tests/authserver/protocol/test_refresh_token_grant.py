"""refresh_token with rotation and reuse detection (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from authserver.crypto.opaque_tokens import new_opaque_token, token_hash
from authserver.protocol.errors import InvalidGrant, InvalidScope
from tests.support.protocol_server import API, ProtocolServer, RegisteredForTest


async def _signed_in(server: ProtocolServer, client: RegisteredForTest) -> dict[str, str]:
    user = await server.user()
    code, verifier = await server.authorize(client, user)
    return await server.redeem(client, code, verifier)


async def _refresh(server: ProtocolServer, client: RegisteredForTest, token: str, **params: str) -> dict:
    return await server.token(client, grant_type="refresh_token", refresh_token=token, **params)


async def test_each_refresh_returns_a_new_token_and_consumes_the_old(server: ProtocolServer) -> None:
    client = server.web_client()
    first = (await _signed_in(server, client))["refresh_token"]
    second = await _refresh(server, client, first)
    assert second["refresh_token"] != first and second["scope"] == "openid profile orders.read"
    claims = server.keys.verify(second["access_token"], audience=API)
    third = await _refresh(server, client, second["refresh_token"])
    assert server.keys.verify(third["access_token"], audience=API)["sub"] == claims["sub"]
    assert len(server.store.families) == 1  # one sign-in, one family, however often it rotates


async def test_reusing_a_consumed_token_revokes_the_whole_family(server: ProtocolServer) -> None:
    client = server.web_client()
    first = (await _signed_in(server, client))["refresh_token"]
    second = (await _refresh(server, client, first))["refresh_token"]
    with pytest.raises(InvalidGrant, match="already used; its family has been revoked"):
        await _refresh(server, client, first)
    # Neither the thief nor the rightful holder can go on: the current token is revoked too.
    with pytest.raises(InvalidGrant, match="revoked"):
        await _refresh(server, client, second)


async def test_a_narrower_scope_is_granted_a_wider_one_refused_without_consuming(
    server: ProtocolServer,
) -> None:
    client = server.web_client()
    token = (await _signed_in(server, client))["refresh_token"]
    with pytest.raises(InvalidScope):
        await _refresh(server, client, token, scope="openid orders.write")
    narrowed = await _refresh(server, client, token, scope="orders.read")  # the refused ask kept it
    assert narrowed["scope"] == "orders.read"
    assert server.keys.verify(narrowed["access_token"], audience=API)["scope"] == "orders.read"
    # The family keeps what was granted at sign-in: a later refresh may ask for all of it again.
    assert (await _refresh(server, client, narrowed["refresh_token"]))[
        "scope"
    ] == "openid profile orders.read"


async def test_another_clients_token_is_invalid_and_stays_usable(server: ProtocolServer) -> None:
    client, thief = server.web_client(), server.web_client()
    token = (await _signed_in(server, client))["refresh_token"]
    with pytest.raises(InvalidGrant, match="refresh token is invalid"):
        await _refresh(server, thief, token)
    with pytest.raises(InvalidGrant, match="refresh token is invalid"):
        await _refresh(server, thief, token, scope="orders.read")
    assert (await _refresh(server, client, token))["refresh_token"]


async def test_expired_unknown_and_malformed_tokens_are_invalid_grant(server: ProtocolServer) -> None:
    client = server.web_client()
    token = (await _signed_in(server, client))["refresh_token"]
    family = server.store.families[token.split(".")[0]]
    family.grant = replace(family.grant, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(InvalidGrant, match="expired"):
        await _refresh(server, client, token)
    for garbage in ("not-a-token", f"{token.split('.')[0]}.{new_opaque_token()}"[:-1], "x" * 600, "a.b"):
        with pytest.raises(InvalidGrant):
            await _refresh(server, client, garbage)


async def test_a_token_issued_before_families_rotates_once_then_counts_as_reuse(
    server: ProtocolServer,
) -> None:
    client = server.web_client()
    family_id = (await _signed_in(server, client))["refresh_token"].split(".")[0]
    older = new_opaque_token()  # the format before families: no family id in the value
    # As migrated: the family's current secret is the whole older value, found through its hash.
    server.store.legacy_tokens[token_hash(older)] = family_id
    server.store.families[family_id].secret_hash = token_hash(older)
    rotated = await _refresh(server, client, older)
    assert rotated["refresh_token"].split(".")[0] == family_id
    with pytest.raises(InvalidGrant, match="already used"):
        await _refresh(server, client, older)
    assert server.store.families[family_id].revoked


async def test_the_refresh_token_lifetime_follows_the_client_then_the_policy(server: ProtocolServer) -> None:
    client = server.web_client(refresh_token_ttl_seconds=120)
    token = (await _signed_in(server, client))["refresh_token"]
    expires_at = server.store.families[token.split(".")[0]].grant.expires_at
    assert timedelta(seconds=115) < expires_at - datetime.now(UTC) <= timedelta(seconds=120)
    default = server.web_client()
    token = (await _signed_in(server, default))["refresh_token"]
    expires_at = server.store.families[token.split(".")[0]].grant.expires_at
    assert timedelta(minutes=59) < expires_at - datetime.now(UTC) <= server.policy.refresh_token_ttl
