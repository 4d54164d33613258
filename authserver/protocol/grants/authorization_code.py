"""authorization_code with PKCE (RFC 6749 §4.1, RFC 7636, OAuth 2.1 §4.1.3): redeem a code, once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from authserver.crypto.opaque_tokens import token_hash
from authserver.crypto.refresh_token_values import grant_id_of_code, grant_id_of_family, new_family_id
from authserver.protocol.claims import (
    access_token_groups,
    release,
    requested_claims,
    userinfo_claim_names,
)
from authserver.protocol.errors import InvalidGrant
from authserver.protocol.grant_revocation import GrantRevoker
from authserver.protocol.models import Client, CodeBinding, GrantType, RedemptionOutcome
from authserver.protocol.params import Params, required, single
from authserver.protocol.pkce import check_verifier, verifier_challenge
from authserver.protocol.store import Store
from authserver.protocol.tokens import TokenMinter, audience_value, token_response


class AuthorizationCodeGrant:
    grant_type = GrantType.AUTHORIZATION_CODE

    def __init__(self, minter: TokenMinter, store: Store, grants: GrantRevoker) -> None:
        self.minter = minter
        self.store = store
        self.grants = grants

    async def issue(self, params: Params, client: Client) -> dict[str, Any]:
        code_value = required(params, "code")
        verifier = single(params, "code_verifier")
        redirect_uri = single(params, "redirect_uri")

        # The refresh token is stored in the redemption's own transaction, and only if the code matches
        # this client, redirect URI and verifier: a replay that races this request still finds the family.
        refresh, refresh_value = (None, None)
        if GrantType.REFRESH_TOKEN in client.grant_types:
            refresh, refresh_value = self.minter.next_refresh_token(client, new_family_id())
        # A malformed verifier binds to "", which no code's challenge (nor its absence) matches.
        presented = None if verifier is None else verifier_challenge(verifier) or ""
        binding = CodeBinding(client.client_id, redirect_uri, presented)
        code_hash = token_hash(code_value)
        redemption = await self.store.redeem_authorization_code(
            code_hash, datetime.now(UTC), binding, refresh
        )
        redeemed = redemption.record
        if redemption.outcome is RedemptionOutcome.REPLAYED:
            # RFC 6749 §4.1.2: a replayed code revokes (when possible) all tokens issued based on it: its
            # refresh family and its grant's access tokens. Someone else may hold the code.
            family = redemption.extra.get("family_id") or None
            owner_id = redemption.extra.get("client_id")
            owner = client if owner_id == client.client_id else None
            if owner is None and owner_id:
                owner = await self.store.get_client(owner_id)
            grant = grant_id_of_family(family) if family else grant_id_of_code(code_hash)
            await self.grants.revoke(family, grant, owner)
            raise InvalidGrant("authorization code was already used")
        if redemption.outcome is not RedemptionOutcome.OK or redeemed is None:
            raise InvalidGrant("authorization code is invalid or expired")
        code = redeemed.code
        if code.client_id != client.client_id:
            raise InvalidGrant("authorization code was issued to another client")
        if redirect_uri != code.redirect_uri:
            raise InvalidGrant("redirect_uri does not match the authorization request")
        if code.code_challenge is not None:
            check_verifier(verifier, code.code_challenge)
        elif verifier is not None:
            # PKCE downgrade protection (RFC 9700 §2.1.1, OAuth 2.1 §4.1.3): no challenge, no verifier.
            raise InvalidGrant("code_verifier sent for a code issued without code_challenge")
        if refresh is not None and redeemed.refresh is None:
            raise InvalidGrant("authorization code is invalid or expired")  # the store saw a mismatch
        if redeemed.user is None or redeemed.user.disabled:
            # Deleted or disabled after the code was issued: no tokens for that user (RFC 6749 §5.2).
            raise InvalidGrant("the user of this authorization code no longer exists or is disabled")

        audience = audience_value(code.audience)
        grant_id = (
            grant_id_of_family(redeemed.refresh.family_id)
            if redeemed.refresh
            else grant_id_of_code(code_hash)
        )
        access_token, _ = self.minter.access_token(
            client,
            subject=code.user_id,
            scope=code.scope,
            audience=audience,
            auth_time=code.auth_time,
            grant_id=grant_id,
            userinfo_claims=userinfo_claim_names(code.claims),
            groups=access_token_groups(redeemed.user, code.scope),
        )
        id_token = None
        if "openid" in code.scope.split():
            user = redeemed.user
            if user is None:
                raise InvalidGrant("the user of this authorization code no longer exists")
            # The scope's claims (OIDC Core §5.4 leaves them to the server when an access token is issued too)
            # and those the claims request asks the ID token for (§5.5).
            released = release(user, code.scope, requested_claims(code.claims, "id_token"))
            extra = {k: v for k, v in released.items() if k != "sub"}
            id_token = self.minter.id_token(
                client,
                subject=code.user_id,
                auth_time=code.auth_time,
                access_token=access_token,
                nonce=code.nonce,
                extra_claims=extra,
                session_id=code.session_id,
            )
        return token_response(
            access_token, self.minter.access_token_ttl(client), code.scope, refresh_value, id_token
        )
