"""The JWT bearer grant (RFC 7523 §2.1): a client trades a JWT a trusted issuer signed (a Kubernetes
service-account token, another provider's ID token) for an access token about the JWT's subject.

The client authenticates as at any grant and must have the grant registered. The assertion is checked as
RFC 7523 §3 says (``protocol.trusted_issuers``); every refusal of it is ``invalid_grant`` (§3.1). No refresh
token is issued: the workload asks again with its current JWT.

The access token's ``sub`` is the assertion's, prefixed with the trusted issuer's name and a colon
(``kubernetes:system:serviceaccount:ns:name``): another issuer's subject must never be read as one of this
server's users (their ids are UUIDs, never containing a colon) or as another issuer's subject.
"""

from __future__ import annotations

from typing import Any

from authserver.protocol.audience import choose_audience
from authserver.protocol.errors import InvalidGrant, UnauthorizedClient
from authserver.protocol.models import Client, GrantType
from authserver.protocol.params import Params, required, single
from authserver.protocol.scopes import OPENID_SCOPES, grant_scope
from authserver.protocol.tokens import TokenMinter, token_response
from authserver.protocol.trusted_issuers import TrustedTokenVerifier

_WHAT = "assertion"


def subject_of(issuer_name: str, subject: str) -> str:
    """The access token's ``sub`` for ``subject`` of the trusted issuer named ``issuer_name``."""
    return f"{issuer_name}:{subject}"


class JwtBearerGrant:
    grant_type = GrantType.JWT_BEARER

    def __init__(self, minter: TokenMinter, verifier: TrustedTokenVerifier) -> None:
        self.minter = minter
        self.verifier = verifier

    async def issue(self, params: Params, client: Client) -> dict[str, Any]:
        if client.is_public:
            raise UnauthorizedClient("public clients cannot use the JWT bearer grant")
        assertion = required(params, "assertion")
        issuer = self.verifier.issuer_named_by(assertion, _WHAT, InvalidGrant)
        if issuer is None:
            raise InvalidGrant("assertion iss is not a trusted issuer (RFC 7523 §3)")
        verified = await self.verifier.verify(assertion, issuer, _WHAT, InvalidGrant)
        # OIDC scopes describe one of this server's users; the assertion's subject is not one.
        allowed = tuple(scope for scope in client.scopes if scope not in OPENID_SCOPES)
        scope = grant_scope(single(params, "scope"), allowed)
        audience = choose_audience(params.get("resource") or (), client, self.minter.policy.default_audience)
        token, _ = self.minter.access_token(
            client, subject=subject_of(issuer.name, verified.subject), scope=scope, audience=audience
        )
        return token_response(token, self.minter.access_token_ttl(client), scope)
