"""SQLite: refresh-token rotation and code redemption as one transaction, with no wait on the event loop.

aiosqlite runs every call (cursor, execute, fetch, close, commit) as a separate hop to its thread and back
through the event loop; a transaction of two statements is about nine hops, and it holds the database's
write lock across all of them, so under load other workers' writers wait for this worker's event loop.
Here the whole transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``) is one function call. The SQL is the same
as SQLAlchemy's for SQLite (timestamps in its storage format, UTC), and driver errors come out as
SQLAlchemy's, like every other database error.

Writers queue on a lock file beside the database (``flock``, one open file per transaction, so pooled
connections of one worker queue as well as workers do) before ``BEGIN IMMEDIATE``. Left to SQLite, a
writer that finds the database locked sleeps in its busy handler's back-off (up to 100 ms a nap) however
soon the lock is free: at 10-50 concurrent refreshes that back-off was the p99 (hundreds of milliseconds).
A writer waiting on ``flock`` wakes the moment the previous one commits.

Where the transaction runs: when the lock file and SQLite's write lock are both free at once, on the
event loop itself. It is then CPU work, tens of microseconds a write, like signing a token: WAL with
``synchronous=NORMAL`` and no checkpoint in a commit means no sync, except in the one commit that starts the
log over after a checkpoint copied all of it (SQLite syncs the log's header with its first frame), which
then syncs on the loop. Only a writer that would have to wait goes to the connection's thread to wait there.
(Sending that one commit to the thread as well, decided from the WAL index, stalled writes for seconds in
some runs; not understood yet, so not done: docs/performance.md.)

Why the loop: on the thread, the transaction's Python steps between statements each wait for the event loop
to let go of the interpreter lock, so it held the write lock (and the other worker) for longer; on the
loop, saturated runs serve both writes faster (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, TypeVar

import aiosqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.observability import metrics
from authserver.storage.engine import SQLITE_BUSY_TIMEOUT_MS

T = TypeVar("T")

# SQLAlchemy's SQLite DateTime storage format; every timestamp here is UTC.
_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

FamilyRow = namedtuple(
    "FamilyRow", "secret_hash client_id user_id scope audience auth_time expires_at revoked"
)
CodeRow = namedtuple(
    "CodeRow",
    "client_id user_id redirect_uri scope audience code_challenge nonce auth_time expires_at family_id",
)
UserRow = namedtuple("UserRow", "user_id username password_hash email email_verified name")


def stored(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_FORMAT)


def _loaded(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


async def run(engine: AsyncEngine, work: Callable[[sqlite3.Connection], T]) -> T:
    """``work(connection)`` inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error): right here if nothing
    holds the write lock, else on the pooled connection's own thread once the lock is free, in one hop."""
    lock_path = write_lock_path(engine.url.database)
    async with _pooled_driver(engine) as driver:
        outcome = _transaction_if_free(driver._conn, work, lock_path)
        if outcome[0]:
            return outcome[1]
        result: T = await driver._execute(_transaction, driver._conn, work, lock_path)
        return result


async def _on_connection_thread(engine: AsyncEngine, function: Callable[..., T], *args: Any) -> T:
    """``function(connection, *args)`` on a pooled connection's own thread, in one hop."""
    async with _pooled_driver(engine) as driver:
        result: T = await driver._execute(function, driver._conn, *args)
        return result


@contextlib.asynccontextmanager
async def _pooled_driver(engine: AsyncEngine) -> AsyncIterator[aiosqlite.Connection]:
    """A pooled connection's aiosqlite driver; driver errors come out as SQLAlchemy's."""
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        try:
            yield driver
        except sqlite3.Error as error:
            raise DBAPIError(None, None, error) from error


