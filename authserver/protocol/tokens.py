"""Minting tokens: RFC 9068 JWT access tokens, OpenID Connect ID tokens, opaque refresh tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from authserver.crypto.jws import JwsKey
from authserver.crypto.keyset import KeySet
from authserver.crypto.refresh_token_values import new_refresh_token
from authserver.protocol.claims import USERINFO_CLAIMS_CLAIM
from authserver.protocol.models import Client, NewRefreshToken

ACCESS_TOKEN_TYP = "at+jwt"  # noqa: S105 - a JOSE header value
# A private claim (RFC 9068 §2.2.3 allows more claims): the user grant an access token was issued in, so
# that revoking the grant revokes all of its access tokens (``refresh_token_values.grant_id_of_family``).
GRANT_ID_CLAIM = "grant_id"
# A JWT signature hash algorithm per JWS alg, for at_hash (OIDC Core §3.1.3.6). c_hash belongs to the
# hybrid flow (an ID token from the authorization endpoint), which this server does not offer.
_HASH_FOR_ALG = {"ES256": hashlib.sha256, "RS256": hashlib.sha256, "EdDSA": hashlib.sha512}
# Clients that registered no id_token_signed_response_alg get ES256 unless the server's settings say
# otherwise. RS256 is always in the key set and offered (OIDC Core §15.1: OPs MUST support it), and a client
# asks for it per registration; Dynamic Client Registration §2's RS256 default is for that protocol, which
# this server does not offer. ES256 signs about 9 times cheaper than RSA-2048 (36 µs against 325 µs here),
# and every common relying party verifies it; one that cannot fails loudly on the alg, not silently.
DEFAULT_ID_TOKEN_ALGORITHM = "ES256"  # noqa: S105 - an algorithm name

# Called with (asked, used) when an ID token could not be signed with the algorithm its client asked for.
FallbackReport = Callable[[str, str], None]


@dataclass(frozen=True)
class TokenPolicy:
    issuer: str
    access_token_ttl: timedelta
    refresh_token_ttl: timedelta
    authorization_code_ttl: timedelta
    default_audience: str
    id_token_algorithm: str = DEFAULT_ID_TOKEN_ALGORITHM  # for clients that chose none


def _ignore_fallback(asked: str, used: str) -> None:
    return None


class TokenMinter:
    def __init__(
        self, policy: TokenPolicy, keys: Callable[[], KeySet], on_fallback: FallbackReport = _ignore_fallback
    ) -> None:
        self.policy = policy
        self._keys = keys  # a getter: the key set can be swapped by a reload at any time
        self._on_fallback = on_fallback

    def id_token_algorithm(self, client: Client) -> str:
        return client.id_token_signed_response_alg or self.policy.id_token_algorithm

    def id_token_key(self, client: Client) -> JwsKey:
        """The key that signs ``client``'s ID tokens (and its logout tokens, Back-Channel Logout §2.4)."""
        # A key of the client's algorithm (OIDC Registration §2); a key set without one (written before it
        # held several algorithms) signs with its primary key and the caller is told.
        asked = self.id_token_algorithm(client)
        key = self._keys().id_token_key(asked)
        if key.alg != asked:
            self._on_fallback(asked, key.alg)
        return key

    def access_token_ttl(self, client: Client) -> int:
        return client.access_token_ttl_seconds or int(self.policy.access_token_ttl.total_seconds())

    def access_token(
        self,
        client: Client,
        *,
        subject: str,
        scope: str,
        audience: str | list[str],
        auth_time: int | None = None,
        grant_id: str | None = None,
        userinfo_claims: str | None = None,
        ttl: int | None = None,
        extra_claims: Mapping[str, Any] | None = None,
        groups: list[str] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """``ttl``: a shorter lifetime than the client's; ``extra_claims``: more claims (RFC 8693 act)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.policy.issuer,
            "sub": subject,
            "aud": audience,
            "exp": now + (self.access_token_ttl(client) if ttl is None else ttl),
            "iat": now,
            "nbf": now,
            "jti": secrets.token_urlsafe(16),
            "client_id": client.client_id,
        }
        if scope:
            claims["scope"] = scope
        if auth_time is not None:
            claims["auth_time"] = auth_time
        if grant_id is not None:
            claims[GRANT_ID_CLAIM] = grant_id
        if userinfo_claims is not None:
            claims[USERINFO_CLAIMS_CLAIM] = userinfo_claims  # what the claims request asked userinfo for
        if extra_claims:
            claims.update(extra_claims)
        if groups:
            claims["groups"] = groups
        return self._keys().sign(claims, ACCESS_TOKEN_TYP), claims

    def id_token(
        self,
        client: Client,
        *,
        subject: str,
        auth_time: int,
        access_token: str,
        nonce: str | None,
        extra_claims: dict[str, Any],
        session_id: str | None = None,
    ) -> str:
        key = self.id_token_key(client)
        # at_hash: the left half of the hash that goes with the ID token's own alg (OIDC Core §3.1.3.6).
        digest = _HASH_FOR_ALG[key.alg](access_token.encode()).digest()
        now = int(time.time())
        claims = {
            "iss": self.policy.issuer,
            "sub": subject,
            "aud": client.client_id,
            "azp": client.client_id,
            "exp": now + self.access_token_ttl(client),
            "iat": now,
            "auth_time": auth_time,
            "at_hash": base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode(),
            **extra_claims,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if session_id is not None:
            claims["sid"] = session_id  # OIDC Back-Channel Logout 1.0 §2.1, Front-Channel Logout 1.0 §3
        return key.sign(claims, "JWT")

    def next_refresh_token(self, client: Client, family_id: str) -> tuple[NewRefreshToken, str]:
        """The next refresh token of ``family_id`` for ``client``: what the store keeps (the secret's hash
        and the expiry) and the value handed to the client."""
        ttl = client.refresh_token_ttl_seconds or self.policy.refresh_token_ttl.total_seconds()
        value, secret_hash = new_refresh_token(family_id)
        record = NewRefreshToken(
            family_id=family_id,
            secret_hash=secret_hash,
            expires_at=datetime.now(UTC) + timedelta(seconds=ttl),
        )
        return record, value


def token_response(
    access_token: str,
    expires_in: int,
    scope: str,
    refresh_token: str | None = None,
    id_token: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer", "expires_in": expires_in}
    if scope:
        body["scope"] = scope
    if refresh_token:
        body["refresh_token"] = refresh_token
    if id_token:
        body["id_token"] = id_token
    return body


def audience_text(audience: str | list[str]) -> str:
    """Audiences as stored with a refresh token or code (space-separated URIs)."""
    return audience if isinstance(audience, str) else " ".join(audience)


def audience_value(text: str) -> str | list[str]:
    parts = text.split(" ")
    return parts[0] if len(parts) == 1 else parts
