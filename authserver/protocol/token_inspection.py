"""Introspection (RFC 7662) and revocation (RFC 7009) of the tokens this server issued.

Access tokens are JWTs checked locally (signature, issuer, expiry, ``typ``) plus the in-memory revocation
list; refresh tokens are opaque and looked up by family (``refresh_token_values``).

Verified-token cache: resource servers introspect the same bearer token on every call they receive, so a
worker remembers, per token string, the claims whose signature, issuer and ``typ`` it already checked
(bounded, oldest out first, dropped with the key set that verified them). Only that signature work is
cached: expiry is checked on every call and the revocation list is consulted on every call, so a
revocation is seen exactly as without the cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jwt

from authserver.crypto.keyset import KeySet
from authserver.protocol.errors import UnauthorizedClient
from authserver.protocol.grant_revocation import GrantRevoker
from authserver.protocol.models import Client, RefreshToken
from authserver.protocol.refresh_token_lookup import presented_refresh_token
from authserver.protocol.revocation_list import CLOCK_LEEWAY_SECONDS, RevocationList
from authserver.protocol.store import Store
from authserver.protocol.tokens import ACCESS_TOKEN_TYP, GRANT_ID_CLAIM

INACTIVE: dict[str, Any] = {"active": False}
_MAX_TOKEN_LENGTH = 8192
_REQUIRED_CLAIMS = ("exp", "iat", "jti", "sub")
_LEEWAY_SECONDS = CLOCK_LEEWAY_SECONDS
_VERIFY_OPTIONS = {"verify_aud": False, "verify_exp": False, "require": _REQUIRED_CLAIMS}


class TokenInspector:
    def __init__(
        self,
        keys: Callable[[], KeySet],
        store: Store,
        revocations: RevocationList,
        issuer: str,
        grants: GrantRevoker,
        verified_cache_size: int = 0,
    ) -> None:
        self._keys = keys
        self.store = store
        self.revocations = revocations
        self.grants = grants
        self.issuer = issuer
        self.verified_cache_size = verified_cache_size
        # token -> (the key set that verified it, its claims); insertion order = age.
        self._verified: dict[str, tuple[KeySet, dict[str, Any]]] = {}

    def decode_access_token(self, token: str, *, verify_exp: bool = True) -> dict[str, Any] | None:
        """Claims of a valid access token this server issued, or None (revocation not checked here)."""
        if len(token) > _MAX_TOKEN_LENGTH or token.count(".") != 2:
            return None
        keys = self._keys()
        cached = self._verified.get(token)
        if cached is not None and cached[0] is keys:
            claims = cached[1]
        else:
            try:
                # One parse: kid, alg (from our key), typ (an ID token is not an access token, RFC 9068
                # §4), signature, issuer, required claims, nbf and iat; expiry below, on every call.
                claims = keys.verify(
                    token,
                    typ=ACCESS_TOKEN_TYP,
                    issuer=self.issuer,
                    options=_VERIFY_OPTIONS,
                    leeway=_LEEWAY_SECONDS,
                )
            except (jwt.PyJWTError, ValueError, TypeError):  # unknown kid, bad signature, malformed...
                return None
            if self.verified_cache_size > 0:
                if len(self._verified) >= self.verified_cache_size:
                    del self._verified[next(iter(self._verified))]
                self._verified[token] = (keys, claims)
        if verify_exp and claims["exp"] <= time.time() - _LEEWAY_SECONDS:
            return None
        return claims

    def active_access_token(self, token: str) -> dict[str, Any] | None:
        claims = self.decode_access_token(token)
        if claims is None or self.revocations.is_revoked(claims["jti"], claims.get(GRANT_ID_CLAIM)):
            return None
        return claims

    async def _refresh_record(self, token: str) -> RefreshToken | None:
        presented = await presented_refresh_token(self.store, token)
        return None if presented is None else await self.store.get_refresh_token(*presented)

    async def introspect(self, token: str, hint: str | None) -> dict[str, Any]:
        lookups = [self._introspect_access, self._introspect_refresh]
        if hint == "refresh_token":
            lookups.reverse()
        for lookup in lookups:
            result = await lookup(token)
            if result is not None:
                return result
        return INACTIVE

    async def _introspect_access(self, token: str) -> dict[str, Any] | None:
        claims = self.active_access_token(token)
        if claims is None:
            return None
        return {"active": True, "token_type": "Bearer", **claims}

    async def _introspect_refresh(self, token: str) -> dict[str, Any] | None:
        record = await self._refresh_record(token)
        if record is None or record.revoked or record.rotated:
            return None
        expires_at = record.expires_at if record.expires_at.tzinfo else record.expires_at.replace(tzinfo=UTC)
        if expires_at <= datetime.now(UTC):
            return None
        body: dict[str, Any] = {
            "active": True,
            "token_type": "refresh_token",
            "client_id": record.client_id,
            "scope": record.scope,
            "exp": int(expires_at.timestamp()),
            "iss": self.issuer,
        }
        if record.user_id:
            body["sub"] = record.user_id
        return body

    async def revoke(self, token: str, hint: str | None, client: Client) -> None:
        """Revoke a token issued to ``client``; unknown or expired tokens need nothing (RFC 7009 §2.2).

        An access token revokes only itself (RFC 7009 §2.1 allows more; a resource server's token must not
        end the user's sign-in). A refresh token revokes its grant: the family and every access token
        issued in it (RFC 7009 §2.1: the server SHOULD also invalidate the access tokens of the grant)."""
        if hint != "refresh_token":
            claims = self.decode_access_token(token, verify_exp=False)
            if claims is not None:
                if claims.get("client_id") != client.client_id:
                    raise UnauthorizedClient("this token was not issued to the requesting client")
                if claims["exp"] > time.time():
                    await self.store.revoke_access_token(
                        claims["jti"], datetime.fromtimestamp(claims["exp"], UTC)
                    )
                    self.revocations.add(claims["jti"], claims["exp"])
                return
        record = await self._refresh_record(token)
        if record is not None:
            if record.client_id != client.client_id:
                raise UnauthorizedClient("this token was not issued to the requesting client")
            await self.grants.revoke_family(record.family_id, client)
