"""PostgreSQL: the token path's one-statement writes, sent to asyncpg past SQLAlchemy's execution layer.

Refresh rotation and code redemption are each one statement (the conditional UPDATE is the lock). Executed
through ``AsyncConnection.execute`` one rotation cost about 350 µs of CPU in SQLAlchemy's layers on this
2-core machine; the same SQL on the asyncpg connection, about 65 µs -- on a path that does little else.

What stays SQLAlchemy's: the SQL (compiled once from the same statements, for the asyncpg dialect), the
connection (checked out from and returned to the engine's pool) and the errors. A failure is re-raised as
``DBAPIError`` like every other database error (503 to the client); if the connection may have broken, a
probe through SQLAlchemy lets it do its own disconnect handling, which discards every pooled connection
opened before the outage (not just this one) as it does on its own paths.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable


@dataclass(frozen=True)
class DirectStatement:
    sql: str
    parameter_order: tuple[str, ...]

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[name] for name in self.parameter_order]


def compile_direct(statement: Executable, dialect: Dialect) -> DirectStatement:
    """The statement as SQLAlchemy would send it to asyncpg ($1, $2 ...), with its parameters' order."""
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    return DirectStatement(str(compiled), tuple(compiled.positiontup or ()))


async def fetch_one(engine: AsyncEngine, statement: DirectStatement, values: Mapping[str, Any]) -> Any:
    """The statement's first row (an ``asyncpg.Record``: ``row["name"]``), or None."""
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection  # the asyncpg.Connection
        assert driver is not None
        try:
            return await driver.fetchrow(statement.sql, *statement.arguments(values))
        except Exception as error:
            # A broken connection fails this probe inside SQLAlchemy, which then invalidates it (and the
            # pool's older connections) and raises its own DBAPIError; a statement error leaves it usable.
            with contextlib.suppress(DBAPIError):
                await connection.execute(select(1))
            raise DBAPIError(None, None, error) from error
