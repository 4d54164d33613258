"""aiosqlite's sqlite3 connection and its thread, reached in one place: ``private_access``.

aiosqlite sends every call (cursor, execute, fetch, close, commit) as a separate hop to the connection's
thread and back through the event loop, and offers no public way to run a function of ours on that thread
with the sqlite3 connection. The token path's transaction needs exactly that: all of it in one hop, or in
none (``transactions``). So ``private_access`` reads two private attributes of ``aiosqlite.Connection``,
``_conn`` and ``_execute``, as they are in ``AIOSQLITE_VERSION``; a test fails when uv.lock's aiosqlite
is another version, so that an upgrade is checked here first.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")

AIOSQLITE_VERSION = "0.22.1"  # the version whose private attributes ``private_access`` reads

# ``on_thread(function, *args)``: ``function(*args)`` on the connection's own thread, awaited.
OnThread = Callable[..., Awaitable[Any]]


def private_access(driver: aiosqlite.Connection) -> tuple[sqlite3.Connection, OnThread]:
    """The sqlite3 connection under ``driver``, and what runs a function on its thread (the one function
    that reaches into aiosqlite)."""
    return driver._conn, driver._execute


@contextlib.asynccontextmanager
async def pooled_connection(engine: AsyncEngine) -> AsyncIterator[tuple[sqlite3.Connection, OnThread]]:
    """A pooled connection's sqlite3 connection and its thread (``private_access``); driver errors come
    out as SQLAlchemy's, like those of every other statement."""
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        try:
            yield private_access(driver)
        except sqlite3.Error as error:
            raise DBAPIError(None, None, error) from error


async def on_connection_thread(engine: AsyncEngine, function: Callable[..., T], *args: Any) -> T:
    """``function(connection, *args)`` on a pooled connection's own thread, in one hop."""
    async with pooled_connection(engine) as (connection, on_thread):
        return await on_thread(function, connection, *args)  # type: ignore[no-any-return]  # aiosqlite's thread hop returns Any
