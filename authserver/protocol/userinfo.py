"""OpenID Connect userinfo (OIDC Core §5.3): the standard claims a user releases (``protocol.claims``)."""

from __future__ import annotations

from typing import Any

from authserver.protocol.claims import USERINFO_CLAIMS_CLAIM, release
from authserver.protocol.errors import (
    InsufficientScope,
    InvalidBearerRequest,
    InvalidToken,
    MissingBearerToken,
)
from authserver.protocol.params import Params
from authserver.protocol.store import Store
from authserver.protocol.token_inspection import TokenInspector


def presented_token(authorization: str | None, body: Params | None, query: Params) -> str:
    """The one bearer token of a userinfo request (OIDC Core §5.3.1): in the Authorization header (RFC 6750
    §2.1) or, for a POST, as ``access_token`` in its form-encoded body (§2.2). Never in the query (OAuth 2.1
    §5.2.1), and in one place only (RFC 6750 §2: the client MUST NOT use more than one method)."""
    if "access_token" in query:
        raise InvalidBearerRequest("send the access token in the Authorization header, not the query")
    in_body = (body or {}).get("access_token")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("the Authorization header must be Bearer and a token")
        if in_body is not None:
            raise InvalidBearerRequest("send the access token once: in the header or in the body, not both")
        return token.strip()
    if in_body is None:
        raise MissingBearerToken()
    if len(in_body) != 1 or not in_body[0]:
        raise InvalidBearerRequest("send access_token once")
    return in_body[0]


class UserinfoEndpoint:
    def __init__(self, inspector: TokenInspector, store: Store) -> None:
        self.inspector = inspector
        self.store = store

    async def handle(self, access_token: str) -> dict[str, Any]:
        """The claims of the user ``access_token`` (``presented_token``) was issued for."""
        claims = self.inspector.active_access_token(access_token)
        if claims is None:
            raise InvalidToken("the access token is invalid, expired or revoked")
        if "openid" not in claims.get("scope", "").split():
            raise InsufficientScope("the access token lacks the openid scope", "openid")
        user = await self.store.get_user(claims["sub"])
        if user is None:
            raise InvalidToken("the user of this token no longer exists")
        # The granted scopes' claims and those the claims request asked userinfo for (OIDC Core §5.4, §5.5),
        # as the access token carries them.
        asked = claims.get(USERINFO_CLAIMS_CLAIM)
        return release(user, claims["scope"], asked.split() if isinstance(asked, str) else ())
