"""JWTs from trusted issuers (a Kubernetes cluster's service-account issuer, another OIDC provider): the
checks shared by workload identity client authentication (RFC 7523 §2.2) and the JWT bearer grant
(RFC 7523 §2.1), both following RFC 7523 §3.

The issuer's keys come through a port (``IssuerKeys``: its JWKS, fetched outside this layer). A refusal is
raised as the error the caller names (``invalid_client`` when authenticating, ``invalid_grant`` for the
grant) with a description naming the rule broken, never a key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from authserver.crypto.client_jwks import ASSERTION_ALGORITHMS
from authserver.protocol.client_assertion import MAX_ASSERTION_BYTES, load_key
from authserver.protocol.errors import OAuthError
from authserver.protocol.jwt_preview import MalformedJwt, preview
from authserver.protocol.revocation_list import CLOCK_LEEWAY_SECONDS

_MAX_SUBJECT_LENGTH = 255


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


# The issuer's public JWKs; ``refresh``: a kid was not found, look again (the fetcher may decline if it
# looked very recently). Raises ClientKeysUnavailable.
IssuerKeys = Callable[[TrustedIssuer, bool], Awaitable[Sequence[Mapping[str, Any]]]]
ErrorFactory = Callable[[str], OAuthError]


def unverified_issuer(token: str, what: str, error: ErrorFactory) -> str | None:
    """The ``iss`` a JWT names, read before its signature can be checked: it only says whose keys to check
    it with. None: the JWT names no issuer."""
    if len(token) > MAX_ASSERTION_BYTES:
        raise error(f"{what} is longer than {MAX_ASSERTION_BYTES} bytes")
    try:
        _, claims = preview(token)
    except MalformedJwt:
        raise error(f"{what} is not a well-formed JWT") from None
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else None


class TrustedTokenVerifier:
    def __init__(
        self,
        issuers: Sequence[TrustedIssuer],
        keys: IssuerKeys,
        leeway_seconds: int = CLOCK_LEEWAY_SECONDS,
    ) -> None:
        self.by_issuer = {issuer.issuer: issuer for issuer in issuers}
        self.by_name = {issuer.name: issuer for issuer in issuers}
        self.keys = keys
        self.leeway_seconds = leeway_seconds

    def issuer_named_by(self, token: str, what: str, error: ErrorFactory) -> TrustedIssuer | None:
        """The trusted issuer whose ``iss`` the (unverified) token carries; None: not a trusted one."""
        issuer = unverified_issuer(token, what, error)
        return self.by_issuer.get(issuer) if issuer is not None else None

    async def verify(
        self, token: str, issuer: TrustedIssuer, what: str, error: ErrorFactory
    ) -> VerifiedToken:
        """Raise ``error`` unless ``token`` is a JWT ``issuer`` signed, meant for this server and valid now
        (RFC 7523 §3: iss, sub, aud, exp required; nbf and iat honoured with the clock leeway)."""
        if len(token) > MAX_ASSERTION_BYTES:
            raise error(f"{what} is longer than {MAX_ASSERTION_BYTES} bytes")
        try:
            header, _ = preview(token)
        except MalformedJwt:
            raise error(f"{what} is not a well-formed JWT") from None
        algorithm = header.get("alg")
        # RFC 8725 §3.1: an allow-list of asymmetric algorithms; never none, never HMAC (which a public key
        # would key for anyone who has it).
        if not isinstance(algorithm, str) or algorithm not in ASSERTION_ALGORITHMS:
            raise error(f"{what} must be signed with {' or '.join(ASSERTION_ALGORITHMS)}")
        key = await self._key(issuer, algorithm, header.get("kid"), what, error)
        claims = self._decode(token, issuer, algorithm, key, what, error)
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject or len(subject) > _MAX_SUBJECT_LENGTH:
            raise error(f"{what} sub must be a non-empty string")
        return VerifiedToken(issuer, subject, claims)

    async def _key(
        self, issuer: TrustedIssuer, algorithm: str, kid: object, what: str, error: ErrorFactory
    ) -> jwt.PyJWK:
        if kid is not None and not isinstance(kid, str):
            raise error(f"{what} kid must be a string")
        return await load_key(
            lambda refresh: self.keys(issuer, refresh),
            algorithm,
            kid,
            error,
            whose_key=f"key of trusted issuer {issuer.name}",
            whose_keys=f"the keys of trusted issuer {issuer.name}",
        )

    def _decode(
        self,
        token: str,
        issuer: TrustedIssuer,
        algorithm: str,
        key: jwt.PyJWK,
        what: str,
        error: ErrorFactory,
    ) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=list(issuer.audiences),
                issuer=issuer.issuer,
                leeway=self.leeway_seconds,
                options={"require": ["iss", "sub", "aud", "exp"]},
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
        if not isinstance(claims["exp"], int | float):
            raise error(f"{what} exp must be a number")
        return claims
