"""Which store serves a database: the one place that picks SQLite's or PostgreSQL's by the engine's URL."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.storage.postgres.direct_pool import DirectPool
from authserver.storage.postgres.store import PostgresStore
from authserver.storage.sqlite.store import SqliteStore


def store_for(engine: AsyncEngine, direct: DirectPool | None = None) -> SqliteStore | PostgresStore:
    """``direct``: PostgreSQL's pool of the token path's writes, if it has one."""
    if engine.url.get_backend_name() == "postgresql":
        return PostgresStore(engine, direct)
    return SqliteStore(engine)
