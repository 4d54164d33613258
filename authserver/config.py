"""Every knob of the server, read from ``AUTHSERVER_*`` environment variables or files in a secrets dir.

The operator sets these on the pods it runs; a developer on a bare machine sets none and gets the
embedded default (SQLite in the working directory, keys generated next to it).
"""

from __future__ import annotations

import ssl
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from authserver.loopback import is_loopback
from authserver.protocol.backchannel_logout import RetryPolicy
from authserver.protocol.login_throttle import ThrottlePolicy
from authserver.protocol.password_policy import PasswordPolicy
from authserver.protocol.sessions import SessionPolicy
from authserver.protocol.upstream_sign_in import IdentityProviders
from authyard_values.durations import Duration
from authyard_values.lists import CommaList

if TYPE_CHECKING:
    from authserver.ldap.directory import LdapSettings

SigningAlgorithm = Literal["ES256", "RS256", "EdDSA"]


def check_trusted_url(value: str) -> str:
    """https, or plain http only on loopback (a test issuer): the keys that vouch for workloads must not
    travel in the clear."""
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
        raise ValueError(f"{value!r} must be an absolute https URL without a fragment")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(f"{value!r}: plain http is allowed only for loopback addresses")
    return value


def _check_ca_file(value: Path | None) -> Path | None:
    # Refused at startup, not at the first request: a worker must never find its trust store broken.
    if value is not None:
        try:
            ssl.create_default_context().load_verify_locations(cafile=str(value))
        except (OSError, ssl.SSLError) as error:
            raise ValueError(f"{value}: not a readable PEM file of certificates ({error})") from None
    return value


