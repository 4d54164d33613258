"""The tokens a token exchange accepts as subject_token or actor_token (RFC 8693 §2.1), behind one port.

``TokenValidator`` is that port: it names the token types it reads (RFC 8693 §3) and turns a token into a
``PresentedToken`` once its issuer's checks pass, or None. ``LocalAccessTokens`` reads this server's own
access tokens exactly as introspection does (signature, ``iss``, ``typ``, expiry, the revocation list); a
JWT from a trusted external issuer is one more validator in the list the grant is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from authserver.protocol.token_inspection import TokenInspector

# RFC 8693 §3: token type identifiers.
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - an identifier
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105 - an identifier


@dataclass(frozen=True)
class PresentedToken:
    """A subject or actor token that passed its issuer's checks."""

    issuer: str
    subject: str
    expires_at: int  # seconds since the epoch
    scope: tuple[str, ...]
    audiences: tuple[str, ...]
    # The client this server issued it to; None for another issuer's token.
    client_id: str | None
    claims: Mapping[str, Any]  # every claim, for act (§4.1), may_act (§4.4) and this server's own


class TokenValidator(Protocol):
    token_types: frozenset[str]

    async def validate(self, token: str, token_type: str) -> PresentedToken | None:
        """The token if it is valid and its issuer's; None otherwise (another validator may know it)."""
        ...


class LocalAccessTokens:
    """Access tokens this server issued: an RFC 9068 JWT is both an access token and a JWT (RFC 8693 §3)."""

    token_types = frozenset({ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE})

    def __init__(self, inspector: TokenInspector) -> None:
        self.inspector = inspector

    async def validate(self, token: str, token_type: str) -> PresentedToken | None:
        claims = self.inspector.active_access_token(token)
        if claims is None:
            return None
        audience = claims.get("aud")
        audiences = (audience,) if isinstance(audience, str) else tuple(audience or ())
        client_id = claims.get("client_id")
        return PresentedToken(
            issuer=str(claims["iss"]),
            subject=str(claims["sub"]),
            expires_at=int(claims["exp"]),
            scope=tuple(str(claims.get("scope") or "").split()),
            audiences=audiences,
            client_id=client_id if isinstance(client_id, str) else None,
            claims=claims,
        )
