"""SQLite: commits never copy the write-ahead log into the database themselves (that stalled the commit
that crossed 1,000 pages, with the write lock held); the server's background checkpoint does, and sees to
it that the log starts over even when writers never pause."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert

from authserver.migrations.runner import upgrade_to_head
from authserver.observability import metrics
from authserver.storage.engine import create_engine
from authserver.storage.sqlite import checkpoint, token_writes, transactions
from authserver.storage.sqlite.store import SqliteStore
from authserver.storage.tables import refresh_families
from authserver.web.services import next_checkpoint_in
from tests.conftest import make_settings
from tests.support.refresh_tokens import family_row, token_path_insert_values


def _size(path: Path) -> int:
    return path.stat().st_size


def _rows(count: int) -> list[dict[str, object]]:
    return [family_row("checkpoint-client", scope="read " * 20)[1] for _ in range(count)]


async def test_commits_leave_the_checkpoint_to_the_background(tmp_path: Path) -> None:
    database = tmp_path / "authserver.db"
    engine = create_engine(make_settings(tmp_path, f"sqlite+aiosqlite:///{database}"))
    await upgrade_to_head(engine)  # no server, so no background pass: only commits could copy the log in
    store = SqliteStore(engine)
    try:
        async with engine.connect() as connection:
            assert (await connection.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar() == 0
        size_before = _size(database)
        for _ in range(4):  # four commits, well past 1,000 pages of log between them
            async with engine.begin() as connection:
                await connection.execute(insert(refresh_families), _rows(5000))
        assert _size(Path(f"{database}-wal")) > 4096 * 1000
        assert _size(database) == size_before  # no commit copied the log in

        frames, _ = await store.checkpoint()
        assert frames > 1000
        assert _size(database) > size_before + 4096 * 1000
    finally:
        await engine.dispose()


async def test_checkpoints_come_often_while_the_log_grows_and_seldom_when_idle(tmp_path: Path) -> None:
    """The server's loop waits 0.2 s after a pass that found the log grown since the last one (short passes
    disturb the token path's writers least), a second after one that found it unchanged (idle)."""
    database = tmp_path / "authserver.db"
    engine = create_engine(make_settings(tmp_path, f"sqlite+aiosqlite:///{database}"))
    await upgrade_to_head(engine)
    store = SqliteStore(engine)
    waits: list[float] = []
    last: tuple[int, bytes] | None = None
    try:
        for writes in (10, 10, 0, 0, 10):  # the last writes start the log over, to as many frames as before
            if writes:
                async with engine.begin() as connection:
                    await connection.execute(insert(refresh_families), _rows(writes))
            log_state = await store.checkpoint()
            waits.append(next_checkpoint_in(log_state, last))
            last = log_state
    finally:
        await engine.dispose()
    assert waits == [0.2, 0.2, 1.0, 1.0, 0.2]


