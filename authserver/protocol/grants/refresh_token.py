"""refresh_token with rotation and reuse detection (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2).

Every refresh consumes the token and returns a new one in the same family. Presenting a consumed token
again means two parties hold it: the whole family is revoked, so neither can continue.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from authserver.crypto.opaque_tokens import token_hash
from authserver.protocol.errors import InvalidGrant
from authserver.protocol.models import Client, GrantType, RedemptionOutcome
from authserver.protocol.params import Params, required, single
from authserver.protocol.scopes import narrow_scope
from authserver.protocol.store import Store
from authserver.protocol.tokens import TokenMinter, audience_value, token_response


class RefreshTokenGrant:
    grant_type = GrantType.REFRESH_TOKEN

    def __init__(self, minter: TokenMinter, store: Store) -> None:
        self.minter = minter
        self.store = store

    async def issue(self, params: Params, client: Client) -> dict[str, Any]:
        presented_hash = token_hash(required(params, "refresh_token"))
        current = await self.store.get_refresh_token(presented_hash)
        now = datetime.now(UTC)
        if current is None or current.client_id != client.client_id:
            raise InvalidGrant("refresh token is invalid")
        if current.revoked:
            raise InvalidGrant("refresh token was revoked")
        if current.rotated:
            await self.store.revoke_refresh_family(current.family_id)
            raise InvalidGrant("refresh token was already used; its family has been revoked")
        expires_at = (
            current.expires_at if current.expires_at.tzinfo else current.expires_at.replace(tzinfo=UTC)
        )
        if expires_at <= now:
            raise InvalidGrant("refresh token has expired")

        scope = narrow_scope(single(params, "scope"), current.scope)
        successor = self.minter.refresh_token(
            client,
            family_id=current.family_id,
            user_id=current.user_id,
            scope=current.scope,  # the family keeps its grant; a narrower ask narrows this access token
            audience=current.audience,
            auth_time=current.auth_time,
        )
        outcome = await self.store.rotate_refresh_token(presented_hash, successor.hash, successor.record, now)
        if outcome.outcome is RedemptionOutcome.REPLAYED:
            # Lost a race with another use of the same token: that is reuse too.
            await self.store.revoke_refresh_family(current.family_id)
            raise InvalidGrant("refresh token was already used; its family has been revoked")
        if outcome.outcome is not RedemptionOutcome.OK:
            raise InvalidGrant("refresh token is invalid")

        access_token, _ = self.minter.access_token(
            client,
            subject=current.user_id or client.client_id,
            scope=scope,
            audience=audience_value(current.audience),
            auth_time=current.auth_time,
        )
        return token_response(access_token, self.minter.access_token_ttl(client), scope, successor.value)
