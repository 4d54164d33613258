"""PostgreSQL: the token path's one-statement writes, sent straight to asyncpg.

Refresh rotation and code redemption are each one statement (the conditional UPDATE is the lock). Through
SQLAlchemy's ``AsyncConnection.execute`` one rotation cost about 350 µs of CPU on this 2-core machine; the
same SQL on an asyncpg connection about 65 µs. Checking that connection out of SQLAlchemy's pool still
cost 70-90 µs (greenlet switches, a shielded close task, three event-loop turns); from an asyncpg pool,
about 25 µs. So the worker's connection budget is split (``split_pool_budget``): half of it is an asyncpg
pool that serves only these two statements, the rest is SQLAlchemy's, for everything else. The total a
worker may open is unchanged, so the operator's sizing holds. Below two connections there is nothing to
split: the statements then borrow a connection from SQLAlchemy's pool.

What stays SQLAlchemy's: the SQL (compiled once from the same statements, for the asyncpg dialect), the
connection parameters (the dialect's own, from the same URL and settings) and the errors: a failure comes
out as ``DBAPIError`` like every other database error (503 to the client). A failure in the asyncpg pool
also retires every connection it holds, as SQLAlchemy does with its pool when it sees a disconnect: after
a database restart one request fails, not one per pooled connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from sqlalchemy import select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

# SQLAlchemy's asyncpg adapter reads this one itself; asyncpg.connect does not take it.
_ADAPTER_ONLY_PARAMETERS = ("prepared_statement_cache_size",)


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


@dataclass(frozen=True)
class PoolBudget:
    engine: int  # SQLAlchemy's pool: everything but the token path's writes
    direct: int  # the asyncpg pool of the token path's writes; 0: none, they borrow from the engine's


def split_pool_budget(max_size: int) -> PoolBudget:
    """One worker's ``db_pool_max_size``, shared by the two pools; never more in total."""
    direct = max_size // 2 if max_size >= 2 else 0
    return PoolBudget(engine=max_size - direct, direct=direct)


class Connections(Protocol):
    """Where the statements run: ``DirectPool``, or ``EngineConnections`` when there is no budget for it."""

    async def fetch_one(self, statement: DirectStatement, values: Mapping[str, Any]) -> Any:
        """The statement's first row (an ``asyncpg.Record``: ``row["name"]``), or None."""


class EngineConnections:
    """The statements on a connection borrowed from SQLAlchemy's pool (no budget of their own)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def fetch_one(self, statement: DirectStatement, values: Mapping[str, Any]) -> Any:
        async with self.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection  # the asyncpg.Connection
            assert driver is not None
            try:
                return await driver.fetchrow(statement.sql, *statement.arguments(values))
            except Exception as error:
                # A broken connection fails this probe inside SQLAlchemy, which then invalidates it (and
                # the pool's older connections) and raises its own DBAPIError; a statement error leaves it
                # usable.
                with contextlib.suppress(DBAPIError):
                    await connection.execute(select(1))
                raise DBAPIError(None, None, error) from error


async def _keep_as_is(_connection: asyncpg.Connection) -> None:
    """asyncpg's default reset (RESET ALL, UNLISTEN, CLOSE ALL ...) costs a round trip per release; these
    connections only ever run single autocommit statements, which leave no session state behind."""


class DirectPool:
    """The asyncpg pool of the token path's writes. Opened lazily (a worker that never refreshes opens
    nothing), connections made with the dialect's parameters for the engine's URL."""

    def __init__(self, connect_parameters: dict[str, Any], max_size: int, acquire_timeout: float) -> None:
        self._parameters = connect_parameters
        self.max_size = max_size
        self.acquire_timeout = acquire_timeout
        self._pool: asyncpg.Pool | None = None
        # First come, first served. asyncpg's pool waits on an asyncio.Queue, where a request arriving just
        # as a connection comes back takes it before the waiter that was woken for it; under a sustained
        # queue some waiters lose again and again (p99 155 ms against p50 9 ms, 1 worker, c=50). The
        # semaphore queues in order and lets through only as many as there are connections.
        self._turns = asyncio.Semaphore(max_size)

    @classmethod
    def for_engine(
        cls, engine: AsyncEngine, max_size: int, acquire_timeout: float, statement_cache: bool = True
    ) -> DirectPool:
        _, parameters = engine.dialect.create_connect_args(engine.url)
        for name in _ADAPTER_ONLY_PARAMETERS:
            parameters.pop(name, None)
        if not statement_cache:  # PgBouncer in transaction mode: no named prepared statements
            parameters["statement_cache_size"] = 0
        # Opening a connection is the only wait once past the semaphore: bound it here, in asyncpg.connect,
        # rather than with acquire(timeout=...), which runs every acquire in a task of its own.
        parameters["timeout"] = acquire_timeout
        return cls(parameters, max_size, acquire_timeout)

    async def _opened(self) -> asyncpg.Pool:
        if self._pool is None:
            pool = asyncpg.create_pool(
                **self._parameters, min_size=0, max_size=self.max_size, reset=_keep_as_is
            )
            # min_size 0: initialising connects nothing, so it cannot fail and never suspends (no other
            # task can see the pool half made). Connections open on demand, close after 5 idle minutes.
            await pool
            self._pool = pool
        return self._pool

    async def fetch_one(self, statement: DirectStatement, values: Mapping[str, Any]) -> Any:
        pool = self._pool or await self._opened()
        try:
            async with asyncio.timeout(self.acquire_timeout):
                await self._turns.acquire()
        except TimeoutError:
            raise PoolTimeoutError("no free connection in the token path's pool") from None
        try:
            async with pool.acquire() as connection:
                return await connection.fetchrow(statement.sql, *statement.arguments(values))
        except TimeoutError:
            raise PoolTimeoutError("no connection to the database in time") from None
        except Exception as error:
            # These statements do not fail on a healthy connection: whatever broke (a restart, a failover,
            # a network cut), the connections opened before it are suspect too.
            await pool.expire_connections()
            raise DBAPIError(None, None, error) from error
        finally:
            self._turns.release()

    def usage(self) -> tuple[int, int]:
        if self._pool is None:
            return 0, 0
        size = self._pool.get_size()
        return size - self._pool.get_idle_size(), size

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