async def test_a_writer_busy_through_every_pass_cannot_keep_the_log_from_starting_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Saturated workers always have a transaction open while a checkpoint pass runs, and commit it after:
    every PASSIVE pass ends behind, and on its own the log never starts over. Past the threshold the last
    pass holds the writers at the lock file, copies the rest, and the next commit starts the log over."""
    database = tmp_path / "authserver.db"
    engine = create_engine(make_settings(tmp_path, f"sqlite+aiosqlite:///{database}"))
    await upgrade_to_head(engine)  # no server: nothing else reads, writes or checkpoints
    writer = sqlite3.connect(database, check_same_thread=False, isolation_level=None)
    writer.execute("PRAGMA wal_autocheckpoint=0")  # as the server's connections: only checkpoints copy
    held, committed = False, 0

    def begin() -> None:
        writer.execute("BEGIN IMMEDIATE")

    def commit(rows: int = 4) -> None:
        nonlocal committed
        writer.executemany(token_writes.INSERT_FAMILY, [token_path_insert_values() for _ in range(rows)])
        writer.execute("COMMIT")
        committed += rows

    passive, write_lock = checkpoint._passive_checkpoint, checkpoint.write_lock

    def pass_with_a_writer_inside(connection: sqlite3.Connection) -> tuple[int, int, int]:
        if held:  # writers wait at the lock file
            return passive(connection)
        begin()
        try:
            return passive(connection)
        finally:
            commit()

    @contextlib.contextmanager
    def recorded_write_lock(path: str | None) -> Iterator[None]:
        nonlocal held
        with write_lock(path):
            held = True
            try:
                yield
            finally:
                held = False

    monkeypatch.setattr(checkpoint, "_passive_checkpoint", pass_with_a_writer_inside)
    monkeypatch.setattr(checkpoint, "write_lock", recorded_write_lock)
    try:
        for _ in range(200):
            begin()
            commit()
        before = _frames_in_log(database)
        assert before > 256

        holds = _writers_held()
        assert (await checkpoint.checkpoint(engine, restart_log_above_frames=256)).restarted
        assert _writers_held() == holds + 1  # the hold is on the metrics, for the disk's worst moments
        begin()
        commit()  # the next writer
        after = _frames_in_log(database)
        assert after < 64, f"the log did not start over: {before} frames, then {after}"
        assert writer.execute("SELECT count(*) FROM refresh_families").fetchone()[0] == committed  # none lost
    finally:
        writer.close()
        await engine.dispose()


def _frames_in_log(database: Path) -> int:
    """The log's frame count from the WAL index's header (``mxFrame``), read without taking any lock or
    running a checkpoint pass of its own (either would change what it measures)."""
    with open(f"{database}-shm", "rb") as index:
        header = index.read(48)
    return int.from_bytes(header[16:20], sys.byteorder)


def _writers_held() -> float:
    """How many holds ``authserver_sqlite_writers_held_seconds`` has counted in this process."""
    for metric in metrics.SQLITE_WRITERS_HELD.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                return sample.value
    raise AssertionError("the histogram has no count")


async def test_a_log_restart_keeps_this_process_s_locks_so_no_other_process_deletes_the_log(
    tmp_path: Path,
) -> None:
    """The restart syncs the database file before it holds the writers. Closing a descriptor of that file
    would drop every POSIX lock this process holds on it, SQLite's included; the next process to close its
    last connection would then take the exclusive lock and delete the log and its index under this
    process's open connections (in a benchmark run, every write failed from then on)."""
    database = tmp_path / "authserver.db"
    engine = create_engine(make_settings(tmp_path, f"sqlite+aiosqlite:///{database}"))
    await upgrade_to_head(engine)
    try:
        for _ in range(3):
            await transactions.run(engine, _insert_rows(100))
        assert (await checkpoint.checkpoint(engine, restart_log_above_frames=1)).restarted  # restart path ran

        assert await asyncio.to_thread(_another_process_reads_and_closes, database)
        await transactions.run(engine, _insert_rows(1))  # this process's connections still write
        with sqlite3.connect(database) as reader:
            assert reader.execute("SELECT count(*) FROM refresh_families").fetchone()[0] == 301
    finally:
        await engine.dispose()


def _another_process_reads_and_closes(database: Path) -> bool:
    """Whether the log and its index are still there after another process's only connection read and
    closed (closing, SQLite deletes them if it can take the database's exclusive lock)."""
    reads = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute('SELECT count(*) FROM refresh_families'); c.close()"
    )
    subprocess.run([sys.executable, "-c", reads, str(database)], check=True, timeout=60)
    return Path(f"{database}-wal").exists() and Path(f"{database}-shm").exists()


def _insert_rows(count: int) -> Callable[[sqlite3.Connection], None]:
    def work(connection: sqlite3.Connection) -> None:
        connection.executemany(token_writes.INSERT_FAMILY, [token_path_insert_values() for _ in range(count)])

    return work
