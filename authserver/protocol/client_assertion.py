"""private_key_jwt: a client authenticates with a JWT it signed (RFC 7523 §2.2 and §3, OIDC Core §9).

The assertion's keys come through a port (``ClientKeys``: inline ``jwks`` or a fetched ``jwks_uri``, the
fetching done outside this layer); its ``jti`` is spent through the store, once across every worker and
replica. Every refusal is ``invalid_client`` with a description meant for the client's developer: it names
the rule broken, never a key or a secret.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from authserver.crypto import jws
from authserver.crypto.client_jwks import ASSERTION_ALGORITHMS, algorithms_for
from authserver.protocol.errors import InvalidClient, OAuthError
from authserver.protocol.jwt_preview import MalformedJwt, preview
from authserver.protocol.models import Client
from authserver.protocol.revocation_list import CLOCK_LEEWAY_SECONDS

# RFC 7523 §2.2: the client_assertion_type of a JWT client assertion.
JWT_BEARER_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_BYTES = 8192
# Authlib (and most client libraries) sign assertions that live one hour.
DEFAULT_MAX_LIFETIME = timedelta(hours=1)
_MAX_JTI_LENGTH = 255
_REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "jti")
_MAX_PARSED_KEYS = 1024


class ClientKeysUnavailable(Exception):
    """The client's keys cannot be had (its jwks_uri hangs, fails or serves garbage); ``description`` says
    what went wrong without echoing what was served."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


# The client's public JWKs; ``refresh``: a kid was not found, look again (the fetcher may decline if it
# looked very recently). Raises ClientKeysUnavailable.
ClientKeys = Callable[[Client, bool], Awaitable[Sequence[Mapping[str, Any]]]]
ErrorFactory = Callable[[str], OAuthError]
Preview = tuple[dict[str, Any], dict[str, Any]]
# Spend an assertion's jti: True the first time ``key`` is seen before ``expires_at``, False on a replay.
SpendAssertion = Callable[[str, datetime, datetime], Awaitable[bool]]


def preview_assertion(
    assertion: str, what: str = "client_assertion", error: ErrorFactory | None = None
) -> Preview:
    """(header, claims) of an assertion, unverified and read once per request: they only say whose keys to
    check it with (``iss``, ``sub``, ``kid``, ``alg``). Raises ``error`` (InvalidClient) if it is too long or
    not a JWT."""
    fail = error or InvalidClient
    if len(assertion) > MAX_ASSERTION_BYTES:
        raise fail(f"{what} is longer than {MAX_ASSERTION_BYTES} bytes")
    try:
        return preview(assertion)
    except MalformedJwt:
        raise fail(f"{what} is not a well-formed JWT") from None


