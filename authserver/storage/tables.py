"""The database schema (SQLModel). Alembic migrations in authserver/migrations create exactly this."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, Table, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def _timestamp(*, nullable: bool = False, index: bool = False) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable, index=index)


class ClientRow(SQLModel, table=True):
    __tablename__ = "clients"
    __table_args__ = (UniqueConstraint("workload_issuer", "workload_subject", name="uq_clients_workload"),)

    client_id: str = Field(primary_key=True, max_length=255)
    name: str = Field(max_length=255)
    client_type: str = Field(max_length=32)
    token_endpoint_auth_method: str | None = Field(default=None, max_length=64)  # NULL: either secret method
    grant_types: list[str] = Field(sa_column=Column(JSON, nullable=False))
    scopes: list[str] = Field(sa_column=Column(JSON, nullable=False))
    audiences: list[str] = Field(sa_column=Column(JSON, nullable=False))
    redirect_uris: list[str] = Field(sa_column=Column(JSON, nullable=False))
    # RP-Initiated Logout 1.0 §3.1: where the end-session endpoint may send the browser back to.
    post_logout_redirect_uris: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default=text("'[]'"))
    )
    secret_hash: str | None = Field(
        default=None, max_length=64
    )  # SHA-256 hex of the secret; never the secret
    previous_secret_hash: str | None = Field(default=None, max_length=64)
    previous_secret_expires_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    secret_rotated_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    access_token_ttl_seconds: int | None = None
    refresh_token_ttl_seconds: int | None = None
    require_pkce: bool = True
    id_token_signed_response_alg: str | None = Field(default=None, max_length=16)  # NULL: server default
    skip_consent: bool = False
    backchannel_logout_uri: str | None = Field(default=None, max_length=2048)  # NULL: no back-channel logout
    backchannel_logout_session_required: bool = False
    # private_key_jwt (RFC 7523 §2.2): the public JWK Set as JSON text, or where to fetch it; NULL: neither.
    jwks: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    jwks_uri: str | None = Field(default=None, max_length=2048)
    token_endpoint_auth_signing_alg: str | None = Field(default=None, max_length=16)  # NULL: any allowed
    # RFC 8693 policy: {"audiences": [...], "subject_audiences": [...], "allow_impersonation": bool}; NULL:
    # the defaults.
    token_exchange: dict[str, object] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # workload_identity: the trusted issuer's name and its tokens' exact sub; unique together, so one workload
    # is one client (NULLs, every other client, never collide).
    workload_issuer: str | None = Field(default=None, max_length=64)
    workload_subject: str | None = Field(default=None, max_length=255)
    # The client's own token-endpoint budget for the whole server; NULL: the server's per-client default.
    rate_limit_per_second: float | None = None
    rate_limit_burst: int | None = None
    created_at: datetime = Field(sa_column=_timestamp())
    updated_at: datetime = Field(sa_column=_timestamp())


class UserRow(SQLModel, table=True):
    __tablename__ = "users"

    user_id: str = Field(primary_key=True, max_length=64)
    username: str = Field(max_length=255, unique=True, index=True)
    password_hash: str = Field(max_length=255)  # argon2id PHC string
    email: str | None = Field(default=None, max_length=320)
    email_verified: bool = False
    name: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(sa_column=_timestamp())
    # The other standard claims (OIDC Core §5.1); NULL: the user has none. updated_at NULL: never changed
    # since created_at.
    given_name: str | None = Field(default=None, max_length=255)
    family_name: str | None = Field(default=None, max_length=255)
    locale: str | None = Field(default=None, max_length=35)
    zoneinfo: str | None = Field(default=None, max_length=64)
    phone_number: str | None = Field(default=None, max_length=64)
    phone_number_verified: bool | None = None
    address: dict[str, str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    updated_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    disabled: bool = False  # no sign-in; set with the revocation of the user's refresh families
    groups: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))  # NULL: none


class FederatedIdentityRow(SQLModel, table=True):
    """The stable link of a user to an upstream identity provider's subject (OIDC Core §2: iss + sub identify
    an end-user; the provider's configured name stands for its issuer). Never made from an e-mail address."""

    __tablename__ = "federated_identities"

    provider: str = Field(primary_key=True, max_length=64)
    subject: str = Field(primary_key=True, max_length=255)
    user_id: str = Field(max_length=64, index=True)
    created_at: datetime = Field(sa_column=_timestamp())
    last_sign_in_at: datetime = Field(sa_column=_timestamp())


