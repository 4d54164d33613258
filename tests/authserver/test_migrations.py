"""The migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from authserver.config import Settings
from authserver.migrations.runner import migrate
from authserver.storage.engine import create_engine


async def test_migrated_schema_matches_the_models(settings: Settings) -> None:
    await migrate(settings)  # idempotent: the app fixture may have migrated already
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), SQLModel.metadata)
            )
    finally:
        await engine.dispose()
    assert differences == []
