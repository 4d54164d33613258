"""SQLite: copying the write-ahead log into the database (checkpointing), outside any write transaction.

Commits never checkpoint (``wal_autocheckpoint=0``, ``engine``): the server runs ``checkpoint`` in a loop
(``Services``), on a connection's thread, and writers wait only when the log must start over.
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.observability import metrics
from authserver.storage.sqlite.driver import on_connection_thread
from authserver.storage.sqlite.write_lock import write_lock, write_lock_path

# Log frames past which a checkpoint holds writers back for a moment so that the log starts over: 256 MiB
# of 4 KiB pages, reached in about 3 s of saturated token writes on a 2-core machine.
RESTART_LOG_ABOVE_FRAMES = 65_536
# Catch-up rounds before that hold (each a pass and both syncs), stopped early by one quicker than this.
_CATCH_UP_ROUNDS = 3
_QUICK_ROUND_SECONDS = 0.01


class CheckpointPass(NamedTuple):
    log_frames: int  # frames in the log as the pass began (it keeps them until it starts over)
    restarted: bool  # writers were held so that the log starts over
    log_generation: bytes  # changes each time the log starts over (b"" while there is no log)


async def checkpoint(
    engine: AsyncEngine, restart_log_above_frames: int = RESTART_LOG_ABOVE_FRAMES
) -> CheckpointPass:
    """Copy the write-ahead log into the database.

    A writer starts the log over from its first byte only if, as it begins, every frame is already in the
    database. Under a steady stream of writes that never happens: each checkpoint (PASSIVE, so writers go on)
    ends behind the frames written meanwhile, and the log grows for as long as the writes go on. So once it is
    past ``restart_log_above_frames``, passes catch up on what the first left and a last one copies the few
    frames written since with the writers queued on the lock file. That last pass syncs the log and the
    database while it holds the writers, so each catch-up round syncs both too, outside the lock, until a
    round is quick (few frames came in meanwhile; at most ``_CATCH_UP_ROUNDS``), which keeps the hold short
    even when a sync is slow (docs/performance.md).
    """
    return await on_connection_thread(engine, _checkpoint, engine.url.database, restart_log_above_frames)


def _checkpoint(
    connection: sqlite3.Connection, database: str | None, restart_log_above_frames: int
) -> CheckpointPass:
    busy, log_frames, _ = _passive_checkpoint(connection)
    generation = _log_generation(f"{database}-wal")
    lock_path = write_lock_path(database)
    if busy or log_frames <= restart_log_above_frames or lock_path is None or database is None:
        # Another pass is running, the log is short enough to keep, or the database is in memory.
        return CheckpointPass(max(log_frames, 0), restarted=False, log_generation=generation)
    for _ in range(_CATCH_UP_ROUNDS):
        started = time.perf_counter()
        busy, _, _ = _passive_checkpoint(connection)
        if busy:
            return CheckpointPass(log_frames, restarted=False, log_generation=generation)
        # What the last pass would sync with the writers held, synced before they are: the log, and the
        # pages the unlocked passes copied into the database (SQLite syncs the database only after a pass
        # that copied the whole log).
        _sync(f"{database}-wal")
        _sync_database(database)
        if time.perf_counter() - started < _QUICK_ROUND_SECONDS:
            break
    with write_lock(lock_path):
        held_since = time.perf_counter()
        busy, _, _ = _passive_checkpoint(connection)
    metrics.SQLITE_WRITERS_HELD.observe(time.perf_counter() - held_since)
    return CheckpointPass(log_frames, restarted=not busy, log_generation=generation)


def _log_generation(path: str) -> bytes:
    """The log header's checkpoint sequence number and salts (bytes 12-23, SQLite's file format §4.1), which
    a writer changes when it starts the log over: with the frame count, what tells one log's content
    from another's, as a modification time cannot (timestamps can be as coarse as a scheduler tick)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return b""
    try:
        return os.pread(descriptor, 12, 12)
    finally:
        os.close(descriptor)


def _sync(path: str) -> None:
    """The log: SQLite holds no POSIX lock on it, so a descriptor of its own can come and go."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(descriptor)
    finally:
        os.close(descriptor)


# Closing any descriptor of the database file drops every POSIX lock this process holds on it, SQLite's
# included: another process's last connection could then take the exclusive lock and delete the log and its
# index under this process's open connections (seen: every write failed from then on). So the descriptor
# that syncs the database stays open, one per database file, for the life of the process.
_DATABASE_DESCRIPTORS: dict[str, int] = {}


def _sync_database(path: str) -> None:
    descriptor = _DATABASE_DESCRIPTORS.get(path)
    if descriptor is None or os.fstat(descriptor).st_ino != os.stat(path).st_ino:
        # A new file at that path (or the first sync); the old descriptor stays open: closing it is safe
        # only for a file no connection of this process has open, which is not known here.
        descriptor = _DATABASE_DESCRIPTORS[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    os.fdatasync(descriptor)


def _passive_checkpoint(connection: sqlite3.Connection) -> tuple[int, int, int]:
    """(1 if another checkpoint was running, frames in the log, frames copied into the database)."""
    busy, log_frames, copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return busy, log_frames, copied
