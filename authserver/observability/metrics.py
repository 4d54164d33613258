"""Prometheus metrics. With several workers, prometheus-client's multiprocess mode aggregates them
(``serve`` sets PROMETHEUS_MULTIPROC_DIR before the workers start)."""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector

# Label sets are bounded (routes x methods x statuses, registered clients); the cap is a safety net.
MAX_CACHED_LABEL_SETS = 4096


class LabelCache:
    """prometheus-client's ``labels()`` validates and locks on every call: resolve each child once."""

    def __init__(self, metric: MetricWrapperBase) -> None:
        self.metric = metric
        self.children: dict[tuple[str, ...], Any] = {}

    def get(self, *labels: str) -> Any:
        child = self.children.get(labels)
        if child is None:
            child = self.metric.labels(*labels)
            if len(self.children) < MAX_CACHED_LABEL_SETS:
                self.children[labels] = child
        return child


class ClientLabels:
    """The client_id label of per-client series, bounded: the first ``limit`` clients a worker sees get their
    own; every further one is counted as ``OTHER_CLIENTS``. Thousands of clients would otherwise make
    thousands of series per label set, each a file entry per worker and a series in every scrape."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._named: set[str] = set()

    def __call__(self, client_id: str) -> str:
        if client_id in self._named:
            return client_id
        if len(self._named) < self.limit:
            self._named.add(client_id)
            return client_id
        return OTHER_CLIENTS


OTHER_CLIENTS = "other"
REQUESTS = Counter("authserver_http_requests_total", "HTTP requests handled", ["method", "route", "status"])
REQUEST_DURATION = Histogram(
    "authserver_http_request_duration_seconds",
    "Time from request start to response end",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
# client_id: bounded by ClientLabels (AUTHSERVER_METRICS_MAX_CLIENTS per worker, then "other").
TOKENS_ISSUED = Counter("authserver_tokens_issued_total", "Access tokens issued", ["grant_type", "client_id"])
# Counts a worker could not keep for client usage (its table between two flushes was full).
USAGE_DROPPED = Counter(
    "authserver_client_usage_dropped_total", "Token endpoint outcomes not counted in client usage"
)
TOKEN_ERRORS = Counter("authserver_token_errors_total", "Token endpoint errors", ["error"])
RATE_LIMITED = Counter("authserver_rate_limited_total", "Requests refused by a rate limit", ["limit"])
OVERLOAD_REJECTED = Counter(
    "authserver_overload_rejected_total", "Requests refused with 503: too many in flight"
)
REFRESH_REUSE = Counter(
    "authserver_refresh_token_reuse_total", "Refresh tokens presented twice (families revoked)"
)
LOGINS = Counter("authserver_logins_total", "Interactive login attempts", ["outcome"])
LOGINS_THROTTLED = Counter(
    "authserver_logins_throttled_total",
    "Sign-ins refused without checking the password: too many failures for the account or address",
    ["by"],
)
LOGIN_THROTTLE_KEYS = ("account", "address")
# pool="engine": SQLAlchemy's; pool="token_writes": the token path's refresh and code writes on PostgreSQL.
DB_POOL_IN_USE = Gauge(
    "authserver_db_pool_connections_in_use",
    "Database connections checked out",
    ["pool"],
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "authserver_db_pool_connections_open", "Database connections open", ["pool"], multiprocess_mode="livesum"
)
DB_POOL_MAX = Gauge(
    "authserver_db_pool_max_size", "Most connections a worker may open", ["pool"], multiprocess_mode="livesum"
)
# write="refresh_rotation" / "code_redemption" / "client_assertion" (a private_key_jwt jti spent): how many
# of them went to the database together (one statement on PostgreSQL, one transaction on SQLite).
DB_WRITE_BATCH_SIZE = Histogram(
    "authserver_db_write_batch_size",
    "Token path writes sent to the database together (one statement or transaction)",
    ["write"],
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
# SQLite under sustained writes: how long each log restart held the token path's writers (a checkpoint pass
# that ends in syncing the log and the database, so this is mostly the disk's sync time).
SQLITE_WRITERS_HELD = Histogram(
    "authserver_sqlite_writers_held_seconds",
    "Time SQLite's token-path writers waited for a checkpoint so that the write-ahead log starts over",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
# Per algorithm: 0 for one the key set does not sign with; 1 for one whose next key is missing.
SIGNING_KEY_INFO = Gauge(
    "authserver_signing_keys_published",
    "Signing keys published in JWKS, per algorithm the key set signs with",
    ["alg"],
    multiprocess_mode="liveall",
)
ID_TOKEN_ALGORITHM_FALLBACKS = Counter(
    "authserver_id_token_algorithm_fallbacks_total",
    "ID tokens signed with the primary algorithm because the key set has no key of the one asked for",
    ["asked", "used"],
)

# OpenID Connect Back-Channel Logout: each logout token delivery's end (delivered, gave_up, dropped) and each
# retry it took; the ended sessions a worker holds before sending (its queue is bounded).
BACKCHANNEL_LOGOUT_DELIVERIES = Counter(
    "authserver_backchannel_logout_deliveries_total",
    "Back-channel logout token deliveries, by outcome (retried counts each retry)",
    ["outcome"],
)
BACKCHANNEL_LOGOUT_OUTCOMES = ("delivered", "retried", "gave_up", "dropped")
# Each worker's count of the live workers (all replicas): the divisor of its share of the rate limits.
LIVE_WORKERS = Gauge(
    "authserver_live_workers",
    "Live server workers (every replica) this worker counted at its last heartbeat",
    multiprocess_mode="liveall",
)
BACKCHANNEL_LOGOUT_QUEUE = Gauge(
    "authserver_backchannel_logout_queue_size",
    "Ended sessions waiting for their back-channel logout deliveries to start",
    multiprocess_mode="livesum",
)

# Public-key fetches: clients' jwks_uri (private_key_jwt) and trusted issuers' discovery and JWKS (workload
# identity), by outcome (web.key_fetching.FETCH_OUTCOMES); trusted issuers also by their configured name.
CLIENT_JWKS_FETCHES = Counter(
    "authserver_client_jwks_fetches_total", "Fetches of clients' jwks_uri key sets, by outcome", ["outcome"]
)
TRUSTED_ISSUER_FETCHES = Counter(
    "authserver_trusted_issuer_fetches_total",
    "Fetches of trusted issuers' keys (discovery document and JWKS), by issuer and outcome",
    ["issuer", "outcome"],
)
FETCH_OUTCOMES = ("ok", "timeout", "http_status", "unreachable", "too_large", "invalid")

# Label values known in advance. A series is exported from the worker's start (at 0) rather than from its
# first increment, which rate() could not count (it has no earlier sample), and a quiet panel shows 0 rather
# than no data.
RATE_LIMITS = ("ip", "client")
BATCHED_WRITES = ("refresh_rotation", "code_redemption", "client_assertion")


def export_known_label_sets() -> None:
    for limit in RATE_LIMITS:
        RATE_LIMITED.labels(limit)
    for write in BATCHED_WRITES:
        DB_WRITE_BATCH_SIZE.labels(write)
    for by in LOGIN_THROTTLE_KEYS:
        LOGINS_THROTTLED.labels(by)
    for outcome in BACKCHANNEL_LOGOUT_OUTCOMES:
        BACKCHANNEL_LOGOUT_DELIVERIES.labels(outcome)
    for outcome in FETCH_OUTCOMES:
        CLIENT_JWKS_FETCHES.labels(outcome)


def render_latest() -> bytes:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)
        return generate_latest(registry)
    return generate_latest()
