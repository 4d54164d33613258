"""The composition root: builds every service a worker needs and runs its background loops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.config import Settings
from authserver.crypto import passwords
from authserver.crypto.keyset import KeySet, KeySetSource
from authserver.crypto.keyset_document import SUPPORTED_ALGORITHMS
from authserver.crypto.signed_values import Signer
from authserver.observability import metrics
from authserver.protocol import usage
from authserver.protocol.authorization_flow import AuthorizationFlow, DirectoryCheck
from authserver.protocol.client_assertion import AssertionPolicy, ClientAssertionVerifier
from authserver.protocol.client_authentication import ClientLookup
from authserver.protocol.code_issuance import CodeIssuer
from authserver.protocol.exchangeable_tokens import LocalAccessTokens, TokenValidator, TrustedIssuerTokens
from authserver.protocol.grant_revocation import GrantRevoker
from authserver.protocol.grants.authorization_code import AuthorizationCodeGrant
from authserver.protocol.grants.base import Grant
from authserver.protocol.grants.client_credentials import ClientCredentialsGrant
from authserver.protocol.grants.jwt_bearer import JwtBearerGrant
from authserver.protocol.grants.refresh_token import RefreshTokenGrant
from authserver.protocol.grants.token_exchange import TokenExchangeGrant
from authserver.protocol.introspection_endpoint import IntrospectionEndpoint
from authserver.protocol.login_throttle import LoginThrottle
from authserver.protocol.metadata import endpoints
from authserver.protocol.revocation_endpoint import RevocationEndpoint
from authserver.protocol.revocation_list import RevocationList
from authserver.protocol.session_end import SessionEndListener
from authserver.protocol.sessions import SWEEP_INTERVAL, Sessions
from authserver.protocol.token_endpoint import TokenEndpoint
from authserver.protocol.token_inspection import TokenInspector
from authserver.protocol.tokens import TokenMinter, TokenPolicy
from authserver.protocol.trusted_issuers import TrustedIssuer, TrustedTokenVerifier
from authserver.protocol.upstream_sign_in import IdentityProviders
from authserver.protocol.usage import UsageCounter
from authserver.protocol.userinfo import UserinfoEndpoint
from authserver.protocol.workload_identity import WorkloadAuthenticator
from authserver.ratelimit import RateLimiter, WorkerCensus, default_budget
from authserver.storage.backends import store_for
from authserver.storage.client_cache import ClientCache
from authserver.storage.engine import create_engine, database_url
from authserver.storage.postgres import token_writes as postgres_token_writes
from authserver.storage.postgres.direct_pool import DirectPool, split_pool_budget
from authserver.storage.postgres.store import PostgresStore
from authserver.storage.sqlite.store import SqliteStore
from authserver.web.backchannel_delivery import BackchannelLogout
from authserver.web.client_jwks import ClientKeySource
from authserver.web.directory_sign_in import directory_checks, ldap_directories
from authserver.web.issuer_keys import IssuerKeySource
from authserver.web.upstream_health import UpstreamHealth
from authserver.web.upstream_oidc import UpstreamOidcClient

log = logging.getLogger(__name__)
# Revocations written by another replica with a clock slightly behind ours are still picked up.
_SYNC_OVERLAP = timedelta(seconds=5)
_CHECKPOINT_GROWING_SECONDS = 0.2
_CHECKPOINT_IDLE_SECONDS = 1.0


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    store: SqliteStore | PostgresStore
    registry: SqliteStore | PostgresStore  # the same object: each store is the client registry too
    keys: KeySetSource
    minter: TokenMinter
    token_endpoint: TokenEndpoint
    inspector: TokenInspector
    introspection_endpoint: IntrospectionEndpoint
    revocation_endpoint: RevocationEndpoint
    userinfo_endpoint: UserinfoEndpoint
    authorization_flow: AuthorizationFlow
    revocations: RevocationList
    session_signer: Signer
    request_signer: Signer
    csrf_signer: Signer
    logout_signer: Signer
    census: WorkerCensus
    client_limiter: RateLimiter
    ip_limiter: RateLimiter
    clients: ClientCache
    backchannel_logout: BackchannelLogout
    client_keys: ClientKeySource
    issuer_keys: IssuerKeySource
    sessions: Sessions
    # Who hears of each sign-in session's end (``protocol.session_end``): the list ``sessions`` announces to.
    session_end_listeners: list[SessionEndListener]
    upstream_signer: Signer  # the upstream sign-in's cookie (its state) and the nonce and verifier derived
    identity_providers: IdentityProviders = field(default_factory=IdentityProviders)
    # Each LDAP directory's password check, by provider name (``web.directory_sign_in``).
    directory_checks: dict[str, DirectoryCheck] = field(default_factory=dict)
    upstream_client: UpstreamOidcClient = field(default_factory=UpstreamOidcClient)
    upstream_health: UpstreamHealth | None = None  # for the admin API; None: local accounts only
    # Tokens and errors per client since the last flush (``protocol.usage``), and the bounded client_id
    # label of the per-client metrics.
    usage: UsageCounter = field(default_factory=UsageCounter)
    client_labels: metrics.ClientLabels = field(default_factory=lambda: metrics.ClientLabels(100))
    direct: DirectPool | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    def keyset(self) -> KeySet:
        return self.keys.current

    @property
    def lookup_client(self) -> ClientLookup:
        return self.clients.get

    def start_background(self) -> None:
        self._tasks = [
            asyncio.create_task(self._every(self.settings.keys_reload_interval, self._reload_keys)),
            asyncio.create_task(self._every(self.settings.revocation_sync_interval, self.sync_with_others)),
            asyncio.create_task(self._every(timedelta(seconds=1), self._sample_pool)),
            asyncio.create_task(self._every(timedelta(minutes=10), self._purge, jitter=True)),
            asyncio.create_task(self._every(SWEEP_INTERVAL, self._sweep_sessions, jitter=True)),
            asyncio.create_task(self._every(self.settings.usage_flush_interval, self.flush_usage)),
        ]
        if isinstance(self.store, SqliteStore):  # its commits no longer checkpoint the log themselves
            self._tasks.append(asyncio.create_task(self._checkpoints(self.store)))
        self.backchannel_logout.start()

    async def stop(self) -> None:
        # First, while the database is still there for their client lookups: pending back-channel logout
        # deliveries get a bounded time (after uvicorn's graceful shutdown, within the pod's grace period).
        await self.backchannel_logout.close()
        await self.client_keys.close()
        await self.upstream_client.close()
        await self.issuer_keys.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # The requests served since the last flush are counted too (the loop above may have been mid-flush:
        # what it drained is either stored or back in the counter).
        try:
            await self.flush_usage()
        except Exception as error:  # the database may be the reason for the shutdown
            log.warning("client usage not flushed on shutdown: %s", type(error).__name__)
        try:  # the other workers take this one's share of the rate limits at their next heartbeat
            await self.store.forget_worker(self.census.worker_id)
        except Exception as error:  # its row then lapses by itself (ratelimit.LIVE_PERIODS)
            log.warning("could not leave the worker census: %s", type(error).__name__)
        if self.direct is not None:
            await self.direct.close()
        await self.engine.dispose()

    async def _every(
        self, interval: timedelta, action: Callable[[], Awaitable[object]], *, jitter: bool = False
    ) -> None:
        seconds = interval.total_seconds()
        while True:
            await asyncio.sleep(seconds * (random.uniform(0.5, 1.5) if jitter else 1))  # noqa: S311
            try:
                await action()
            except Exception as error:  # a background loop must outlive a database outage
                log.warning("background task %s failed: %s", action.__name__, type(error).__name__)

    async def _checkpoints(self, store: SqliteStore) -> None:
        """SQLite: a checkpoint pass every 0.2 s while the log grows, every second while it does not.

        A pass copies what the log gained since the last one, on a connection's thread, while the token
        path's writers go on; the longer it runs, the longer it competes with them for the CPU. Short,
        frequent passes gave the writes the lowest p99 at the same throughput (docs/performance.md); an idle
        log costs next to nothing.
        """
        last: tuple[int, bytes] | None = None
        while True:
            log_state: tuple[int, bytes] | None
            try:
                log_state = await store.checkpoint()
            except Exception as error:  # a background loop must outlive a bad moment of the disk
                log.warning("background task checkpoint failed: %s", type(error).__name__)
                log_state = last
            await asyncio.sleep(next_checkpoint_in(log_state, last))
            last = log_state

    async def _reload_keys(self) -> None:
        if self.keys.refresh():
            report_key_set(self.keys.current, self.settings.id_token_signing_algorithm)

    async def sync_with_others(self) -> None:
        """What every worker learns from the database on each period: the revocations made by the others, the
        clients they changed, and (writing its own heartbeat) how many workers share the rate limits."""
        try:
            await self.sync_revocations()
        finally:
            await self.take_census()

    async def take_census(self) -> None:
        await self.census.beat(self.store, datetime.now(UTC), self.settings.revocation_sync_interval)
        metrics.LIVE_WORKERS.set(self.census.live_workers)

    async def sync_revocations(self) -> None:
        since = self.revocations.synced_until - _SYNC_OVERLAP
        started = self.clients.clock()
        revoked = await self.store.revoked_since(since)
        # Client changes come with the revocations (one query): the cache drops those clients and keeps the
        # rest as confirmed when this sync began.
        self.clients.changes_seen(revoked.changed_clients, started)
        for jti, expires_at in revoked.access_tokens:
            self.revocations.add(jti, expires_at.timestamp())
        for grant_id, expires_at in revoked.grants:
            self.revocations.add_grant(grant_id, expires_at.timestamp())
        self.revocations.synced_until = max(revoked.newest, self.revocations.synced_until)
        self.revocations.prune()

    async def flush_usage(self) -> None:
        """Add this worker's counts per client to the database: one batched write, additive, so every
        worker's and replica's counts sum. Counts a failed write could not store go with the next flush."""
        dropped = self.usage.take_dropped()
        if dropped:
            metrics.USAGE_DROPPED.inc(dropped)
        await usage.flush(self.usage, self.store.record_client_usage)

    async def _sample_pool(self) -> None:
        pool = self.engine.pool
        checked_out = getattr(pool, "checkedout", lambda: 0)()
        metrics.DB_POOL_IN_USE.labels("engine").set(checked_out)
        metrics.DB_POOL_SIZE.labels("engine").set(checked_out + getattr(pool, "checkedin", lambda: 0)())
        if self.direct is not None:
            in_use, size = self.direct.usage()
            metrics.DB_POOL_IN_USE.labels("token_writes").set(in_use)
            metrics.DB_POOL_SIZE.labels("token_writes").set(size)

    async def _purge(self) -> None:
        await self.store.purge_expired(datetime.now(UTC))

    async def _sweep_sessions(self) -> None:
        """End expired and idle sign-in sessions: their refresh families revoked, their ends announced."""
        if await self.sessions.sweep():
            await self.sync_revocations()


def next_checkpoint_in(
    log_state: tuple[int, bytes] | None, last_log_state: tuple[int, bytes] | None
) -> float:
    """Seconds until the next SQLite checkpoint pass: soon while writes come in (the log's frames or its
    generation changed since the last pass), later while none do."""
    return _CHECKPOINT_GROWING_SECONDS if log_state != last_log_state else _CHECKPOINT_IDLE_SECONDS


def report_key_set(keyset: KeySet, id_token_algorithm: str) -> None:
    """Export what a newly loaded key set publishes, and say so when it cannot sign the default ID-token
    algorithm (a key set written before it held several algorithms)."""
    published = keyset.published_per_algorithm()
    for algorithm in SUPPORTED_ALGORITHMS:
        metrics.SIGNING_KEY_INFO.labels(algorithm).set(published.get(algorithm, 0))
    if id_token_algorithm not in published:
        log.warning(
            "the signing key set has no %s key: ID tokens of clients using %s are signed with %s until it "
            "has one (the operator adds it on its next reconcile; `authserver keys rotate` adds one)",
            id_token_algorithm,
            id_token_algorithm,
            keyset.primary_algorithm,
        )


class IdTokenFallbacks:
    """Counts ID tokens signed with another algorithm than their client's, and logs each (asked, used) pair
    once per worker (the counter shows how often)."""

    def __init__(self) -> None:
        self._logged: set[tuple[str, str]] = set()

    def __call__(self, asked: str, used: str) -> None:
        metrics.ID_TOKEN_ALGORITHM_FALLBACKS.labels(asked, used).inc()
        if (asked, used) not in self._logged:
            self._logged.add((asked, used))
            log.warning("an ID token asked for %s was signed with %s: the key set has none", asked, used)


def token_minter(settings: Settings, keys: KeySetSource) -> TokenMinter:
    policy = TokenPolicy(
        issuer=settings.issuer,
        access_token_ttl=settings.access_token_ttl,
        refresh_token_ttl=settings.refresh_token_ttl,
        authorization_code_ttl=settings.authorization_code_ttl,
        default_audience=settings.default_audience or settings.issuer,
        id_token_algorithm=settings.id_token_signing_algorithm,
    )
    return TokenMinter(policy, lambda: keys.current, IdTokenFallbacks())


def backchannel_logout_for(
    settings: Settings, lookup: ClientLookup, minter: TokenMinter
) -> BackchannelLogout:
    """The back-channel logout listener as the settings configure it (a worker's, or the CLI's)."""
    return BackchannelLogout(
        lookup,
        minter,
        policy=settings.backchannel_retry_policy,
        queue_size=settings.backchannel_logout_queue_size,
        timeout=settings.backchannel_logout_timeout.total_seconds(),
        ca_file=settings.backchannel_logout_ca_file,
    )


def client_assertions(
    settings: Settings, keys: ClientKeySource, store: SqliteStore | PostgresStore
) -> ClientAssertionVerifier:
    """private_key_jwt as the settings configure it. RFC 7523 §3 item 3: the audience is this server, named
    by its issuer or the URL of an endpoint that authenticates clients (OIDC Core §9: the token endpoint)."""
    urls = endpoints(settings.issuer)
    audiences = {
        settings.issuer,
        urls["token_endpoint"],
        urls["introspection_endpoint"],
        urls["revocation_endpoint"],
    }
    policy = AssertionPolicy(
        audiences=frozenset(audiences), max_lifetime=settings.client_assertion_max_lifetime
    )
    return ClientAssertionVerifier(policy, keys, store.spend_client_assertion)


def trusted_tokens(settings: Settings, keys: IssuerKeySource) -> TrustedTokenVerifier | None:
    """The trusted issuers as configured (None: none is); an issuer configured without audiences is
    accepted for this server's issuer (RFC 7523 §3 item 3: the token must be meant for this server)."""
    if not settings.trusted_issuers:
        return None
    issuers = [
        TrustedIssuer(config.name, config.issuer, config.audiences or (settings.issuer,))
        for config in settings.trusted_issuers
    ]
    return TrustedTokenVerifier(issuers, keys)


