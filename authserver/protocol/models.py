"""The domain objects the protocol works with; storage adapters map their rows to these."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")


class GrantType(StrEnum):
    CLIENT_CREDENTIALS = "client_credentials"
    AUTHORIZATION_CODE = "authorization_code"
    REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a grant name
    TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - RFC 8693 §2.1
    # RFC 7523 §2.1: a JWT from a trusted issuer is the authorization grant.
    JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class ClientType(StrEnum):
    CONFIDENTIAL = "confidential"
    PUBLIC = "public"


class TokenEndpointAuthMethod(StrEnum):
    CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105
    CLIENT_SECRET_POST = "client_secret_post"  # noqa: S105
    NONE = "none"
    # RFC 7523 §2.2, OIDC Core §9: a JWT signed with a key the client registered; such a client has no secret.
    PRIVATE_KEY_JWT = "private_key_jwt"
    # RFC 7523 §2.2 with a trusted issuer's JWT (a Kubernetes service-account token): no secret, no keys.
    WORKLOAD_IDENTITY = "workload_identity"


_ASSERTION_METHODS = (TokenEndpointAuthMethod.PRIVATE_KEY_JWT, TokenEndpointAuthMethod.WORKLOAD_IDENTITY)


@dataclass(frozen=True)
class TokenExchangePolicy:
    """What a client may do with the token-exchange grant (RFC 8693 leaves this policy to the server)."""

    # The targets it may ask for (RFC 8693 §2.1 audience, RFC 8707 resource); none: the subject's audience.
    audiences: tuple[str, ...] = ()
    # Subject tokens it may exchange besides those issued to it: tokens whose aud names one of these (its
    # own identifiers as a resource server, where users' tokens are sent to it).
    subject_audiences: tuple[str, ...] = ()
    # Exchange without an actor_token: the issued token names no actor (§1.1 impersonation). False: an
    # actor_token is required and the token carries ``act`` (§4.1 delegation).
    allow_impersonation: bool = False


@dataclass(frozen=True)
class RateLimit:
    """A token-endpoint budget for the whole server (every worker of every replica together): a sustained
    rate and the burst admitted at once."""

    requests_per_second: float
    burst: int


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    client_type: ClientType
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    audiences: tuple[str, ...] = ()
    redirect_uris: tuple[str, ...] = ()
    # None: a confidential client may use either secret method (pinned only when its registration says so).
    token_endpoint_auth_method: TokenEndpointAuthMethod | None = TokenEndpointAuthMethod.CLIENT_SECRET_BASIC
    secret_hash: str | None = None
    previous_secret_hash: str | None = None
    previous_secret_expires_at: datetime | None = None
    access_token_ttl_seconds: int | None = None
    refresh_token_ttl_seconds: int | None = None
    # False: a confidential client may leave PKCE out of OpenID requests (its nonce instead, RFC 9700 §2.1.1).
    require_pkce: bool = True
    # OIDC Dynamic Client Registration §2; None: the server's default ID-token algorithm.
    id_token_signed_response_alg: str | None = None
    # A first-party client the operator trusts: no consent page unless the request says prompt=consent.
    skip_consent: bool = False
    # OpenID Connect Back-Channel Logout 1.0 §2.2: where logout tokens are POSTed (None: not sent), and
    # whether the RP needs ``sid`` in them (this server always includes it, so it changes nothing sent).
    backchannel_logout_uri: str | None = None
    backchannel_logout_session_required: bool = False
    # RP-Initiated Logout 1.0 §3.1: where the end-session endpoint may redirect after sign-out (exactly).
    post_logout_redirect_uris: tuple[str, ...] = ()
    # private_key_jwt: the client's public keys, a JWK Set as JSON text or where to fetch it (one of them),
    # and the one algorithm its assertions must use (None: any the keys allow).
    jwks: str | None = None
    jwks_uri: str | None = None
    token_endpoint_auth_signing_alg: str | None = None
    # RFC 8693: the token-exchange policy (None: the defaults, for a client with the grant type).
    token_exchange: TokenExchangePolicy | None = None
    # workload_identity: the trusted issuer's name (as configured) and the exact ``sub`` its tokens carry
    # for this client's workload (system:serviceaccount:<namespace>:<name> for Kubernetes).
    workload_issuer: str | None = None
    workload_subject: str | None = None
    # This client's token-endpoint budget in place of the server's per-client default (None: the default).
    rate_limit: RateLimit | None = None

    @property
    def is_public(self) -> bool:
        return self.client_type is ClientType.PUBLIC

    @property
    def uses_secret(self) -> bool:
        """A confidential client authenticating with a secret (not with a signed assertion)."""
        return not self.is_public and self.token_endpoint_auth_method not in _ASSERTION_METHODS


@dataclass(frozen=True)
class RegisteredClient:
    """A client as registered: what the protocol uses (``client``) and when its registration and its
    secret last changed."""

    client: Client
    created_at: datetime
    updated_at: datetime
    secret_rotated_at: datetime | None = None


@dataclass(frozen=True)
class RegistrationChange:
    """What a registration or a client-secret rotation did: the client as it now stands, and what the
    caller must be told."""

    registered: RegisteredClient
    generated_secret: str | None = None  # a secret the server generated: in this response and never again
    created: bool = False
    changed: bool = False


@dataclass(frozen=True)
class User:
    user_id: str
    username: str
    password_hash: str
    email: str | None = None
    email_verified: bool = False
    name: str | None = None
    # The other standard claims a directory keeps (OIDC Core §5.1); None: the user has none.
    given_name: str | None = None
    family_name: str | None = None
    locale: str | None = None  # BCP47, e.g. en-US
    zoneinfo: str | None = None  # a tz database name, e.g. Europe/Paris
    phone_number: str | None = None  # E.164 recommended
    phone_number_verified: bool = False
    address: dict[str, str] | None = None  # §5.1.1 members: formatted, street_address, locality, ...
    updated_at: datetime | None = None  # when the user's information last changed
    # A disabled user cannot sign in; disabling also revokes their refresh-token families.
    disabled: bool = False
    # The groups claim (scope ``groups``): local membership, or what an upstream provider said at sign-in.
    groups: tuple[str, ...] = ()

    @property
    def password_set(self) -> bool:
        """False for a user created without a password (an empty hash): no sign-in until one is set."""
        return bool(self.password_hash)


@dataclass(frozen=True)
class LoginFailures:
    """Failed sign-ins counted for one throttle key (an account or a client address) since the count last
    started over; it starts over once ``expires_at`` passes without a failure."""

    failures: int
    last_failure_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class SignInSession:
    """A browser's sign-in, kept server-side: the cookie names it, each /authorize reads it, and ending it
    (sign-out, revocation, expiry) revokes the refresh-token families it issued."""

    session_id: str  # unguessable; also the ``sid`` of its ID tokens
    user_id: str
    auth_time: int
    created_at: datetime
    last_seen_at: datetime  # written at most once per ``protocol.sessions.SessionPolicy.touch_interval``
    expires_at: datetime  # the absolute lifetime
    ended_at: datetime | None = None
    end_reason: str | None = None  # a ``protocol.session_end.EndReason`` value
    client_ids: tuple[str, ...] = ()  # the clients it signed into, in the order it first did


@dataclass(frozen=True)
class Consent:
    """What a user allowed a client (OIDC Core §3.1.2.4): the scopes granted so far, and when last."""

    client_id: str
    scopes: tuple[str, ...]
    granted_at: datetime


@dataclass(frozen=True)
class AuthorizationCode:
    client_id: str
    user_id: str
    redirect_uri: str
    scope: str
    audience: str
    code_challenge: str | None  # None: issued without PKCE, redeemed without a verifier
    auth_time: int
    expires_at: datetime
    nonce: str | None = None
    claims: str | None = None  # the request's ``claims`` parameter, normalised (``protocol.claims``)
    session_id: str | None = None  # the sign-in session it was issued in (the ID token's ``sid``)


@dataclass(frozen=True)
class RefreshToken:
    family_id: str
    client_id: str
    user_id: str | None
    scope: str
    audience: str
    auth_time: int | None
    expires_at: datetime
    rotated: bool = False  # the presented secret is not the family's current one: it was used before
    revoked: bool = False
    claims: str | None = None  # the sign-in's ``claims`` request, which refreshed access tokens carry on
    session_id: str | None = None  # the sign-in session whose code issued the family; None: none (older)


class RedemptionOutcome(StrEnum):
    OK = "ok"
    UNKNOWN = "unknown"
    REPLAYED = "replayed"  # already used: the whole family (or the code's tokens) must be revoked
    EXPIRED = "expired"
    REFUSED = "refused"  # not consumed; the record as it stands (if any) says why


@dataclass(frozen=True)
class CodeBinding:
    """What a redemption must match for the store to issue the refresh token in the same transaction:
    the code's client, redirect URI and PKCE challenge (S256 of the presented verifier), and expiry."""

    client_id: str
    redirect_uri: str | None
    code_challenge: str | None


