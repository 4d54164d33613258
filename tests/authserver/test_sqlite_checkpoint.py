"""SQLite: commits never copy the write-ahead log into the database themselves (that stalled the commit
that crossed 1,000 pages, with the write lock held); the server's background checkpoint does."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert

from authserver.crypto.opaque_tokens import new_opaque_token
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
