"""SQLite: the token path's writes as one transaction, with no wait on the event loop.

aiosqlite runs every call (cursor, execute, fetch, close, commit) as a separate hop to its thread and back
through the event loop; a transaction of two statements is about nine hops, and it holds the database's
write lock across all of them, so under load other workers' writers wait for this worker's event loop.
Here the whole transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``) is one function call, queued behind the
other writers on the lock file (``write_lock``).

Where the transaction runs: when the lock file and SQLite's write lock are both free at once, on the
event loop itself. It is then CPU work, tens of microseconds a write, like signing a token: WAL with
``synchronous=NORMAL`` and no checkpoint in a commit means no sync, except in the one commit that starts the
log over after a checkpoint copied all of it (SQLite syncs the log's header with its first frame), which
then syncs on the loop. Only a writer that would have to wait goes to the connection's thread to wait there.
(Sending that one commit to the thread as well, decided from the WAL index, stalled writes for seconds in
some samples, for a reason not understood yet: not done; docs/performance.md.)

Why the loop: on the thread, the transaction's Python steps between statements each wait for the event loop
to let go of the interpreter lock, so it held the write lock (and the other worker) for longer; run on the
loop, saturated runs served both writes measurably faster (docs/performance.md).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.storage.engine import SQLITE_BUSY_TIMEOUT_MS
from authserver.storage.sqlite.driver import pooled_connection
from authserver.storage.sqlite.write_lock import try_write_lock, write_lock, write_lock_path

T = TypeVar("T")


async def run(engine: AsyncEngine, work: Callable[[sqlite3.Connection], T]) -> T:
    """``work(connection)`` inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): right here if nothing
    holds the write lock, else on the pooled connection's own thread once the lock is free, in one hop."""
    lock_path = write_lock_path(engine.url.database)
    async with pooled_connection(engine) as (connection, on_thread):
        done, result = _transaction_if_free(connection, work, lock_path)
        if done:
            return result  # type: ignore[return-value]  # done: the work's own result
        return await on_thread(_transaction, connection, work, lock_path)  # type: ignore[no-any-return]  # aiosqlite's thread hop returns Any


def _transaction(
    connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], lock_path: str | None
) -> T:
    with write_lock(lock_path):
        connection.execute("BEGIN IMMEDIATE")
        return _finish(connection, work)


def _transaction_if_free(
    connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], lock_path: str | None
) -> tuple[bool, T | None]:
    """(True, the result) after the whole transaction, when the lock file and SQLite's write lock were both
    free at once; (False, None) without having waited or changed anything otherwise."""
    descriptor = None
    if lock_path is not None:
        descriptor = try_write_lock(lock_path)
        if descriptor is None:
            return False, None  # another writer's turn: wait for it on the thread, not here
    try:
        # Writes outside the token path (sign-ins, revocations, the hourly purge) take SQLite's lock without
        # the lock file. No busy handler here: it would sleep on the event loop.
        connection.execute("PRAGMA busy_timeout=0")
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
            return False, None
        finally:
            connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        return True, _finish(connection, work)
    finally:
        if descriptor is not None:
            os.close(descriptor)


def _finish(connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """``work`` in the transaction just begun, then COMMIT; ROLLBACK if it fails."""
    try:
        result = work(connection)
    except BaseException:
        connection.rollback()
        raise
    connection.commit()
    return result
