"""client_credentials (RFC 6749 §4.4): a confidential client gets a token for itself, no refresh token."""

from __future__ import annotations

from typing import Any

from authserver.protocol.audience import choose_audience
from authserver.protocol.errors import UnauthorizedClient
from authserver.protocol.models import Client, GrantType
from authserver.protocol.params import Params, single
from authserver.protocol.scopes import OPENID_SCOPES, grant_scope
from authserver.protocol.tokens import TokenMinter, token_response


class ClientCredentialsGrant:
    grant_type = GrantType.CLIENT_CREDENTIALS

    def __init__(self, minter: TokenMinter) -> None:
        self.minter = minter

    async def issue(self, params: Params, client: Client) -> dict[str, Any]:
        if client.is_public:
            raise UnauthorizedClient("public clients cannot use client_credentials")
        # OIDC scopes describe a user; a client acting for itself has none to grant.
        allowed = tuple(scope for scope in client.scopes if scope not in OPENID_SCOPES)
        scope = grant_scope(single(params, "scope"), allowed)
        audience = choose_audience(params.get("resource") or (), client, self.minter.policy.default_audience)
        token, _ = self.minter.access_token(client, subject=client.client_id, scope=scope, audience=audience)
        return token_response(token, self.minter.access_token_ttl(client), scope)