def build_services(settings: Settings, session_secret: bytes) -> Services:
    passwords.configure(settings.login_kdf_threads, settings.login_kdf_queue)
    engine, direct = _database(settings)
    store = store_for(engine, direct)
    keys = KeySetSource(settings.signing_keys_file)
    minter = token_minter(settings, keys)
    revocations = RevocationList()
    census = WorkerCensus()
    grant_revoker = GrantRevoker(store, minter, revocations)
    clients = ClientCache(
        store.get_client, settings.client_cache_ttl.total_seconds(), by_workload=store.get_client_by_workload
    )
    client_keys = ClientKeySource(
        timeout=settings.client_jwks_timeout.total_seconds(),
        cache_seconds=settings.client_jwks_cache.total_seconds(),
        ca_file=settings.client_jwks_ca_file,
    )
    assertions = client_assertions(settings, client_keys, store)
    usage_counter = UsageCounter()
    backchannel_logout = backchannel_logout_for(settings, clients.get, minter)
    session_end_listeners: list[SessionEndListener] = [backchannel_logout]
    sessions = Sessions(store, settings.session_policy, session_end_listeners)
    issuer_keys = IssuerKeySource(
        settings.trusted_issuers,
        timeout=settings.trusted_issuer_timeout.total_seconds(),
        cache_seconds=settings.trusted_issuer_cache.total_seconds(),
    )
    identity_providers, directory_settings = settings.sign_in  # read once, by the settings' validation
    directories = ldap_directories(directory_settings)
    upstream_client = UpstreamOidcClient(timeout=settings.upstream_timeout.total_seconds())
    verifier = trusted_tokens(settings, issuer_keys)
    workloads = WorkloadAuthenticator(verifier, clients.get_by_workload) if verifier is not None else None
    metrics.DB_POOL_MAX.labels("engine").set(settings.db_pool_max_size - (direct.max_size if direct else 0))
    if direct is not None:
        metrics.DB_POOL_MAX.labels("token_writes").set(direct.max_size)
    report_key_set(keys.current, settings.id_token_signing_algorithm)
    metrics.export_known_label_sets()
    inspector = TokenInspector(
        lambda: keys.current,
        store,
        revocations,
        settings.issuer,
        grant_revoker,
        settings.verified_token_cache,
    )
    # RFC 8693 subject and actor tokens: this server's access tokens, and a trusted issuer's JWTs.
    exchangeable: list[TokenValidator] = [LocalAccessTokens(inspector)]
    if verifier is not None:
        exchangeable.append(TrustedIssuerTokens(verifier))
    grants: list[Grant] = [
        ClientCredentialsGrant(minter),
        AuthorizationCodeGrant(minter, store, grant_revoker),
        RefreshTokenGrant(minter, store, grant_revoker),
        TokenExchangeGrant(minter, exchangeable),
    ]
    if verifier is not None:
        grants.append(JwtBearerGrant(minter, verifier))  # RFC 7523 §2.1: only with trusted issuers
    return Services(
        settings=settings,
        engine=engine,
        store=store,
        registry=store,
        keys=keys,
        minter=minter,
        token_endpoint=TokenEndpoint(
            grants, clients.get, assertions, usage=usage_counter, workloads=workloads
        ),
        inspector=inspector,
        introspection_endpoint=IntrospectionEndpoint(inspector, clients.get, assertions, workloads),
        revocation_endpoint=RevocationEndpoint(inspector, clients.get, assertions, workloads),
        userinfo_endpoint=UserinfoEndpoint(inspector, store),
        authorization_flow=AuthorizationFlow(
            store, CodeIssuer(minter.policy, store), LoginThrottle(store, settings.throttle_policy), sessions
        ),
        revocations=revocations,
        session_signer=Signer(session_secret, "login-session"),
        request_signer=Signer(session_secret, "authorization-request"),
        csrf_signer=Signer(session_secret, "csrf"),
        logout_signer=Signer(session_secret, "logout-request"),
        census=census,
        client_limiter=RateLimiter(
            default_budget(settings.token_rate_per_client, settings.token_burst_per_client), census
        ),
        ip_limiter=RateLimiter(
            default_budget(settings.token_rate_per_ip, settings.token_burst_per_ip), census
        ),
        clients=clients,
        backchannel_logout=backchannel_logout,
        client_keys=client_keys,
        issuer_keys=issuer_keys,
        sessions=sessions,
        session_end_listeners=session_end_listeners,
        identity_providers=identity_providers,
        directory_checks=directory_checks(directories),
        upstream_client=upstream_client,
        upstream_health=UpstreamHealth(identity_providers, upstream_client, directories),
        upstream_signer=Signer(session_secret, "upstream-sign-in"),
        usage=usage_counter,
        client_labels=metrics.ClientLabels(settings.metrics_max_clients),
        direct=direct,
    )


def _database(settings: Settings) -> tuple[AsyncEngine, DirectPool | None]:
    """The engine and, on PostgreSQL with room for it, the token path's own pool
    (``storage.postgres.direct_pool``)."""
    if database_url(settings).get_backend_name() != "postgresql":
        return create_engine(settings), None
    budget = split_pool_budget(settings.db_pool_max_size, settings.db_write_connections)
    engine = create_engine(settings, budget.engine)
    if not budget.direct:
        return engine, None
    timeout = settings.db_pool_timeout.total_seconds()
    return engine, DirectPool.for_engine(
        engine, budget.direct, timeout, settings.db_statement_cache, warm_up=postgres_token_writes.WARM_UP
    )