def unverified_client_id(claims: Mapping[str, Any]) -> str:
    """The ``sub`` the assertion names (its client, RFC 7523 §3 item 2), read before its signature can be
    checked: it only says which client's keys to check it with."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise InvalidClient("client_assertion must have a sub claim naming the client_id (RFC 7523 §3)")
    return subject


def assertion_key(client_id: str, jti: str) -> str:
    """What the store keeps of a spent assertion: a hash of its client and jti (jti is unique per issuer)."""
    return hashlib.sha256(f"{client_id}\x00{jti}".encode()).hexdigest()


@dataclass(frozen=True)
class AssertionPolicy:
    # RFC 7523 §3 item 3: the server's own identity; this server accepts its issuer and the URL of its token
    # endpoint (OIDC Core §9 names it) and those of the other endpoints that authenticate clients.
    audiences: Collection[str]
    max_lifetime: timedelta = DEFAULT_MAX_LIFETIME
    leeway_seconds: int = CLOCK_LEEWAY_SECONDS


class ClientAssertionVerifier:
    def __init__(self, policy: AssertionPolicy, keys: ClientKeys, spend: SpendAssertion) -> None:
        self.policy = policy
        self.keys = keys
        self.spend = spend
        self.parsed_keys = ParsedKeys()

    async def verify(
        self,
        client: Client,
        assertion: str,
        now: datetime | None = None,
        header: Mapping[str, Any] | None = None,
    ) -> None:
        """Raise InvalidClient unless ``assertion`` proves ``client`` (RFC 7523 §3, OIDC Core §9).
        ``header``: the assertion's, when the caller has already read it (``preview_assertion``)."""
        if header is None:
            header, _ = preview_assertion(assertion)
        algorithm = header.get("alg")
        allowed: tuple[str, ...] = ASSERTION_ALGORITHMS
        if client.token_endpoint_auth_signing_alg is not None:
            allowed = (client.token_endpoint_auth_signing_alg,)
        if not isinstance(algorithm, str) or algorithm not in allowed:
            raise InvalidClient(f"client_assertion must be signed with {' or '.join(allowed)}")
        key, _ = await self._key(client, algorithm, header.get("kid"))
        claims = self._decode(client, assertion, key)
        now = now or datetime.now(UTC)
        expires_at = datetime.fromtimestamp(claims["exp"], UTC)
        longest = self.policy.max_lifetime + timedelta(seconds=self.policy.leeway_seconds)
        if expires_at - now > longest:
            raise InvalidClient(
                f"client_assertion exp is more than {int(self.policy.max_lifetime.total_seconds())} s away"
            )
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti or len(jti) > _MAX_JTI_LENGTH:
            raise InvalidClient("client_assertion jti must be a non-empty string")
        # RFC 7523 §3 item 7: a jti is accepted once; kept until the assertion could no longer be accepted.
        keep_until = expires_at + timedelta(seconds=self.policy.leeway_seconds)
        if not await self.spend(assertion_key(client.client_id, jti), keep_until, now):
            raise InvalidClient("client_assertion was already used (its jti is spent)")

    async def _key(self, client: Client, algorithm: str, kid: object) -> tuple[jws.VerificationKey, KeySet]:
        if kid is not None and not isinstance(kid, str):
            raise InvalidClient("client_assertion kid must be a string")
        return await load_key(
            lambda refresh: self.keys(client, refresh),
            self.parsed_keys,
            algorithm,
            kid,
            InvalidClient,
            whose_key="registered key of this client",
            whose_keys="the client's keys",
        )

    def _decode(self, client: Client, assertion: str, key: jws.VerificationKey) -> dict[str, Any]:
        try:
            claims = jws.verify_signed(
                assertion,
                key,
                issuer=client.client_id,
                audiences=self.policy.audiences,
                require=_REQUIRED_CLAIMS,
                leeway=self.policy.leeway_seconds,
            )
        except jwt.MissingRequiredClaimError as error:
            raise InvalidClient(f"client_assertion lacks the {error.claim} claim (RFC 7523 §3)") from None
        except jwt.ExpiredSignatureError:
            raise InvalidClient("client_assertion has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidClient("client_assertion is not valid yet (nbf or iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise InvalidClient(
                "client_assertion aud must contain this server's token endpoint URL or its issuer"
            ) from None
        except jwt.InvalidIssuerError:
            raise InvalidClient("client_assertion iss must be the client_id (RFC 7523 §3)") from None
        except jwt.InvalidSignatureError:
            raise InvalidClient("client_assertion signature does not verify with the client's key") from None
        except jwt.PyJWTError:
            raise InvalidClient("client_assertion is not a valid JWT") from None
        # RFC 7523 §3 item 2: sub is the client_id.
        if claims["sub"] != client.client_id:
            raise InvalidClient("client_assertion sub must be the client_id (RFC 7523 §3)")
        return claims


KeySet = Sequence[Mapping[str, Any]]


class ParsedKeys:
    """Key objects parsed from JWKs (by PyJWT's JWK reader), once per JWK and algorithm. A registered or
    fetched key set stays the same object while it is cached, so a JWK's identity is its cache key; the entry
    holds the JWK, so no other object can take its id while the entry lives."""

    def __init__(self, limit: int = _MAX_PARSED_KEYS) -> None:
        self._limit = limit
        self._parsed: dict[tuple[int, str], tuple[Mapping[str, Any], jws.VerificationKey]] = {}

    def get(self, jwk: Mapping[str, Any], algorithm: str) -> jws.VerificationKey:
        """Raises ValueError (or a PyJWT key error) if the JWK cannot be used with ``algorithm``."""
        entry = self._parsed.get((id(jwk), algorithm))
        if entry is not None and entry[0] is jwk:
            return entry[1]
        key = jws.VerificationKey(algorithm, jwt.PyJWK(dict(jwk), algorithm=algorithm).key)
        if len(self._parsed) >= self._limit:
            del self._parsed[next(iter(self._parsed))]  # the oldest: key sets rarely change
        self._parsed[(id(jwk), algorithm)] = (jwk, key)
        return key


async def load_key(
    keys: Callable[[bool], Awaitable[KeySet]],
    parsed: ParsedKeys,
    algorithm: str,
    kid: str | None,
    error: ErrorFactory,
    *,
    whose_key: str,
    whose_keys: str,
) -> tuple[jws.VerificationKey, KeySet]:
    """The key for ``algorithm`` and ``kid`` among ``keys(refresh=False)``, and the key set it was found in;
    an unknown kid may be a key the signer just added (a signing-key rotation), so ``keys(refresh=True)`` is
    looked at once more. Raises ``error`` saying what is missing (``whose_key``: "registered key of this
    client", ...)."""
    try:
        key_set = await keys(False)
        found = pick_key(key_set, algorithm, kid, error)
        if found is None and kid is not None:
            key_set = await keys(True)
            found = pick_key(key_set, algorithm, kid, error)
    except ClientKeysUnavailable as failure:
        raise error(f"{whose_keys} are unavailable: {failure.description}") from None
    if found is None:
        if kid is not None:
            raise error(f"no {whose_key} has kid {kid[:64]!r} for {algorithm}")
        raise error(f"no {whose_key} fits {algorithm}")
    try:
        return parsed.get(found, algorithm), key_set
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
        raise error(f"the {whose_key} for {algorithm} cannot be used") from None


def pick_key(
    keys: Sequence[Mapping[str, Any]],
    algorithm: str,
    kid: str | None,
    error: Callable[[str], OAuthError] = InvalidClient,
) -> Mapping[str, Any] | None:
    """The key with ``kid``, or without a kid the one key whose type fits ``algorithm`` (several: the
    signer must say which). A key whose type (or its own ``alg``) does not allow ``algorithm`` never fits."""
    fitting = [
        key for key in keys if algorithm in algorithms_for(key) and key.get("alg", algorithm) == algorithm
    ]
    if kid is not None:
        return next((key for key in fitting if key.get("kid") == kid), None)
    if len(fitting) > 1:
        raise error(f"several keys fit {algorithm}: send kid in the header")
    return fitting[0] if fitting else None
