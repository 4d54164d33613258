"""The migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
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


async def test_concurrent_migrations_are_serialised(
    settings: Settings, request: pytest.FixtureRequest
) -> None:
    """Init containers of several pods may run `authserver migrate` at once, on an empty database."""
    if settings.is_sqlite:
        fresh_url = settings.database_url.replace(".db", "-fresh.db")
    else:
        fresh_url = request.getfixturevalue("postgres_cluster").create_database("concurrent_migrations")
    fresh = settings.model_copy(update={"database_url": fresh_url})
    await asyncio.gather(*(migrate(fresh) for _ in range(4)))
    engine = create_engine(fresh)
    try:
        async with engine.connect() as connection:
            version = (
                await connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            ).scalar_one()
    finally:
        await engine.dispose()
    assert version == "0004"


def test_ssl_override_replaces_the_urls_ssl_mode() -> None:
    from authserver.storage.engine import database_url

    url = database_url(
        Settings(
            database_url="postgresql+asyncpg://u:p@db.example:5432/auth?ssl=require&sslmode=verify-full",
            database_host_override="auth-pgbouncer",
            database_port_override=6432,
            database_ssl_override="disable",
        )
    )
    assert (url.host, url.port, dict(url.query)) == ("auth-pgbouncer", 6432, {"ssl": "disable"})
    assert url.password == "p" and url.database == "auth"
