"""Database failures as the storage port reports them: ``StoreUnavailable``, whatever the driver raised.

Each store method translates in one ``except`` around its work (free on the path that succeeds), so the
layers above see no SQLAlchemy, aiosqlite, sqlite3 or asyncpg exception. A connection that cannot be
opened fails with ``OSError`` (refused, reset, timed out) inside storage; it is translated too.
"""

from __future__ import annotations

import sqlite3

import asyncpg
from sqlalchemy.exc import SQLAlchemyError

from authserver.protocol.store import StoreUnavailable

DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    SQLAlchemyError,
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)


def unavailable(error: BaseException) -> StoreUnavailable:
    """The port's error for ``error`` (raise it ``from error``): its type's name only, since a driver's
    message can carry statement parameters (hashes, user names)."""
    return StoreUnavailable(type(error).__name__)
