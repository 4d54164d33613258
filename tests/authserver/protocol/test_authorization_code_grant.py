"""authorization_code with PKCE (RFC 6749 §4.1, RFC 7636, OAuth 2.1 §4.1.3) and code issuance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from authserver.crypto.opaque_tokens import token_hash
from authserver.protocol.claims import claims_for_scope
from authserver.protocol.errors import InvalidGrant, InvalidRequest
from tests.support.oauth import pkce_pair, query_of
from tests.support.protocol_server import API, ISSUER, REDIRECT, ProtocolServer


async def test_a_public_client_redeems_its_code_for_access_refresh_and_id_tokens(
    server: ProtocolServer,
) -> None:
    client, user = server.web_client(), await server.user()
    code, verifier = await server.authorize(client, user)
    body = await server.redeem(client, code, verifier)

    claims = server.keys.verify(body["access_token"], typ="at+jwt", issuer=ISSUER, audience=API)
    assert claims["sub"] == user.user_id and claims["client_id"] == client.client_id
    assert claims["scope"] == body["scope"] == "openid profile orders.read"
    family = server.store.families[body["refresh_token"].split(".")[0]].grant
    assert (family.client_id, family.user_id, family.scope) == (client.client_id, user.user_id, body["scope"])
    id_token = server.keys.verify(body["id_token"], typ="JWT", issuer=ISSUER, audience=client.client_id)
    assert id_token["nonce"] == "n-1" and id_token["auth_time"] == claims["auth_time"]
    assert id_token["preferred_username"] == user.username and "email" not in id_token
    assert id_token["name"] == claims_for_scope(user, "profile")["name"]


async def test_a_confidential_client_authenticates_as_well(server: ProtocolServer) -> None:
    client, user = server.web_client(public=False), await server.user()
    code, verifier = await server.authorize(client, user, scope="orders.read")
    body = await server.redeem(client, code, verifier)
    assert body["scope"] == "orders.read" and "id_token" not in body and body["refresh_token"]


async def test_without_the_refresh_grant_no_refresh_token(server: ProtocolServer) -> None:
    client, user = server.web_client(grant_types=("authorization_code",)), await server.user()
    code, verifier = await server.authorize(client, user)
    assert "refresh_token" not in await server.redeem(client, code, verifier)


async def test_a_replayed_code_is_invalid_grant_and_revokes_what_it_issued(server: ProtocolServer) -> None:
    client, user = server.web_client(), await server.user()
    code, verifier = await server.authorize(client, user)
    first = await server.redeem(client, code, verifier)
    with pytest.raises(InvalidGrant, match="already used"):
        await server.redeem(client, code, verifier)
    # RFC 6749 §4.1.2: whoever replayed it may hold the tokens; the refresh token dies with the replay.
    with pytest.raises(InvalidGrant, match="revoked"):
        await server.token(client, grant_type="refresh_token", refresh_token=first["refresh_token"])


async def test_the_verifier_must_answer_the_challenge(server: ProtocolServer) -> None:
    client, user = server.web_client(), await server.user()
    code, verifier = await server.authorize(client, user)
    with pytest.raises(InvalidGrant, match="code_verifier"):
        await server.redeem(client, code, pkce_pair()[0])
    with pytest.raises(InvalidGrant):  # the failed attempt used the code up
        await server.redeem(client, code, verifier)

    code, _ = await server.authorize(client, user)
    with pytest.raises(InvalidRequest, match="code_verifier is required"):
        await server.token(client, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    code, _ = await server.authorize(client, user)
    with pytest.raises(InvalidRequest, match="malformed"):
        await server.redeem(client, code, "short")


async def test_a_code_is_bound_to_its_client_and_redirect_uri(server: ProtocolServer) -> None:
    client, other, user = server.web_client(), server.web_client(), await server.user()
    code, verifier = await server.authorize(client, user)
    with pytest.raises(InvalidGrant, match="another client"):
        await server.redeem(other, code, verifier)

    code, verifier = await server.authorize(client, user)
    with pytest.raises(InvalidGrant, match="redirect_uri"):
        await server.token(
            client,
            grant_type="authorization_code",
            code=code,
            code_verifier=verifier,
            redirect_uri="https://app.example.com/other",
        )
    with pytest.raises(InvalidGrant, match="invalid or expired"):
        await server.redeem(client, "never-issued", verifier)


async def test_a_code_lives_as_long_as_the_policy_says(server: ProtocolServer) -> None:
    client, user = server.web_client(), await server.user()
    request = await server.authorization_request(client, pkce_pair()[1])
    issued_at = datetime.now(UTC)
    location = await server.codes.issue(request, user.user_id, 1_700_000_000, now=issued_at)
    stored = server.store.codes[token_hash(query_of(location)["code"])].code
    assert (
        stored.expires_at
        == issued_at + timedelta(seconds=60)
        == issued_at + server.policy.authorization_code_ttl
    )
    assert (stored.client_id, stored.user_id, stored.redirect_uri) == (
        client.client_id,
        user.user_id,
        REDIRECT,
    )
    assert stored.code_challenge == request.code_challenge and stored.nonce == "n-1"


@pytest.mark.parametrize(("ttl_seconds", "redeemable"), [(60, False), (600, True)])
async def test_a_code_issued_61_seconds_ago_works_only_under_a_longer_ttl(
    ttl_seconds: int, redeemable: bool
) -> None:
    server = ProtocolServer(authorization_code_ttl=timedelta(seconds=ttl_seconds))
    client, user = server.web_client(), await server.user()
    verifier, challenge = pkce_pair()
    request = await server.authorization_request(client, challenge)
    issued_at = datetime.now(UTC) - timedelta(seconds=61)
    code = query_of(await server.codes.issue(request, user.user_id, 1_700_000_000, now=issued_at))["code"]
    if redeemable:
        assert (await server.redeem(client, code, verifier))["access_token"]
    else:
        with pytest.raises(InvalidGrant, match="expired"):
            await server.redeem(client, code, verifier)