class LoginFailureRow(SQLModel, table=True):
    """Failed sign-ins per throttle key (a hash of the username, or the client address), shared by every
    worker and replica: written only on a failure, read by primary key on each sign-in attempt."""

    __tablename__ = "login_failures"

    key: str = Field(primary_key=True, max_length=80)
    failures: int
    last_failure_at: datetime = Field(sa_column=_timestamp())
    expires_at: datetime = Field(sa_column=_timestamp(index=True))  # the count starts over after this


class UsedClientAssertionRow(SQLModel, table=True):
    """A spent private_key_jwt assertion (RFC 7523 §3 item 7), by a hash of its client and jti: inserted
    once per authentication, a conflict being a replay; the purge deletes it once the assertion expired."""

    __tablename__ = "used_client_assertions"

    key: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(sa_column=_timestamp(index=True))


class AuthorizationCodeRow(SQLModel, table=True):
    __tablename__ = "authorization_codes"

    code_hash: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(max_length=255)
    user_id: str = Field(max_length=64)
    redirect_uri: str
    scope: str
    audience: str
    code_challenge: str | None = Field(default=None, max_length=128)  # NULL: issued without PKCE
    nonce: str | None = None
    auth_time: int
    expires_at: datetime = Field(sa_column=_timestamp(index=True))
    consumed_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    family_id: str | None = Field(
        default=None, max_length=64
    )  # the refresh family it issued, for replay revocation
    claims: str | None = None  # the normalised claims request (OIDC Core §5.5); NULL: none
    session_id: str | None = Field(default=None, max_length=64)  # the sign-in session it was issued in


class RefreshFamilyRow(SQLModel, table=True):
    """One sign-in's refresh tokens: the current one's secret hash, replaced by each refresh-token rotation.

    Only the primary key and client_id are indexed, and a refresh-token rotation changes neither: on
    SQLite it rewrites one page (the row's), on PostgreSQL it is a HOT update. The purge walks the primary
    key, so expires_at needs no index (one would be rewritten by every refresh-token rotation)."""

    __tablename__ = "refresh_families"

    family_id: str = Field(primary_key=True, max_length=64)
    secret_hash: str = Field(max_length=64)  # SHA-256 hex of the current token's secret; never the secret
    client_id: str = Field(max_length=255, index=True)
    user_id: str | None = Field(default=None, max_length=64)
    scope: str
    audience: str
    auth_time: int | None = None
    issued_at: datetime = Field(sa_column=_timestamp())  # the family's first token
    rotated_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))  # its latest
    expires_at: datetime = Field(sa_column=_timestamp())  # the current token's
    revoked: bool = False
    claims: str | None = None  # the sign-in's claims request, carried by each refreshed access token
    # The sign-in session whose code issued it (ending the session revokes it); never changed by a
    # refresh-token rotation, so its index keeps rotations HOT on PostgreSQL.
    session_id: str | None = Field(default=None, max_length=64, index=True)


class SessionRow(SQLModel, table=True):
    """A browser's sign-in session, read by primary key on each /authorize. ``last_seen_at`` is written at
    most once per touch interval (``protocol.sessions``), not on every request."""

    __tablename__ = "sessions"

    session_id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(max_length=64, index=True)
    auth_time: int
    created_at: datetime = Field(sa_column=_timestamp())
    last_seen_at: datetime = Field(sa_column=_timestamp())
    expires_at: datetime = Field(sa_column=_timestamp(index=True))  # the absolute lifetime
    ended_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    end_reason: str | None = Field(default=None, max_length=32)


class SessionClientRow(SQLModel, table=True):
    """A client a session signed into: written once, when the first code for it is issued in the session."""

    __tablename__ = "session_clients"

    session_id: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(primary_key=True, max_length=255)
    first_at: datetime = Field(sa_column=_timestamp())


