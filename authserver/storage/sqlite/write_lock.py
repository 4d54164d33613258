"""The lock file writers queue on beside the database (``flock``), before SQLite's own write lock.

Left to SQLite, a writer that finds the database locked sleeps in its busy handler's back-off (naps of up to
100 ms) however soon the lock is free, and under concurrent refreshes that back-off became the p99. A writer
waiting on ``flock`` wakes the moment the previous one commits. One open file per transaction, so pooled
connections of one worker queue as well as workers do.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator


def write_lock_path(database: str | None) -> str | None:
    """The lock file of a database file; None for an in-memory database (one connection, no queue)."""
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return f"{database}.write-lock"


@contextlib.contextmanager
def write_lock(path: str | None) -> Iterator[None]:
    """Held until the block ends; waits for it (on a connection's thread: the event loop runs on)."""
    if path is None:
        yield
        return
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock (also if this process dies)


def try_write_lock(path: str) -> int | None:
    """The lock, held by the descriptor returned (``os.close`` releases it), if no one else holds it;
    None, without waiting, if someone does."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor
