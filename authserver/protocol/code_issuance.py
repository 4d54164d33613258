"""Issuing an authorization code once the user has consented (RFC 6749 §4.1.2, OAuth 2.1 §4.1.2).

The code is random and stored only as its hash, bound to everything the token request must match (client,
redirect URI, PKCE challenge) and short-lived (``TokenPolicy.authorization_code_ttl``; RFC 6749 §4.1.2
recommends at most ten minutes). The response carries ``iss`` (RFC 9207) so that a client talking to several
servers can tell which one answered.
"""

from __future__ import annotations

from datetime import UTC, datetime

from authserver.crypto.opaque_tokens import new_opaque_token, token_hash
from authserver.protocol.authorization import AuthorizationRequest, redirect_with
from authserver.protocol.models import AuthorizationCode
from authserver.protocol.store import Store
from authserver.protocol.tokens import TokenPolicy


class CodeIssuer:
    def __init__(self, policy: TokenPolicy, store: Store) -> None:
        self.policy = policy
        self.store = store

    async def issue(
        self,
        request: AuthorizationRequest,
        user_id: str,
        auth_time: int,
        *,
        session_id: str | None = None,
        now: datetime | None = None,
    ) -> str:
        """Store a new code for ``request`` and ``user_id``, signed in by session ``session_id`` (recorded as
        signed into the client); the redirect (code, state, iss) to send back."""
        issued_at = now or datetime.now(UTC)
        code = new_opaque_token()
        await self.store.save_authorization_code(
            token_hash(code),
            AuthorizationCode(
                client_id=request.client_id,
                user_id=user_id,
                redirect_uri=request.redirect_uri,
                scope=request.scope,
                audience=request.audience,
                code_challenge=request.code_challenge,
                auth_time=auth_time,
                expires_at=issued_at + self.policy.authorization_code_ttl,
                nonce=request.nonce,
                claims=request.claims,
                session_id=session_id,
            ),
        )
        if session_id is not None:
            await self.store.add_session_client(session_id, request.client_id, issued_at)
        return redirect_with(
            request.redirect_uri, {"code": code, "state": request.state, "iss": self.policy.issuer}
        )
