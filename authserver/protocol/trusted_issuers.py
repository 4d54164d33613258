"""JWTs from trusted issuers (a Kubernetes cluster's service-account issuer, another OIDC provider): the
checks shared by workload identity client authentication (RFC 7523 §2.2) and the JWT bearer grant
(RFC 7523 §2.1), both following RFC 7523 §3.

The issuer's keys come through a port (``IssuerKeys``: its JWKS, fetched outside this layer). A refusal is
raised as the error the caller names (``invalid_client`` when authenticating, ``invalid_grant`` for the
grant) with a description naming the rule broken, never a key.

A token that verified is remembered (by its SHA-256, never the token itself) until it expires: a pod sends
the same projected service-account token on every request until the kubelet rotates it, and checking its
signature each time was most of the cost of such a request. The memory answers only while the issuer's key
set is the very one the token verified with, so a key set refetched (a key rotation or removal) has every
token verified again; the time checks are monotonic (``nbf``/``iat`` only get further behind), so only the
expiry is looked at again. The Kubernetes API server keeps a token cache for the same reason.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from authserver.crypto import jws
from authserver.crypto.client_jwks import ASSERTION_ALGORITHMS
from authserver.protocol.client_assertion import (
    ClientKeysUnavailable,
    KeySet,
    ParsedKeys,
    load_key,
    preview_assertion,
)
from authserver.protocol.errors import OAuthError
from authserver.protocol.revocation_list import CLOCK_LEEWAY_SECONDS

_MAX_SUBJECT_LENGTH = 255
_MAX_REMEMBERED = 4096  # verified tokens a worker remembers (a pod's token each, for its lifetime)


@dataclass(frozen=True)
class TrustedIssuer:
    name: str  # what registrations name it by (``workload_identity.issuer``)
    issuer: str  # the ``iss`` its tokens carry
    # RFC 7523 §3 item 3: a token must name one of these in ``aud`` (resolved at startup: the configured
    # audiences, or this server's issuer).
    audiences: tuple[str, ...]


@dataclass(frozen=True)
class VerifiedToken:
    issuer: TrustedIssuer
    subject: str
    claims: dict[str, Any]


@dataclass(frozen=True)
class _Remembered:
    verified: VerifiedToken
    key_set: KeySet  # the issuer's key set it verified with (the same object: a refetch is another one)
    until: float  # exp + leeway, in time.time()


# The issuer's public JWKs; ``refresh``: a kid was not found, look again (the fetcher may decline if it
# looked very recently). Raises ClientKeysUnavailable.
IssuerKeys = Callable[[TrustedIssuer, bool], Awaitable[Sequence[Mapping[str, Any]]]]
ErrorFactory = Callable[[str], OAuthError]
_REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp")


def unverified_issuer(token: str, what: str, error: ErrorFactory) -> str | None:
    """The ``iss`` a JWT names, read before its signature can be checked: it only says whose keys to check
    it with. None: the JWT names no issuer."""
    _, claims = preview_assertion(token, what, error)
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else None


class TrustedTokenVerifier:
    def __init__(
        self,
        issuers: Sequence[TrustedIssuer],
        keys: IssuerKeys,
        leeway_seconds: int = CLOCK_LEEWAY_SECONDS,
        clock: Callable[[], float] = time.time,
        remember: int = _MAX_REMEMBERED,
    ) -> None:
        self.by_issuer = {issuer.issuer: issuer for issuer in issuers}
        self.by_name = {issuer.name: issuer for issuer in issuers}
        self.keys = keys
        self.leeway_seconds = leeway_seconds
        self.parsed_keys = ParsedKeys()
        self._clock = clock
        self._remembered: dict[bytes, _Remembered] = {}
        self._remember_limit = remember

    def issuer_named_by(self, token: str, what: str, error: ErrorFactory) -> TrustedIssuer | None:
        """The trusted issuer whose ``iss`` the (unverified) token carries; None: not a trusted one."""
        remembered = self.remembered_issuer(token)
        if remembered is not None:
            return remembered
        return self.trusted(unverified_issuer(token, what, error))

    def remembered_issuer(self, token: str) -> TrustedIssuer | None:
        """The issuer of ``token`` if it verified before and is remembered (``verify`` judges it again)."""
        remembered = self._remembered.get(_digest(token))
        return None if remembered is None else remembered.verified.issuer

    def trusted(self, issuer: object) -> TrustedIssuer | None:
        """The trusted issuer whose ``iss`` is ``issuer`` (a claim read unverified), if any."""
        return self.by_issuer.get(issuer) if isinstance(issuer, str) else None

    async def verify(
        self,
        token: str,
        issuer: TrustedIssuer,
        what: str,
        error: ErrorFactory,
        header: Mapping[str, Any] | None = None,
    ) -> VerifiedToken:
        """Raise ``error`` unless ``token`` is a JWT ``issuer`` signed, meant for this server and valid now
        (RFC 7523 §3: iss, sub, aud, exp required; nbf and iat honoured with the clock leeway).
        ``header``: the token's, when the caller has already read it."""
        digest = _digest(token)
        remembered = self._remembered.get(digest)
        if remembered is not None:
            if await self._still_valid(remembered, issuer, what, error):
                return remembered.verified
            del self._remembered[digest]
        if header is None:
            header, _ = preview_assertion(token, what, error)
        algorithm = header.get("alg")
        # RFC 8725 §3.1: an allow-list of asymmetric algorithms; never none, never HMAC (which a public key
        # would key for anyone who has it).
        if not isinstance(algorithm, str) or algorithm not in ASSERTION_ALGORITHMS:
            raise error(f"{what} must be signed with {' or '.join(ASSERTION_ALGORITHMS)}")
        key, key_set = await self._key(issuer, algorithm, header.get("kid"), what, error)
        claims = self._decode(token, issuer, key, what, error)
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject or len(subject) > _MAX_SUBJECT_LENGTH:
            raise error(f"{what} sub must be a non-empty string")
        verified = VerifiedToken(issuer, subject, claims)
        self._remember(digest, _Remembered(verified, key_set, claims["exp"] + self.leeway_seconds))
        return verified

    async def _still_valid(
        self, remembered: _Remembered, issuer: TrustedIssuer, what: str, error: ErrorFactory
    ) -> bool:
        """Whether verifying the remembered token again would pass: same issuer, not expired (with the
        leeway, as PyJWT judges ``exp``), and the issuer's current key set the one it verified with."""
        if remembered.verified.issuer is not issuer or self._clock() >= remembered.until:
            return False
        try:
            return await self.keys(issuer, False) is remembered.key_set
        except ClientKeysUnavailable as failure:
            raise error(
                f"the keys of trusted issuer {issuer.name} are unavailable: {failure.description}"
            ) from None

    def _remember(self, digest: bytes, remembered: _Remembered) -> None:
        if len(self._remembered) >= self._remember_limit:
            now = self._clock()
            for stale in [key for key, entry in self._remembered.items() if entry.until <= now]:
                del self._remembered[stale]
            if len(self._remembered) >= self._remember_limit:
                del self._remembered[next(iter(self._remembered))]  # the oldest
        self._remembered[digest] = remembered

    async def _key(
        self, issuer: TrustedIssuer, algorithm: str, kid: object, what: str, error: ErrorFactory
    ) -> tuple[jws.VerificationKey, KeySet]:
        if kid is not None and not isinstance(kid, str):
            raise error(f"{what} kid must be a string")
        return await load_key(
            lambda refresh: self.keys(issuer, refresh),
            self.parsed_keys,
            algorithm,
            kid,
            error,
            whose_key=f"key of trusted issuer {issuer.name}",
            whose_keys=f"the keys of trusted issuer {issuer.name}",
        )

    def _decode(
        self, token: str, issuer: TrustedIssuer, key: jws.VerificationKey, what: str, error: ErrorFactory
    ) -> dict[str, Any]:
        try:
            claims = jws.verify_signed(
                token,
                key,
                issuer=issuer.issuer,
                audiences=issuer.audiences,
                require=_REQUIRED_CLAIMS,
                leeway=self.leeway_seconds,
                now=self._clock(),
            )
        except jwt.MissingRequiredClaimError as failure:
            raise error(f"{what} lacks the {failure.claim} claim (RFC 7523 §3)") from None
        except jwt.ExpiredSignatureError:
            raise error(f"{what} has expired") from None
        except jwt.ImmatureSignatureError:
            raise error(f"{what} is not valid yet (nbf or iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise error(
                f"{what} aud must contain an audience trusted issuer {issuer.name} is accepted for: "
                f"{', '.join(issuer.audiences)}"
            ) from None
        except jwt.InvalidIssuerError:
            raise error(f"{what} iss is not trusted issuer {issuer.name}") from None
        except jwt.InvalidSignatureError:
            raise error(f"{what} signature does not verify with trusted issuer {issuer.name}'s key") from None
        except jwt.PyJWTError:
            raise error(f"{what} is not a valid JWT") from None
        return claims


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
