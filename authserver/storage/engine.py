"""The async SQLAlchemy engine, sized and tuned from settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from authserver.config import Settings

# How long a SQLite statement waits for another connection's write lock before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 15_000


def database_url(settings: Settings) -> URL:
    url = make_url(settings.database_url)
    # Behind PgBouncer the operator points the pods at the pooler without rewriting the secret URL.
    if settings.database_host_override:
        url = url.set(host=settings.database_host_override)
    if settings.database_port_override:
        url = url.set(port=settings.database_port_override)
    if settings.database_name_override:
        url = url.set(database=settings.database_name_override)
    if settings.database_ssl_override:
        query = {key: value for key, value in url.query.items() if key not in ("ssl", "sslmode")}
        url = url.set(query={**query, "ssl": settings.database_ssl_override})
    return url


def create_engine(settings: Settings, max_size: int | None = None) -> AsyncEngine:
    """``max_size``: the engine's share of ``db_pool_max_size`` when another pool has the rest."""
    url = database_url(settings)
    max_size = settings.db_pool_max_size if max_size is None else max_size
    # No pool_pre_ping: on PostgreSQL it costs three round trips (BEGIN; ping; ROLLBACK) per checkout. A
    # connection that died (server restart, failover) fails its first statement with a disconnect error;
    # SQLAlchemy then invalidates it and every connection opened before it (the pool's invalidation
    # time), so one request answers 503 and the next ones get fresh connections.
    options: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    else:
        minimum = min(settings.db_pool_min_size, max_size)
        # SQLAlchemy keeps `pool_size` connections open and closes overflow ones on return: min and max.
        options.update(
            pool_size=max(minimum, 1),
            max_overflow=max_size - max(minimum, 1),
            pool_timeout=settings.db_pool_timeout.total_seconds(),
            pool_recycle=1800,
        )
        if url.get_backend_name() == "postgresql" and not settings.db_statement_cache:
            # PgBouncer in transaction mode cannot keep prepared statements across transactions.
            url = url.update_query_dict({"prepared_statement_cache_size": "0"})
            options["connect_args"] = {"statement_cache_size": 0}
    engine = create_async_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        # WAL lets readers run beside the single writer; workers share one file.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # No checkpoint inside a commit: the one that crossed 1,000 pages of log copied them into the
        # database and synced it while holding the write lock (docs/performance.md). The
        # server checkpoints in the background instead (SqlStore.checkpoint); the last connection to close
        # checkpoints too.
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
