"""Revoking a user grant revokes its access tokens (RFC 7009 §2.1, RFC 6749 §4.1.2, RFC 9700 §4.14.2):
a refresh token's revocation, its reuse and an authorization code's replay each make every access token
of that grant inactive, on this worker at once and on every other one from the store; an access token's
revocation stays narrow."""

from __future__ import annotations

from typing import Any

import pytest

from authserver.crypto.refresh_token_values import grant_id_of_family
from authserver.protocol.errors import InvalidGrant, InvalidToken
from authserver.protocol.revocation_list import CLOCK_LEEWAY_SECONDS, RevocationList
from authserver.protocol.tokens import GRANT_ID_CLAIM
from tests.support.protocol_server import API, ProtocolServer, RegisteredForTest


class Grant:
    """One sign-in of a user at a client: the code's tokens, then one refresh-token rotation's."""

    def __init__(self, first: dict[str, Any], second: dict[str, Any]) -> None:
        self.first, self.second = first, second
        self.access_tokens = [first["access_token"], second["access_token"]]


async def _sign_in(server: ProtocolServer, client: RegisteredForTest, user: Any) -> Grant:
    code, verifier = await server.authorize(client, user)
    first = await server.redeem(client, code, verifier)
    second = await server.token(client, grant_type="refresh_token", refresh_token=first["refresh_token"])
    return Grant(first, second)


async def _active(server: ProtocolServer, token: str) -> bool:
    resource_server = server.confidential_client()
    return bool((await server.introspect(resource_server, token=token))["active"])


async def _active_elsewhere(server: ProtocolServer, token: str) -> bool:
    """What a worker that never saw the revocation answers once it synced the store's revocations."""
    elsewhere = RevocationList()
    revoked = await server.store.revoked_since(elsewhere.synced_until)
    for grant_id, expires_at in revoked.grants:
        elsewhere.add_grant(grant_id, expires_at.timestamp())
    claims = server.inspector.decode_access_token(token)
    assert claims is not None
    return not elsewhere.is_revoked(claims["jti"], claims.get(GRANT_ID_CLAIM))


async def test_access_tokens_name_their_grant_but_not_its_refresh_family(server: ProtocolServer) -> None:
    client, user = server.web_client(), await server.user()
    grant = await _sign_in(server, client, user)
    family_id = grant.first["refresh_token"].split(".")[0]
    claims = [server.keys.verify(token, audience=API) for token in grant.access_tokens]
    assert claims[0][GRANT_ID_CLAIM] == claims[1][GRANT_ID_CLAIM] == grant_id_of_family(family_id)
    assert all(family_id not in str(each) for each in claims)  # holders of access tokens cannot revoke it
    service = server.confidential_client()
    machine = await server.token(service, grant_type="client_credentials")
    assert GRANT_ID_CLAIM not in server.keys.verify(machine["access_token"], audience=API)


async def test_revoking_a_refresh_token_revokes_the_access_tokens_of_its_grant_only(
    server: ProtocolServer,
) -> None:
    client, user = server.web_client(), await server.user()
    grant, other = await _sign_in(server, client, user), await _sign_in(server, client, user)
    await server.revoke(client, token=grant.second["refresh_token"], token_type_hint="refresh_token")
    for token in grant.access_tokens:
        assert not await _active(server, token)
        assert not await _active_elsewhere(server, token)
        with pytest.raises(InvalidToken):
            await server.userinfo.handle(token)
    # The same user's other sign-in at the same client is another grant: untouched.
    for token in other.access_tokens:
        assert await _active(server, token) and await _active_elsewhere(server, token)
    assert (await server.userinfo.handle(other.second["access_token"]))["sub"] == user.user_id


async def test_reusing_a_refresh_token_revokes_the_access_tokens_of_its_grant(server: ProtocolServer) -> None:
    client, user = server.web_client(), await server.user()
    grant, other = await _sign_in(server, client, user), await _sign_in(server, client, user)
    with pytest.raises(InvalidGrant, match="already used"):
        await server.token(client, grant_type="refresh_token", refresh_token=grant.first["refresh_token"])
    for token in grant.access_tokens:
        assert not await _active(server, token) and not await _active_elsewhere(server, token)
    assert all([await _active(server, token) for token in other.access_tokens])


@pytest.mark.parametrize("grant_types", [("authorization_code", "refresh_token"), ("authorization_code",)])
async def test_replaying_a_code_revokes_the_access_token_it_issued(
    server: ProtocolServer, grant_types: tuple[str, ...]
) -> None:
    """OpenID conformance oidcc-codereuse; with or without a refresh token issued with the code."""
    client, user = server.web_client(grant_types=grant_types), await server.user()
    code, verifier = await server.authorize(client, user)
    first = await server.redeem(client, code, verifier)
    assert (await server.userinfo.handle(first["access_token"]))["sub"] == user.user_id
    other_code, other_verifier = await server.authorize(client, user)
    other = await server.redeem(client, other_code, other_verifier)

    with pytest.raises(InvalidGrant, match="already used"):
        await server.redeem(client, code, verifier)
    with pytest.raises(InvalidToken):
        await server.userinfo.handle(first["access_token"])
    assert not await _active(server, first["access_token"])
    assert not await _active_elsewhere(server, first["access_token"])
    assert await _active(server, other["access_token"])  # another code's grant


async def test_revoking_an_access_token_revokes_only_that_token(server: ProtocolServer) -> None:
    client, user = server.web_client(), await server.user()
    grant = await _sign_in(server, client, user)
    await server.revoke(client, token=grant.first["access_token"], token_type_hint="access_token")
    assert not await _active(server, grant.first["access_token"])
    assert await _active(server, grant.second["access_token"])  # the same grant's other access token
    assert await _active(server, grant.second["refresh_token"])  # and its refresh token
    assert (await server.store.revoked_since(RevocationList().synced_until)).grants == []


async def test_a_revoked_grant_is_listed_until_its_clients_longest_access_token_expired(
    server: ProtocolServer,
) -> None:
    client, user = server.web_client(access_token_ttl_seconds=120), await server.user()
    grant = await _sign_in(server, client, user)
    await server.revoke(client, token=grant.second["refresh_token"])
    ((_, expires_at),) = (await server.store.revoked_since(RevocationList().synced_until)).grants
    last_exp = max(server.keys.verify(token, audience=API)["exp"] for token in grant.access_tokens)
    assert last_exp <= expires_at.timestamp() <= last_exp + CLOCK_LEEWAY_SECONDS + 2


def test_the_revocation_list_keeps_entries_while_verification_still_accepts_the_token() -> None:
    revocations = RevocationList()
    revocations.add("jti-1", 1000.0)
    revocations.add_grant("grant-1", 1000.0)
    revocations.add_grant("grant-1", 900.0)  # an earlier expiry never shortens an entry
    revocations.prune(now=1000.0 + CLOCK_LEEWAY_SECONDS)  # exp + leeway: a token is still accepted
    assert revocations.is_revoked("jti-1") and revocations.is_revoked("other", "grant-1")
    assert not revocations.is_revoked("other") and not revocations.is_revoked("other", None)
    revocations.prune(now=1000.0 + CLOCK_LEEWAY_SECONDS + 1)
    assert len(revocations) == 0
