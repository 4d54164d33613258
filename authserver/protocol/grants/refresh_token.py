"""refresh_token with refresh-token rotation and reuse detection (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2).

Every refresh consumes the token and returns a new one in the same family. Presenting a consumed token
again means two parties hold it: the whole family is revoked, so neither can continue. A family keeps
only its current secret's hash, so any other secret presented for it counts as a consumed token.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NoReturn

from authserver.crypto.refresh_token_values import grant_id_of_family
from authserver.protocol.claims import access_token_groups, userinfo_claim_names
from authserver.protocol.errors import InvalidGrant
from authserver.protocol.grant_revocation import GrantRevoker
from authserver.protocol.models import Client, GrantType, RedemptionOutcome, RefreshToken
from authserver.protocol.params import Params, required, single
from authserver.protocol.refresh_token_lookup import presented_refresh_token
from authserver.protocol.scopes import narrow_scope
from authserver.protocol.store import Store
from authserver.protocol.tokens import TokenMinter, audience_value, token_response


class RefreshTokenGrant:
    grant_type = GrantType.REFRESH_TOKEN

    def __init__(self, minter: TokenMinter, store: Store, grants: GrantRevoker) -> None:
        self.minter = minter
        self.store = store
        self.grants = grants

    async def issue(self, params: Params, client: Client) -> dict[str, Any]:
        presented = await presented_refresh_token(self.store, required(params, "refresh_token"))
        if presented is None:
            raise InvalidGrant("refresh token is invalid")
        family_id, secret_hash = presented
        requested_scope = single(params, "scope")
        now = datetime.now(UTC)
        if requested_scope is not None:
            # A narrower ask is checked before anything is consumed: a refused scope keeps the token.
            current = await self.store.get_refresh_token(family_id, secret_hash)
            if current is None or not _usable(current, client, now):
                await self._refuse(current, client, now)
            narrow_scope(requested_scope, current.scope)

        successor, value = self.minter.next_refresh_token(client, family_id)
        outcome = await self.store.rotate_refresh_token(
            family_id, secret_hash, client.client_id, successor, now
        )
        rotated = outcome.record
        if outcome.outcome is not RedemptionOutcome.OK or rotated is None:
            # Unknown, another client's, revoked, expired, or already used (also by a concurrent request
            # that won the race): the family as it stands says which.
            await self._refuse(rotated, client, now)

        scope = rotated.scope if requested_scope is None else narrow_scope(requested_scope, rotated.scope)
        # The groups as they are now (an upstream sign-in or an administrator may have changed them): read
        # only when the scope asks for them.
        user = (
            await self.store.get_user(rotated.user_id)
            if rotated.user_id and "groups" in scope.split()
            else None
        )
        access_token, _ = self.minter.access_token(
            client,
            subject=rotated.user_id or client.client_id,
            scope=scope,
            audience=audience_value(rotated.audience),
            auth_time=rotated.auth_time,
            grant_id=grant_id_of_family(family_id),
            userinfo_claims=userinfo_claim_names(rotated.claims),
            groups=access_token_groups(user, scope),
        )
        return token_response(access_token, self.minter.access_token_ttl(client), scope, value)

    async def _refuse(self, current: RefreshToken | None, client: Client, now: datetime) -> NoReturn:
        if current is None or current.client_id != client.client_id:
            raise InvalidGrant("refresh token is invalid")
        if current.revoked:
            raise InvalidGrant("refresh token was revoked")
        if current.rotated:
            # Reuse revokes the grant: its family and the access tokens issued in it (RFC 9700 §4.14.2).
            await self.grants.revoke_family(current.family_id, client)
            raise InvalidGrant("refresh token was already used; its family has been revoked")
        if _expires_at(current) <= now:
            raise InvalidGrant("refresh token has expired")
        raise InvalidGrant("refresh token is invalid")


def _expires_at(token: RefreshToken) -> datetime:
    return token.expires_at if token.expires_at.tzinfo else token.expires_at.replace(tzinfo=UTC)


def _usable(token: RefreshToken, client: Client, now: datetime) -> bool:
    return (
        token.client_id == client.client_id
        and not token.revoked
        and not token.rotated
        and _expires_at(token) > now
    )
