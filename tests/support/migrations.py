"""Moving a test database to a given alembic revision, up or down."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.migrations.runner import alembic_config


async def migrate_to(engine: AsyncEngine, revision: str, *, downgrade: bool = False) -> None:
    config = alembic_config()

    def run(connection: sa.Connection) -> None:
        config.attributes["connection"] = connection
        (command.downgrade if downgrade else command.upgrade)(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(run)
