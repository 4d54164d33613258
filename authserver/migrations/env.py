"""Alembic environment: runs migrations on the async engine the server itself uses."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import authserver.storage.tables  # noqa: F401 - registers the tables on SQLModel.metadata
from authserver.config import load_settings
from authserver.storage.engine import create_engine

target_metadata = SQLModel.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = context.config.attributes.get("engine") or create_engine(load_settings())
    async with engine.begin() as connection:
        await connection.run_sync(_run)
    if "engine" not in context.config.attributes:
        await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    asyncio.run(_run_online())
