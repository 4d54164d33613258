"""SQLite: commits never copy the write-ahead log into the database themselves (that stalled the commit
that crossed 1,000 pages, with the write lock held); the server's background checkpoint does."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sqlalchemy import insert

from authserver.crypto.opaque_tokens import new_opaque_token
from authserver.storage import sqlite_atomic
from authserver.storage.sql_store import refresh_tokens
from authserver.web.app import create_app
from tests.conftest import make_settings
from tests.support.refresh_tokens import refresh_token_row


def _size(path: Path) -> int:
    return path.stat().st_size


def _rows(count: int) -> list[dict[str, object]]:
    return [
        refresh_token_row("checkpoint-client", new_opaque_token(), scope="read " * 20) for _ in range(count)
    ]


async def test_commits_leave_the_checkpoint_to_the_background(tmp_path: Path) -> None:
    database = tmp_path / "authserver.db"
    app = create_app(make_settings(tmp_path, f"sqlite+aiosqlite:///{database}"))
    async with app.router.lifespan_context(app):
        store = app.state.services.store
        async with store.engine.connect() as connection:
            assert (await connection.exec_driver_sql("PRAGMA wal_autocheckpoint")).scalar() == 0
        size_before = _size(database)
        for _ in range(4):  # four commits, well past 1,000 pages of log between them
            async with store.engine.begin() as connection:
                await connection.execute(insert(refresh_tokens), _rows(5000))
        assert _size(Path(f"{database}-wal")) > 4096 * 1000
        assert _size(database) == size_before  # no commit copied the log in

        await store.checkpoint()
        assert _size(database) > size_before + 4096 * 1000


async def test_a_steady_stream_of_writes_cannot_grow_the_log_without_bound(tmp_path: Path) -> None:
    """Writers that never pause keep every PASSIVE checkpoint behind them, so on its own the log never
    starts over; past the threshold, the checkpoint holds them back for a moment and it does."""
    database = tmp_path / "authserver.db"
    wal = Path(f"{database}-wal")
    app = create_app(make_settings(tmp_path, f"sqlite+aiosqlite:///{database}"))
    commits, rows_per_commit, threshold_frames = 1500, 4, 256
    async with app.router.lifespan_context(app):
        engine = app.state.services.store.engine

        def insert_rows(connection: sqlite3.Connection) -> None:
            connection.executemany(_INSERT, [_row_values() for _ in range(rows_per_commit)])

        async def write() -> None:  # token-path transactions, back to back, on a connection of their own
            for _ in range(commits):
                await sqlite_atomic.run(engine, insert_rows)

        writer = asyncio.create_task(write())
        largest, restarts = 0, 0
        while not writer.done():
            restarts += await sqlite_atomic.checkpoint(engine, restart_log_above_frames=threshold_frames)
            largest = max(largest, _size(wal))
        await writer

        async with engine.connect() as connection:
            stored = (await connection.exec_driver_sql("SELECT count(*) FROM refresh_tokens")).scalar()
    assert stored == commits * rows_per_commit  # nothing lost
    assert restarts >= 1
    # Never reset, the log would hold every commit: some 60 MB here. Reset past 1 MiB, it stays a few MiB.
    assert largest < 12 * 1024 * 1024, f"the log grew to {largest / 2**20:.1f} MiB"


_INSERT = (
    "INSERT INTO refresh_tokens (token_hash, family_id, client_id, scope, audience, issued_at, expires_at, "
    "revoked) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _row_values() -> tuple[object, ...]:
    row = refresh_token_row("checkpoint-client", new_opaque_token(), scope="read " * 20)
    moment = sqlite_atomic.stored(row["issued_at"])  # type: ignore[arg-type]
    expiry = sqlite_atomic.stored(row["expires_at"])  # type: ignore[arg-type]
    return (
        row["token_hash"],
        row["family_id"],
        row["client_id"],
        row["scope"],
        row["audience"],
        moment,
        expiry,
        0,
    )