class LegacyRefreshTokenRow(SQLModel, table=True):
    """Refresh tokens issued before families (migration 0002), by hash: the family each one belongs to.
    Read when such a token is presented, never written; the purge empties it as they expire."""

    __tablename__ = "legacy_refresh_tokens"

    token_hash: str = Field(primary_key=True, max_length=64)
    family_id: str = Field(max_length=64)
    expires_at: datetime = Field(sa_column=_timestamp())


class RevokedAccessTokenRow(SQLModel, table=True):
    __tablename__ = "revoked_access_tokens"

    jti: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(sa_column=_timestamp(index=True))
    revoked_at: datetime = Field(sa_column=_timestamp(index=True))


class RevokedGrantRow(SQLModel, table=True):
    """A revoked user grant: every access token carrying its grant id is refused until ``expires_at``, when
    the last of them has expired. Read with ``revoked_access_tokens`` by the same revocation sync."""

    __tablename__ = "revoked_grants"

    grant_id: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(sa_column=_timestamp(index=True))
    revoked_at: datetime = Field(sa_column=_timestamp(index=True))


class WorkerHeartbeatRow(SQLModel, table=True):
    """A live server worker (every worker of every replica): written on each revocation sync, so that each
    worker counts the live ones and enforces its share of the server-wide rate limits."""

    __tablename__ = "worker_heartbeats"

    worker_id: str = Field(primary_key=True, max_length=64)
    last_seen: datetime = Field(sa_column=_timestamp(index=True))


class ClientChangeRow(SQLModel, table=True):
    """When a client was last created, changed or deleted: every worker reads the changes since its last
    look on each revocation sync, so it may keep its cached clients for as long as it keeps looking."""

    __tablename__ = "client_changes"

    client_id: str = Field(primary_key=True, max_length=255)
    changed_at: datetime = Field(sa_column=_timestamp(index=True))


class ConsentRow(SQLModel, table=True):
    """A scope a user allowed a client (remembered consent): one row per user, client and scope, so that a
    grant is an insert that ignores what is already there, atomic without reading first."""

    __tablename__ = "consents"

    user_id: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(primary_key=True, max_length=255, index=True)  # deleting a client deletes these
    scope: str = Field(primary_key=True)
    granted_at: datetime = Field(sa_column=_timestamp())


class ClientUsageRow(SQLModel, table=True):
    """Tokens and token-endpoint errors of one client in one clock hour, summed over every worker and replica:
    each worker adds its counts every few seconds (one batched upsert), never once per request. The purge
    deletes hours older than ``protocol.usage.RETENTION``."""

    __tablename__ = "client_usage"

    client_id: str = Field(primary_key=True, max_length=255)
    hour: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True, index=True))
    tokens: int = 0
    errors: int = 0


class ClientLastUseRow(SQLModel, table=True):
    """A client's last token and last error, kept while the client is registered (long after its hourly
    rows are purged: "unused for 30 days" needs it); written by the same flush, the later time winning."""

    __tablename__ = "client_last_use"

    client_id: str = Field(primary_key=True, max_length=255)
    last_token_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))
    last_error: str | None = Field(default=None, max_length=64)
    last_error_at: datetime | None = Field(default=None, sa_column=_timestamp(nullable=True))


def _table(model: type[SQLModel]) -> Table:
    return model.__table__  # type: ignore[attr-defined, no-any-return]  # SQLModel sets it without declaring it


# The tables as SQLAlchemy Core sees them: what every statement of both stores is built from.
clients = _table(ClientRow)
users = _table(UserRow)
federated_identities = _table(FederatedIdentityRow)
codes = _table(AuthorizationCodeRow)
refresh_families = _table(RefreshFamilyRow)
legacy_refresh_tokens = _table(LegacyRefreshTokenRow)
revoked = _table(RevokedAccessTokenRow)
revoked_grants = _table(RevokedGrantRow)
consents = _table(ConsentRow)
login_failures = _table(LoginFailureRow)
used_client_assertions = _table(UsedClientAssertionRow)
worker_heartbeats = _table(WorkerHeartbeatRow)
client_changes = _table(ClientChangeRow)
sessions = _table(SessionRow)
session_clients = _table(SessionClientRow)
client_usage = _table(ClientUsageRow)
client_last_use = _table(ClientLastUseRow)