# Log frames past which a checkpoint holds writers back for a moment so that the log starts over: 256 MiB
# of 4 KiB pages, a few seconds of saturated token writes (docs/performance.md).
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
    database. Under a steady stream of writes that never happens: each checkpoint (PASSIVE, so writers go
    on) ends behind the frames written meanwhile, and the log grows for as long as the writes go on (tens of
    MB/s at full speed). So once it is past ``restart_log_above_frames``, passes catch up on what
    the first left and a last one copies the few frames written since with the writers queued on the lock
    file. That last pass syncs the log and the database while it holds the writers, so each catch-up round
    syncs both too, outside the lock, until a round is quick (few frames came in meanwhile; at most
    ``_CATCH_UP_ROUNDS``): after one slow round the hold would copy and sync everything that came in
    meanwhile (docs/performance.md).
    """
    return await _on_connection_thread(engine, _checkpoint, engine.url.database, restart_log_above_frames)


def _checkpoint(
    connection: sqlite3.Connection, database: str | None, restart_log_above_frames: int
) -> CheckpointPass:
    busy, log_frames, _ = _passive_checkpoint(connection)
    generation = _log_generation(f"{database}-wal")
    lock_path = write_lock_path(database)
    if busy or log_frames <= restart_log_above_frames or database is None or lock_path is None:
        # Another pass is running, or the log is short enough to keep.
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
    with _write_lock(lock_path):
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


class TokenWrites:
    """The token path's writes that wait for this worker's turn share its next transaction: one hop to the
    connection's thread, one lock, one commit for all of them (``WriteBatcher``, one slot per worker; more
    would only queue on the lock file). Each write runs exactly as it would alone; a failure rolls back and
    fails the whole batch, like any database error (503)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def rotate_refresh(self, works: Sequence[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        return await run(self.engine, _each(works))

    async def redeem(self, works: Sequence[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        return await run(self.engine, _each(works))


def _each(works: Sequence[Callable[[sqlite3.Connection], Any]]) -> Callable[[sqlite3.Connection], list[Any]]:
    def work(connection: sqlite3.Connection) -> list[Any]:
        return [each(connection) for each in works]

    return work


def write_lock_path(database: str | None) -> str | None:
    """The lock file of a database file; None for an in-memory database (one connection, no queue)."""
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return f"{database}.write-lock"


@contextlib.contextmanager
def _write_lock(path: str | None) -> Iterator[None]:
    if path is None:
        yield
        return
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # on the connection's thread: the event loop runs on
        yield
    finally:
        os.close(descriptor)  # releases the lock (also if this process dies)


def _transaction(
    connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], lock_path: str | None
) -> T:
    with _write_lock(lock_path):
        connection.execute("BEGIN IMMEDIATE")
        return _finish(connection, work)


def _transaction_if_free(
    connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], lock_path: str | None
) -> tuple[Literal[True], T] | tuple[Literal[False], None]:
    """(True, the result) after the whole transaction, when the lock file and SQLite's write lock were both
    free at once; (False, None) without having waited or changed anything otherwise."""
    descriptor = None
    if lock_path is not None:
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
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


_CLAIM_REFRESH = (
    "UPDATE refresh_families SET secret_hash = ?, rotated_at = ?, expires_at = ? WHERE family_id = ? "
    "AND secret_hash = ? AND client_id = ? AND revoked = 0 AND expires_at > ? "
    "RETURNING user_id, scope, audience, auth_time"
)
_INSERT_FAMILY = (
    "INSERT INTO refresh_families (family_id, secret_hash, client_id, user_id, scope, audience, auth_time, "
    "issued_at, expires_at, revoked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)"
)
_FAMILY_BY_ID = (
    "SELECT secret_hash, client_id, user_id, scope, audience, auth_time, expires_at, revoked "
    "FROM refresh_families WHERE family_id = ?"
)
_CLAIM_CODE = (
    "UPDATE authorization_codes SET consumed_at = ?, family_id = CASE WHEN client_id = ? "
    "AND redirect_uri = ? AND code_challenge = ? AND expires_at > ? THEN ? END "
    "WHERE code_hash = ? AND consumed_at IS NULL RETURNING client_id, user_id, redirect_uri, scope, "
    "audience, code_challenge, nonce, auth_time, expires_at, family_id"
)
_CODE_FAMILY = "SELECT family_id FROM authorization_codes WHERE code_hash = ?"
_USER_BY_ID = (
    "SELECT user_id, username, password_hash, email, email_verified, name FROM users WHERE user_id = ?"
)


def rotate_refresh(
    family_id: str, old_hash: str, client_id: str, new_hash: str, new_expires_at: datetime, now: datetime
) -> Callable[[sqlite3.Connection], tuple[bool, Any]]:
    """(True, the family's grant: user_id, scope, audience, auth_time) when rotated; (False, the family as
    it stands, a ``FamilyRow``, or None) otherwise."""
    at = stored(now)

    def work(connection: sqlite3.Connection) -> tuple[bool, Any]:
        claimed = connection.execute(
            _CLAIM_REFRESH, (new_hash, at, stored(new_expires_at), family_id, old_hash, client_id, at)
        ).fetchone()
        if claimed is not None:
            return True, claimed
        current = connection.execute(_FAMILY_BY_ID, (family_id,)).fetchone()
        if current is None:
            return False, None
        row = FamilyRow(*current)
        return False, row._replace(expires_at=_loaded(row.expires_at), revoked=bool(row.revoked))

    return work


def redeem_code(
    code_hash: str,
    now: datetime,
    client_id: str,
    redirect_uri: str | None,
    code_challenge: str | None,
    refresh: tuple[str, str, datetime] | None,  # (secret hash, family id, expiry)
) -> Callable[[sqlite3.Connection], tuple[str, Any, Any]]:
    """("claimed", code, user) with the refresh token stored when the code matched; ("used", family_id,
    None) for a code used before; ("unknown", None, None)."""
    at = stored(now)
    family = refresh[1] if refresh else None

    def work(connection: sqlite3.Connection) -> tuple[str, Any, Any]:
        claimed = connection.execute(
            _CLAIM_CODE, (at, client_id, redirect_uri, code_challenge, at, family, code_hash)
        ).fetchone()
        if claimed is None:
            used = connection.execute(_CODE_FAMILY, (code_hash,)).fetchone()
            return ("unknown", None, None) if used is None else ("used", used[0], None)
        code = CodeRow(*claimed)
        if code.family_id is not None and refresh is not None:
            connection.execute(
                _INSERT_FAMILY,
                (
                    code.family_id,
                    refresh[0],
                    code.client_id,
                    code.user_id,
                    code.scope,
                    code.audience,
                    code.auth_time,
                    at,
                    stored(refresh[2]),
                ),
            )
        user = connection.execute(_USER_BY_ID, (code.user_id,)).fetchone()
        return (
            "claimed",
            code._replace(expires_at=_loaded(code.expires_at)),
            None if user is None else UserRow(*user)._replace(email_verified=bool(user[4])),
        )

    return work
