"""Apply migrations programmatically (no alembic.ini needed on the pods)."""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.config import Settings
from authserver.storage.engine import create_engine

SCRIPT_LOCATION = str(Path(__file__).parent)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


# Several pods' init containers may migrate at once: PostgreSQL serialises them on an advisory lock held
# for the migration's transaction; SQLite (one file, one host) on an exclusive lock file beside it.
_ADVISORY_LOCK_ID = 0x41555448  # "AUTH"


async def upgrade_to_head(engine: AsyncEngine) -> None:
    config = alembic_config()
    async with _sqlite_file_lock(engine):
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(text(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK_ID})"))
            await connection.run_sync(lambda sync_connection: _upgrade(config, sync_connection))


@asynccontextmanager
async def _sqlite_file_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    database = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as handle:  # noqa: ASYNC230 - opening a lock file is instant
        await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)  # waiting must not block the loop
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _upgrade(config: Config, connection: object) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()
