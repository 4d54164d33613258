"""Apply migrations programmatically (no alembic.ini needed on the pods)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.config import Settings
from authserver.storage.engine import create_engine

SCRIPT_LOCATION = str(Path(__file__).parent)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


async def upgrade_to_head(engine: AsyncEngine) -> None:
    config = alembic_config()
    async with engine.begin() as connection:
        config.attributes["connection"] = connection
        await connection.run_sync(lambda sync_connection: _upgrade(config, sync_connection))


def _upgrade(config: Config, connection: object) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()
