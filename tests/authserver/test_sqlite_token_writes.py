"""SQLite's token-path transactions (``storage.sqlite.transactions.run``): on the event loop when nothing
holds the write lock, on the connection's thread when they must wait for it, never waiting on the event
loop; driver errors come out as SQLAlchemy's and leave the connection usable."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.migrations.runner import upgrade_to_head
from authserver.storage.engine import SQLITE_BUSY_TIMEOUT_MS, create_engine
from authserver.storage.sqlite import token_writes, transactions
from authserver.storage.sqlite.write_lock import write_lock_path
from tests.conftest import make_settings
from tests.support.refresh_tokens import token_path_insert_values


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[tuple[AsyncEngine, Path]]:
    path = tmp_path / "authserver.db"
    engine = create_engine(make_settings(tmp_path, f"sqlite+aiosqlite:///{path}"))
    await upgrade_to_head(engine)
    yield engine, path
    await engine.dispose()


def _insert_recording_thread(threads: list[int]) -> Callable[[sqlite3.Connection], int]:
    def work(connection: sqlite3.Connection) -> int:
        threads.append(threading.get_ident())
        connection.execute(token_writes.INSERT_FAMILY, token_path_insert_values())
        # The busy handler is back in place for the transaction's statements and the connection's next user.
        return connection.execute("PRAGMA busy_timeout").fetchone()[0]

    return work


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as reader:
        return reader.execute("SELECT count(*) FROM refresh_families").fetchone()[0]


async def _start_a_writer_that_waits(
    engine: AsyncEngine, path: Path, threads: list[int]
) -> asyncio.Task[int]:
    """Starts a token-path writer while something holds a lock, and checks it is still waiting, with nothing
    written, while the event loop goes on running this test."""
    writer = asyncio.create_task(transactions.run(engine, _insert_recording_thread(threads)))
    done, _ = await asyncio.wait({writer}, timeout=0.3)
    assert not done, "the writer did not wait for the lock"
    assert _rows(path) == 0
    return writer


async def _assert_it_committed_off_the_loop(
    writer: asyncio.Task[int], path: Path, threads: list[int]
) -> None:
    assert await asyncio.wait_for(writer, timeout=10) == SQLITE_BUSY_TIMEOUT_MS
    assert len(threads) == 1 and threads[0] != threading.get_ident()
    assert _rows(path) == 1


async def test_with_the_lock_free_the_transaction_commits_right_on_the_event_loop(
    database: tuple[AsyncEngine, Path],
) -> None:
    engine, path = database
    threads: list[int] = []
    assert await transactions.run(engine, _insert_recording_thread(threads)) == SQLITE_BUSY_TIMEOUT_MS
    assert threads == [threading.get_ident()]
    assert _rows(path) == 1


async def test_a_writer_waits_for_the_lock_file_on_the_connection_thread(
    database: tuple[AsyncEngine, Path],
) -> None:
    """Writers take an flock beside the database first: a writer waits exactly as long as the writer before
    it (SQLite's busy handler would nap up to 100 ms at a time), and not on the event loop."""
    engine, path = database
    lock_path = write_lock_path(str(path))
    assert lock_path is not None
    threads: list[int] = []
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # another worker's writer, mid-transaction
        writer = await _start_a_writer_that_waits(engine, path, threads)
    finally:
        os.close(descriptor)  # the other writer commits
    await _assert_it_committed_off_the_loop(writer, path, threads)


async def test_a_writer_that_finds_sqlite_locked_waits_off_the_event_loop(
    database: tuple[AsyncEngine, Path],
) -> None:
    """Writes outside the token path (sign-ins, revocations, the purge) hold SQLite's own lock without the
    lock file. A token write that meets one waits in SQLite's busy handler on the connection's thread: had
    it waited on the event loop, nothing else would run until the busy timeout failed it (15 s)."""
    engine, path = database
    threads: list[int] = []
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        writer = await _start_a_writer_that_waits(engine, path, threads)
        # Not a speed bound: a busy handler on the event loop holds it for the whole 15 s busy timeout.
        assert time.monotonic() - started < 5, "the writer waited on the event loop"
        other.execute("COMMIT")
    finally:
        other.close()
    await _assert_it_committed_off_the_loop(writer, path, threads)


async def test_driver_errors_come_out_as_database_errors_and_roll_back(
    database: tuple[AsyncEngine, Path],
) -> None:
    engine, path = database

    def fails_after_a_write(connection: sqlite3.Connection) -> None:
        connection.execute(token_writes.INSERT_FAMILY, token_path_insert_values())
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(DBAPIError):
        await transactions.run(engine, fails_after_a_write)
    assert _rows(path) == 0  # rolled back
    # The connection went back to the pool usable: no transaction left open, the lock free again.
    assert await transactions.run(engine, _insert_recording_thread([])) == SQLITE_BUSY_TIMEOUT_MS
    assert _rows(path) == 1
