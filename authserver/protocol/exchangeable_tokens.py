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

from authserver.protocol.errors import InvalidRequest
from authserver.protocol.grants.jwt_bearer import subject_of
from authserver.protocol.token_inspection import TokenInspector
from authserver.protocol.trusted_issuers import TrustedTokenVerifier

# RFC 8693 §3: token type identifiers.
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - an identifier
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"  # noqa: S105 - an identifier


@dataclass(frozen=True)
class PresentedToken:
    """A subject or actor token that passed its issuer's checks."""

    issuer: str
    subject: str
    expires_at: int  # seconds since the epoch
    # None: the token carries no scope (another issuer's identity token, such as a Kubernetes
    # service-account token): only the exchanging client's scopes bound the result.
    scope: tuple[str, ...] | None
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


class TrustedIssuerTokens:
    """JWTs of a trusted issuer (``AUTHSERVER_TRUSTED_ISSUERS_FILE``: the cluster's service-account tokens,
    another cluster's, an external OpenID issuer's), checked exactly as for workload identity: signature by
    the issuer's keys, ``aud`` one of its audiences, ``exp``/``nbf``/``iat``. Its subject is namespaced by the
    issuer's name, as the JWT bearer grant's (never mistaken for a local user)."""

    token_types = frozenset({JWT_TOKEN_TYPE})

    def __init__(self, verifier: TrustedTokenVerifier) -> None:
        self.verifier = verifier

    async def validate(self, token: str, token_type: str) -> PresentedToken | None:
        issuer = self.verifier.issuer_named_by(token, "the token", InvalidRequest)
        if issuer is None:
            return None  # not a trusted issuer's: another validator may know it
        # RFC 8693 §2.2.2: a token that is not valid is invalid_request; its issuer's rule is named.
        verified = await self.verifier.verify(token, issuer, "the token", InvalidRequest)
        claims = verified.claims
        audience = claims.get("aud")
        scope = claims.get("scope")
        return PresentedToken(
            issuer=issuer.issuer,
            subject=subject_of(issuer.name, verified.subject),
            expires_at=int(claims["exp"]),
            scope=tuple(scope.split()) if isinstance(scope, str) else None,
            audiences=(audience,) if isinstance(audience, str) else tuple(audience or ()),
            client_id=None,
            claims=claims,
        )