class TrustedIssuerConfig(BaseModel):
    """One entry of AUTHSERVER_TRUSTED_ISSUERS_FILE: an issuer whose JWTs identify workloads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")
    issuer: str = Field(max_length=2048)
    # RFC 7523 §3 item 3; empty: the server's own issuer.
    audiences: tuple[str, ...] = ()
    discovery_url: str | None = Field(None, max_length=2048)
    jwks_uri: str | None = Field(None, max_length=2048)
    ca_file: Path | None = None
    bearer_token_file: Path | None = None

    @field_validator("issuer", "discovery_url", "jwks_uri")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return check_trusted_url(value) if value is not None else None

    @field_validator("audiences")
    @classmethod
    def _audiences(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not audience or len(audience) > 2048 for audience in value):
            raise ValueError("each audience must be a non-empty string")
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca(cls, value: Path | None) -> Path | None:
        return _check_ca_file(value)

    @field_validator("bearer_token_file")
    @classmethod
    def _token_file(cls, value: Path | None) -> Path | None:
        # Read again on every fetch (the kubelet rotates it); here only checked to be there.
        if value is not None and not value.is_file():
            raise ValueError(f"{value}: no such file")
        return value

    @property
    def discovery_document_url(self) -> str:
        # OIDC Discovery §4: the issuer, then /.well-known/openid-configuration.
        return self.discovery_url or f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"


class _TrustedIssuersDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    issuers: list[TrustedIssuerConfig] = Field(max_length=32)


def parse_trusted_issuers(text: str) -> tuple[TrustedIssuerConfig, ...]:
    """The issuers of the file's JSON; ValueError naming the field (never echoing a token) otherwise."""
    try:
        document = _TrustedIssuersDocument.model_validate_json(text)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'document'}: {item['msg']}"
            for item in error.errors(include_input=False, include_url=False)
        )
        raise ValueError(problems) from None
    names = [entry.name for entry in document.issuers]
    issuers = [entry.issuer for entry in document.issuers]
    if len(set(names)) != len(names):
        raise ValueError("issuers: two entries have the same name")
    if len(set(issuers)) != len(issuers):
        raise ValueError("issuers: two entries have the same issuer")
    return tuple(document.issuers)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTHSERVER_", extra="ignore")

    issuer: str = Field(
        "", description="Issuer URL; empty means http://<host>:<port> of `serve`. No trailing slash."
    )

    # Database
    database_url: str = Field("sqlite+aiosqlite:///./authserver.db", description="SQLAlchemy async URL.")
    database_host_override: str | None = Field(None, description="Connect to this host instead (PgBouncer).")
    database_port_override: int | None = Field(None, description="Connect to this port instead (PgBouncer).")
    database_name_override: str | None = Field(
        None, description="Connect to this database name instead (PgBouncer's alias for the database)."
    )
    database_ssl_override: str | None = Field(
        None, description="asyncpg ssl mode to use instead of the URL's (PgBouncer without TLS: disable)."
    )
    db_pool_min_size: int = Field(1, ge=0, description="Connections each worker keeps open.")
    db_pool_max_size: int = Field(10, ge=1, description="Most connections one worker may open.")
    db_write_connections: int = Field(
        1,
        ge=1,
        description="Of db_pool_max_size, connections that serve only refresh and code writes (PostgreSQL).",
    )
    db_pool_timeout: Duration = Field(
        timedelta(seconds=3), description="Wait for a free connection, then 503."
    )
    db_statement_cache: bool = Field(
        True, description="asyncpg prepared-statement cache; off behind PgBouncer."
    )
    db_auto_migrate: bool | None = Field(None, description="Migrate on start; default: only for SQLite.")

    # Secrets
    admin_token: SecretStr | None = Field(
        None, description="Bearer token of the admin API; unset disables it."
    )
    session_secret: SecretStr | None = Field(
        None, description="HMAC key for login sessions and CSRF; default: generated next to the database."
    )
    signing_keys_file: Path = Field(
        Path("authserver-keys.json"), description="Private JWK set: {'active_kid': ..., 'keys': [...]}."
    )
    generate_signing_keys: bool = Field(True, description="Create the key file when it is missing.")
    signing_algorithm: SigningAlgorithm = Field(
        "ES256", description="Algorithm of access tokens: the primary key of generated key sets."
    )
    # ES256 by default: see protocol.tokens.DEFAULT_ID_TOKEN_ALGORITHM. Generated key sets hold keys of it,
    # of RS256 (always offered) and of signing_algorithm.
    id_token_signing_algorithm: SigningAlgorithm = Field(
        "ES256",
        description="Algorithm of ID tokens for clients that registered no id_token_signed_response_alg.",
    )
    keys_reload_interval: Duration = Field(
        timedelta(seconds=2), description="How often the key file is checked."
    )

    # Token lifetimes
    access_token_ttl: Duration = Field(timedelta(minutes=15))
    refresh_token_ttl: Duration = Field(timedelta(hours=720))
    authorization_code_ttl: Duration = Field(timedelta(seconds=60))
    login_session_ttl: Duration = Field(
        timedelta(hours=8), description="A sign-in session's absolute lifetime (and its cookie's)."
    )
    session_idle_timeout: Duration = Field(
        timedelta(0),
        description="End a sign-in session this long after its browser was last at /authorize; 0: never.",
    )
    advertised_scopes: CommaList = Field(
        default_factory=lambda: ["openid", "profile", "email", "address", "phone", "groups"],
        description="scopes_supported in metadata.",
    )
    default_audience: str | None = Field(
        None, description="aud for clients with no audiences; default: issuer."
    )

    # Protection
    token_rate_per_client: float = Field(
        200.0,
        ge=0,
        description="Token requests/s per client for the whole server (all workers and replicas, each "
        "enforcing its share); 0 = unlimited. A client's registered rate_limit wins.",
    )
    token_burst_per_client: int = Field(400, ge=1, description="Burst of the per-client budget.")
    token_rate_per_ip: float = Field(
        500.0,
        ge=0,
        description="Token requests/s per client address for the whole server (the address behind "
        "trusted_proxies); 0 = unlimited.",
    )
    token_burst_per_ip: int = Field(1000, ge=1, description="Burst of the per-address budget.")
    max_in_flight: int = Field(256, ge=1, description="Concurrent requests per worker before a fast 503.")
    balance_connections: bool = Field(
        True,
        description="With more than one worker, each new connection goes to the worker holding the fewest; "
        "false leaves it to whichever worker wakes first.",
    )
    shutdown_drain: Duration = Field(
        timedelta(0),
        description="On SIGTERM, keep serving this long with readiness failing and keep-alive off, so load "
        "balancers move traffic away before the server stops accepting.",
    )
    shutdown_timeout: Duration = Field(
        timedelta(seconds=10),
        description="After the drain, how long in-flight requests may finish before the worker exits.",
    )
    backchannel_logout_timeout: Duration = Field(
        timedelta(seconds=5),
        description="Each back-channel logout POST, connecting included; a slower RP is tried again.",
    )
    backchannel_logout_first_retry: Duration = Field(
        timedelta(seconds=1),
        description="Wait before the first retry of a back-channel logout; each next one doubles (±50%).",
    )
    backchannel_logout_max_attempts: int = Field(
        6, ge=1, le=20, description="Attempts per back-channel logout delivery before it is given up."
    )
    backchannel_logout_retry_deadline: Duration = Field(
        timedelta(minutes=2),
        description="No back-channel logout attempt starts later than this after the delivery's first.",
    )
    backchannel_logout_ca_file: Path | None = Field(
        None,
        description="PEM file of CA certificates trusted for back-channel logout URIs, beside the public "
        "ones (an RP behind a cluster-internal CA).",
    )
    backchannel_logout_queue_size: int = Field(
        1000, ge=1, description="Ended sessions a worker holds for back-channel logout; more are dropped."
    )
    login_kdf_threads: int = Field(
        0, ge=0, description="argon2 threads per worker; 0 = the CPUs available divided by the workers."
    )
    login_kdf_queue: int = Field(
        16, ge=0, description="Logins that may wait per argon2 thread; more get a fast 503 (retry shortly)."
    )
    login_max_failures_per_account: int = Field(
        5,
        ge=0,
        description="Failed sign-ins per username within the window before a lockout; 0 = no limit.",
    )
    login_max_failures_per_address: int = Field(
        20, ge=0, description="Failed sign-ins per client address within the window; 0 = no limit."
    )
    login_failure_window: Duration = Field(
        timedelta(minutes=15),
        description="A username's or address's failures are forgotten after this long without one; also "
        "the longest lockout.",
    )
    login_lockout: Duration = Field(
        timedelta(minutes=1),
        description="The first lockout at the limit; each further failure doubles it (up to the window).",
    )
    trusted_proxies: CommaList = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For names the client "
        "for the sign-in throttle and the per-address rate limit; empty: the peer address is the client's.",
    )
    password_min_length: int = Field(8, ge=1, description="Shortest password the admin API and CLI accept.")
    password_max_length: int = Field(
        256, ge=8, le=1024, description="Longest password accepted (bounds the argon2 input)."
    )
    password_reject_account_names: bool = Field(
        True, description="Refuse a password containing the username or the e-mail address."
    )
    max_body_bytes: int = Field(65536, ge=1024, description="Larger request bodies get 413.")
    cors_allowed_origins: CommaList = Field(default_factory=list, description="Origins allowed by CORS.")
    client_cache_ttl: Duration = Field(
        timedelta(seconds=2), description="How long a worker trusts its cached copy of a client; 0 disables."
    )
    client_assertion_max_lifetime: Duration = Field(
        timedelta(hours=1),
        description="private_key_jwt: how far in the future a client assertion's exp may be (plus 5 s of "
        "clock leeway); a longer-lived assertion is refused. Authlib signs assertions that live 1 hour.",
    )
    client_jwks_timeout: Duration = Field(
        timedelta(seconds=3),
        description="private_key_jwt: the whole fetch of a client's jwks_uri; slower is invalid_client.",
    )
    client_jwks_cache: Duration = Field(
        timedelta(minutes=5),
        description="private_key_jwt: how long a worker keeps a client's fetched jwks_uri key set (an "
        "unknown kid fetches it again, at most every 5 s).",
    )
    identity_providers_file: Path | None = Field(
        None,
        description="JSON file of the sign-in methods: local accounts (on or off) and upstream OpenID "
        "providers (docs/identity-providers.md); unset: local accounts only.",
    )
    upstream_timeout: Duration = Field(
        timedelta(seconds=5),
        description="Each request to an upstream identity provider (discovery, keys, token, userinfo), "
        "connecting included; slower is an error page naming the provider.",
    )
    client_jwks_ca_file: Path | None = Field(
        None,
        description="private_key_jwt: PEM file of CA certificates trusted for clients' jwks_uri, beside the "
        "public ones.",
    )
    trusted_issuers_file: Path | None = Field(
        None,
        description='JSON file of token issuers whose JWTs identify workloads: {"issuers": [{"name", '
        '"issuer", "audiences", "discovery_url", "jwks_uri", "ca_file", "bearer_token_file"}]} '
        "(docs/workload-identity.md). Unset: none trusted.",
    )
    trusted_issuer_timeout: Duration = Field(
        timedelta(seconds=3),
        description="A trusted issuer's discovery document and JWKS fetch, each as a whole.",
    )
    trusted_issuer_cache: Duration = Field(
        timedelta(minutes=5),
        description="How long a worker keeps a trusted issuer's JWKS (an unknown kid fetches it again, at "
        "most every 5 s).",
    )
    verified_token_cache: int = Field(
        2048,
        ge=0,
        description="Access tokens per worker whose signature check is remembered (expiry and revocation "
        "are still checked on every call); 0 disables.",
    )
    revocation_sync_interval: Duration = Field(
        timedelta(milliseconds=500),
        description="How often a worker reads revocations made by others and writes its heartbeat (the "
        "census of live workers that divides the rate limits).",
    )
    usage_flush_interval: Duration = Field(
        timedelta(seconds=15),
        description="How often a worker adds the token counts per client it kept in memory to the database "
        "(client usage; also on a graceful shutdown).",
    )
    metrics_max_clients: int = Field(
        100,
        ge=0,
        description="Clients with their own series in authserver_tokens_issued_total, per worker (the first "
        'ones seen); any further client is counted under client_id="other".',
    )

    log_level: Literal["debug", "info", "warning", "error"] = "info"

    _trusted_issuers: tuple[TrustedIssuerConfig, ...] = PrivateAttr(default=())
    _sign_in: tuple[IdentityProviders, dict[str, LdapSettings]] = PrivateAttr(
        default_factory=lambda: (IdentityProviders(), {})
    )

    @field_validator("backchannel_logout_ca_file", "client_jwks_ca_file")
    @classmethod
    def _ca_file_loads(cls, value: Path | None) -> Path | None:
        return _check_ca_file(value)

    @model_validator(mode="after")
    def _trusted_issuers_load(self) -> Settings:
        path = self.trusted_issuers_file
        if path is not None:
            try:
                text = path.read_text()
            except (OSError, UnicodeDecodeError) as error:
                raise ValueError(
                    f"AUTHSERVER_TRUSTED_ISSUERS_FILE: cannot read {path} ({type(error).__name__})"
                ) from None
            try:
                self._trusted_issuers = parse_trusted_issuers(text)
            except ValueError as error:
                raise ValueError(f"AUTHSERVER_TRUSTED_ISSUERS_FILE {path}: {error}") from None
        return self

    @property
    def trusted_issuers(self) -> tuple[TrustedIssuerConfig, ...]:
        return self._trusted_issuers

    @model_validator(mode="after")
    def _identity_providers_load(self) -> Settings:
        # Read at startup: a typo in the file must stop the server, not the first person signing in; the
        # result is kept so that building the services does not read the file a second time.
        from authserver.identity_providers import load_sign_in

        try:
            self._sign_in = load_sign_in(self.identity_providers_file)
        except ValueError as error:
            raise ValueError(f"AUTHSERVER_IDENTITY_PROVIDERS_FILE: {error}") from None
        return self

    @property
    def sign_in(self) -> tuple[IdentityProviders, dict[str, LdapSettings]]:
        """The identity-providers file as read at startup, and its LDAP directories' client settings by
        provider name; local accounts only when no file is configured."""
        return self._sign_in

    @field_validator("issuer")
    @classmethod
    def _issuer_without_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("admin_token", "session_secret", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("admin_token")
    @classmethod
    def _admin_token_is_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("AUTHSERVER_ADMIN_TOKEN must be at least 16 characters")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or network: {entry}") from None
        return value

    @model_validator(mode="after")
    def _password_lengths_agree(self) -> Settings:
        if self.password_min_length > self.password_max_length:
            raise ValueError("AUTHSERVER_PASSWORD_MIN_LENGTH must not exceed AUTHSERVER_PASSWORD_MAX_LENGTH")
        return self

    @model_validator(mode="after")
    def _write_connections_leave_room(self) -> Settings:
        # With a pool of one connection nothing is split (the writes borrow it); otherwise the rest must
        # keep at least one connection for everything else, or logins and registrations would starve.
        if self.db_pool_max_size >= 2 and self.db_write_connections >= self.db_pool_max_size:
            raise ValueError(
                f"AUTHSERVER_DB_WRITE_CONNECTIONS ({self.db_write_connections}) must be below "
                f"AUTHSERVER_DB_POOL_MAX_SIZE ({self.db_pool_max_size})"
            )
        return self

    @property
    def password_policy(self) -> PasswordPolicy:
        return PasswordPolicy(
            self.password_min_length, self.password_max_length, self.password_reject_account_names
        )

    @property
    def throttle_policy(self) -> ThrottlePolicy:
        return ThrottlePolicy(
            self.login_max_failures_per_account,
            self.login_max_failures_per_address,
            self.login_failure_window,
            self.login_lockout,
        )

    @property
    def backchannel_retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.backchannel_logout_max_attempts,
            first_delay=self.backchannel_logout_first_retry.total_seconds(),
            deadline=self.backchannel_logout_retry_deadline.total_seconds(),
        )

    @property
    def session_policy(self) -> SessionPolicy:
        idle = self.session_idle_timeout
        return SessionPolicy(
            self.login_session_ttl, idle if idle > timedelta(0) else None, self.access_token_ttl
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.db_auto_migrate is None else self.db_auto_migrate


class SettingsError(ValueError):
    """Invalid configuration, described without echoing any value (a value may be a secret)."""


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, plus files in $AUTHSERVER_SECRETS_DIR (file name = field name)."""
    import os

    secrets_dir = os.environ.get("AUTHSERVER_SECRETS_DIR")
    try:
        if secrets_dir:
            return Settings(_secrets_dir=secrets_dir, **overrides)
        return Settings(**overrides)
    except ValidationError as error:
        problems = "; ".join(
            # A check across settings (loc empty) names its settings in its own message.
            f"AUTHSERVER_{'_'.join(str(part) for part in item['loc']).upper()}: {item['msg']}"
            if item["loc"]
            else item["msg"].removeprefix("Value error, ")
            for item in error.errors(include_input=False, include_url=False)
        )
        raise SettingsError(f"invalid configuration: {problems}") from None
