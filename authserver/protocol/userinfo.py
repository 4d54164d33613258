"""OpenID Connect userinfo (OIDC Core §5.3): the standard claims a user releases, by scope (§5.4)."""

from __future__ import annotations

from typing import Any

from authserver.protocol.errors import InsufficientScope, InvalidToken
from authserver.protocol.models import User
from authserver.protocol.store import Store
from authserver.protocol.token_inspection import TokenInspector


def claims_for_scope(user: User, scope: str) -> dict[str, Any]:
    granted = set(scope.split())
    claims: dict[str, Any] = {"sub": user.user_id}
    if "profile" in granted:
        claims["preferred_username"] = user.username
        if user.name:
            claims["name"] = user.name
    if "email" in granted and user.email:
        claims["email"] = user.email
        claims["email_verified"] = user.email_verified
    return claims


class UserinfoEndpoint:
    def __init__(self, inspector: TokenInspector, store: Store) -> None:
        self.inspector = inspector
        self.store = store

    async def handle(self, access_token: str | None) -> dict[str, Any]:
        """The claims of the user ``access_token`` (the bearer token, RFC 6750 §2) was issued for."""
        if access_token is None:
            raise InvalidToken("a bearer access token is required")
        claims = self.inspector.active_access_token(access_token)
        if claims is None:
            raise InvalidToken("the access token is invalid, expired or revoked")
        if "openid" not in claims.get("scope", "").split():
            raise InsufficientScope("the access token lacks the openid scope", "openid")
        user = await self.store.get_user(claims["sub"])
        if user is None:
            raise InvalidToken("the user of this token no longer exists")
        return claims_for_scope(user, claims["scope"])
