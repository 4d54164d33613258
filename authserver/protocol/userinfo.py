"""OpenID Connect standard claims a user releases, by scope (OIDC Core §5.4)."""

from __future__ import annotations

from typing import Any

from authserver.protocol.models import User


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