@dataclass(frozen=True)
class NewRefreshToken:
    """A refresh token to store: its family (new, or the one it rotates), the hash of its secret and its
    expiry. Scope, audience, user and auth_time come from what it succeeds (the code, or the family)."""

    family_id: str
    secret_hash: str
    expires_at: datetime


@dataclass(frozen=True)
class RedeemedCode:
    code: AuthorizationCode
    user: User | None  # None when the user no longer exists
    refresh: RefreshToken | None  # the refresh token stored with the redemption, if one was asked for


@dataclass(frozen=True)
class RevokedSince:
    """Revocations recorded after a moment (the revocation list's incremental sync)."""

    access_tokens: list[tuple[str, datetime]]  # (jti, the token's expiry)
    grants: list[tuple[str, datetime]]  # (grant id, when the last access token of the grant expires)
    newest: datetime  # the newest revocation (or client change) time seen
    # Clients created, changed or deleted after the moment: a worker's cached copies of them are stale.
    changed_clients: list[str] = field(default_factory=list)


@dataclass
class Redemption(Generic[T]):
    outcome: RedemptionOutcome
    record: T | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UsageCount:
    """What one worker counted for one client in one clock hour since its last flush: added to what the
    database holds (several workers and replicas flush the same client and hour)."""

    client_id: str
    hour: datetime  # the start of the clock hour, UTC
    tokens: int
    errors: int
    last_token_at: datetime | None  # the latest token counted (None: none)
    last_error: str | None  # the latest error's code (RFC 6749 §5.2), with its time
    last_error_at: datetime | None


@dataclass(frozen=True)
class ClientUsage:
    """A client's usage as stored: its recent hourly buckets (hour start, tokens, errors), the last token's
    time and the last error (kept as long as the client, unlike the buckets)."""

    client_id: str
    last_token_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    hours: tuple[tuple[datetime, int, int], ...] = ()
