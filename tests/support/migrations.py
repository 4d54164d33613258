"""Moving a test database to a given alembic revision, up or down, and reading its schema there."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.migrations.runner import alembic_config

Schema = dict[str, set[str]]  # table -> its column names


async def migrate_to(engine: AsyncEngine, revision: str, *, downgrade: bool = False) -> Schema:
    """Upgrade (or downgrade) to ``revision``; the schema it leaves."""
    config = alembic_config()

    def run(connection: sa.Connection) -> Schema:
        config.attributes["connection"] = connection
        (command.downgrade if downgrade else command.upgrade)(config, revision)
        inspector = sa.inspect(connection)
        return {
            table: {column["name"] for column in inspector.get_columns(table)}
            for table in inspector.get_table_names()
        }

    async with engine.begin() as connection:
        return await connection.run_sync(run)


class MigratingDatabase:
    """A test's own database, moved between revisions (``to``) with rows written between the moves."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def to(self, revision: str, *, downgrade: bool = False) -> Schema:
        return await migrate_to(self.engine, revision, downgrade=downgrade)

    async def execute(self, sql: str) -> None:
        async with self.engine.begin() as connection:
            await connection.exec_driver_sql(sql)

    async def add_old_client(self) -> None:
        """A client registered before the migration under test: client_id 'old', secret hash 'hash'."""
        await self.execute(
            "INSERT INTO clients (client_id, name, client_type, grant_types, scopes, audiences,"
            " redirect_uris, secret_hash, created_at, updated_at) VALUES ('old', 'old', 'confidential',"
            " '[]', '[]', '[]', '[]', 'hash', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        )
