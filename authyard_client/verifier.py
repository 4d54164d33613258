"""Verifying JWT access tokens at a resource server (RFC 9068 §4), with the issuer's keys from its JWKS.

The JWKS is fetched (from discovery unless given) on first use, cached, fetched again after ``jwks_max_age``
and when a token names a ``kid`` the cache does not know, at most once per ``min_jwks_refresh_interval``
(a signing-key rotation is seen at once; a flood of made-up kids does not become a flood of fetches).
Every refusal is an :class:`InvalidToken` or :class:`InsufficientScope` carrying its RFC 6750 §3.1 code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from authyard_client.errors import InsufficientScope, InvalidToken, VerifierUnavailable
from authyard_client.refresh import discovery_url

# The server signs with ES256 by default; RS256, PS256 and EdDSA are the other algorithms it can use.
# Never "none", never HMAC: a shared-key algorithm with a public key is the classic confusion attack.
DEFAULT_ALGORITHMS = ("ES256", "RS256", "PS256", "EdDSA")
_ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# RFC 9068 §2.2: the claims every JWT access token carries.
REQUIRED_CLAIMS = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")
_MAX_JWKS_BYTES = 256 * 1024


@dataclass(frozen=True)
class VerifiedToken:
    claims: dict[str, Any]
    scopes: frozenset[str]
    token: str = field(repr=False)

    @property
    def subject(self) -> str:
        return str(self.claims["sub"])

    @property
    def client_id(self) -> str:
        return str(self.claims["client_id"])


class TokenVerifier:
    """Checks access tokens of ``issuer`` meant for ``audience`` (async; one event loop)."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        jwks_uri: str | None = None,
        algorithms: Iterable[str] = DEFAULT_ALGORITHMS,
        leeway: float = 10.0,
        min_jwks_refresh_interval: float = 10.0,
        jwks_max_age: float = 3600.0,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.algorithms = tuple(algorithms)
        unsafe = set(self.algorithms) - _ASYMMETRIC
        if unsafe:
            raise ValueError(f"not allowed for access tokens: {sorted(unsafe)} (asymmetric algorithms only)")
        self.leeway = leeway
        self.min_jwks_refresh_interval = min_jwks_refresh_interval
        self.jwks_max_age = jwks_max_age
        self.clock = clock
        self.jwks_fetches = 0  # completed fetches, for metrics and tests
        self._jwks_uri = jwks_uri
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._keys: dict[str, dict[str, Any]] = {}
        self._fetched_at: float | None = None  # the last fetch attempt, successful or not
        self._last_error: str | None = None
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def verify(self, token: str, required_scopes: Iterable[str] = ()) -> VerifiedToken:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("the access token is not a JWT") from None
        # RFC 9068 §4: typ MUST be "at+jwt" (or its full media type); media types are case-insensitive.
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ("at+jwt", "application/at+jwt"):
            raise InvalidToken("not an access token (typ must be at+jwt)")
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise InvalidToken(f"signature algorithm {alg!r} is not accepted")
        jwk = await self._key(header.get("kid"), alg)
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
        except jwt.PyJWTError:
            raise InvalidToken("the signing key does not fit the token's algorithm") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the access token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the access token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the access token is not meant for this resource") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("the access token is from another issuer") from None
        except jwt.MissingRequiredClaimError as error:
            raise InvalidToken(f"the access token has no {error.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("the access token's signature does not verify") from None
        except jwt.PyJWTError:
            raise InvalidToken("the access token is malformed") from None
        scope = claims.get("scope")
        granted = frozenset(scope.split()) if isinstance(scope, str) else frozenset()  # RFC 9068 §2.2.3
        required = tuple(dict.fromkeys(required_scopes))
        missing = [name for name in required if name not in granted]
        if missing:
            raise InsufficientScope(f"the access token lacks the scope {' '.join(missing)}", required)
        return VerifiedToken(claims, granted, token)

    async def _key(self, kid: Any, alg: str) -> dict[str, Any]:
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the access token names no signing key (kid)")
        now = self.clock()
        stale = self._fetched_at is None or now - self._fetched_at >= self.jwks_max_age
        if kid in self._keys and not stale:
            return self._keys[kid]
        async with self._lock:
            # Another caller may have fetched while this one waited for the lock.
            if kid not in self._keys or stale:
                now = self.clock()
                if self._fetched_at is None or now - self._fetched_at >= self.min_jwks_refresh_interval:
                    await self._fetch_jwks()
        if kid in self._keys:
            return self._keys[kid]
        if not self._keys:
            raise VerifierUnavailable(
                f"no signing keys of {self.issuer} could be fetched: {self._last_error}"
            )
        raise InvalidToken("the access token is signed with an unknown key")

    async def _fetch_jwks(self) -> None:
        self._fetched_at = self.clock()
        try:
            uri = self._jwks_uri or await self._discover()
            response = await self._http.get(uri, headers={"Accept": "application/json"})
            if response.status_code != 200:
                raise ValueError(f"the JWKS answered {response.status_code}")
            if len(response.content) > _MAX_JWKS_BYTES:
                raise ValueError("the JWKS is too large")
            document = response.json()
            keys = document["keys"] if isinstance(document, dict) else None
            if not isinstance(keys, list):
                raise ValueError("the JWKS has no keys list")
        except (httpx.HTTPError, ValueError, KeyError) as error:
            # The keys fetched before stay in use: an unreachable JWKS does not fail tokens it already knew.
            self._last_error = f"{type(error).__name__}: {error}"
            return
        self._keys = {
            key["kid"]: key
            for key in keys
            if isinstance(key, dict) and isinstance(key.get("kid"), str) and key.get("use", "sig") == "sig"
        }
        self._last_error = None
        self.jwks_fetches += 1

    async def _discover(self) -> str:
        response = await self._http.get(discovery_url(self.issuer))
        if response.status_code != 200:
            raise ValueError(f"discovery answered {response.status_code}")
        document = response.json()
        # OIDC Discovery §4.3: the document's issuer MUST be the one configured.
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise ValueError("the discovery document names another issuer")
        uri = document.get("jwks_uri")
        if not isinstance(uri, str):
            raise ValueError("the discovery document has no jwks_uri")
        self._jwks_uri = uri
        return uri
