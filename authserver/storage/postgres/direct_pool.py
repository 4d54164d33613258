"""PostgreSQL: the connections of the token path's one-statement writes, straight to asyncpg.

Refresh-token rotation and code redemption are each one statement (the conditional UPDATE is the lock).
Through SQLAlchemy's ``AsyncConnection.execute`` and its pool (greenlet switches, a shielded close task,
three event-loop turns) such a statement cost the worker several times the CPU it costs on a plain asyncpg
connection (docs/performance.md). So the worker's connection budget is split (``split_pool_budget``):
``db_write_connections`` of it (one by default) are asyncpg connections that serve only these two
statements, the rest is SQLAlchemy's, for everything else. The total a worker may open is unchanged, so
the operator's sizing holds. Below two connections there is nothing to split: the statements then borrow a
connection from SQLAlchemy's pool.

One write connection is the default because writes that find it busy share the next statement
(``WriteBatcher``): fewer connections make bigger batches, in which PostgreSQL spends about half the CPU
per row and the worker makes fewer round trips, and one connection gave the best throughput and p99
(docs/performance.md). More connections only pay off when the database is far enough away that a round
trip, not CPU, bounds the writes.

The statements are ``token_writes``'; a ``WriteBatcher`` decides which run when. What stays
SQLAlchemy's: the connection parameters (the dialect's own, from the same URL and settings) and the errors:
a failure comes out as ``DBAPIError`` like every other database error (503 to the client). A failure in
the asyncpg pool also retires every connection it holds, as SQLAlchemy does with its pool when it sees a
disconnect: after a database restart one request fails, not one per pooled connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

# SQLAlchemy's asyncpg adapter reads this one itself; asyncpg.connect does not take it.
_ADAPTER_ONLY_PARAMETERS = ("prepared_statement_cache_size",)


@dataclass(frozen=True)
class PoolBudget:
    engine: int  # SQLAlchemy's pool: everything but the token path's writes
    direct: int  # the asyncpg pool of the token path's writes; 0: none, they borrow from the engine's


def split_pool_budget(max_size: int, write_connections: int = 1) -> PoolBudget:
    """One worker's ``db_pool_max_size``, shared by the two pools; never more in total, and never less than
    one connection for the engine (``Settings`` refuses a ``write_connections`` that leaves none)."""
    if max_size < 2:
        return PoolBudget(engine=max_size, direct=0)
    direct = min(write_connections, max_size - 1)
    return PoolBudget(engine=max_size - direct, direct=direct)


class Connections(Protocol):
    """Where the statements run: ``DirectPool``, or ``EngineConnections`` when there is no budget for it.
    ``slots`` statements may run at once (a ``WriteBatcher`` keeps to it); waiting for one of them gives
    up after ``wait_timeout`` seconds."""

    @property
    def slots(self) -> int: ...

    @property
    def wait_timeout(self) -> float: ...

    async def fetch(self, sql: str, arguments: Sequence[Any]) -> list[Any]:
        """The statement's rows (``asyncpg.Record``: ``row["name"]``)."""


class EngineConnections:
    """The statements on a connection borrowed from SQLAlchemy's pool (no budget of their own)."""

    def __init__(self, engine: AsyncEngine, slots: int = 1, wait_timeout: float = 30.0) -> None:
        self.engine = engine
        self.slots = slots
        self.wait_timeout = wait_timeout

    async def fetch(self, sql: str, arguments: Sequence[Any]) -> list[Any]:
        async with self.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            driver: asyncpg.Connection | None = raw.driver_connection
            assert driver is not None
            try:
                return await driver.fetch(sql, *arguments)
            except Exception as error:
                # A broken connection fails this probe inside SQLAlchemy, which then invalidates it (and
                # the pool's older connections) and raises its own DBAPIError; a statement error leaves it
                # usable.
                with contextlib.suppress(DBAPIError):
                    await connection.execute(select(1))
                raise DBAPIError(None, None, error) from error


class DirectPool:
    """The asyncpg connections of the token path's writes, made with the dialect's parameters for the
    engine's URL: all opened as the worker starts (``open_all``), or when a statement finds none idle (after
    a failure retired them), and kept open for the next statement. Its caller (``WriteBatcher``) runs at
    most ``slots`` statements at a time, so at most that many connections are ever open and nobody queues
    here.

    Not asyncpg's ``Pool``: its release ran in a task of its own (``asyncio.shield``) and reset the
    connection, CPU spent on every statement of this path; and its queue let a request arriving just as a
    connection came back take it ahead of the waiter woken for it (the batcher serves in arrival order)."""

    def __init__(
        self,
        connect_parameters: Mapping[str, Any],
        max_size: int,
        acquire_timeout: float,
        warm_up: Sequence[tuple[str, Sequence[Any]]] = (),
    ) -> None:
        self._parameters = connect_parameters
        self._warm_up = warm_up  # statements run on each new connection before it serves
        self.max_size = max_size
        self.acquire_timeout = acquire_timeout
        self._idle: list[asyncpg.Connection] = []
        self._in_use = 0
        self._generation = 0  # bumped by a failure: connections opened before it are retired
        self._closing: set[asyncio.Task[None]] = set()  # connections of cancelled statements

    @property
    def slots(self) -> int:
        return self.max_size

    @property
    def wait_timeout(self) -> float:
        return self.acquire_timeout

    @classmethod
    def for_engine(
        cls,
        engine: AsyncEngine,
        max_size: int,
        acquire_timeout: float,
        statement_cache: bool = True,
        warm_up: Sequence[tuple[str, Sequence[Any]]] = (),
    ) -> DirectPool:
        _, parameters = engine.dialect.create_connect_args(engine.url)
        for name in _ADAPTER_ONLY_PARAMETERS:
            parameters.pop(name, None)
        if not statement_cache:  # PgBouncer in transaction mode: no named prepared statements
            parameters["statement_cache_size"] = 0
        parameters["timeout"] = acquire_timeout  # opening a connection is the only wait here
        return cls(parameters, max_size, acquire_timeout, warm_up)

    async def fetch(self, sql: str, arguments: Sequence[Any]) -> list[Any]:
        generation = self._generation
        self._in_use += 1
        try:
            connection = self._idle.pop() if self._idle else await self._connect()
            try:
                rows = await connection.fetch(sql, *arguments)
            except asyncio.CancelledError:
                # asyncpg asks the server to cancel the statement; the connection closes once it has (a
                # backend waiting on a lock would not notice a socket closed under it), never reused.
                closing = asyncio.get_running_loop().create_task(
                    connection.close(timeout=self.acquire_timeout)
                )
                self._closing.add(closing)
                closing.add_done_callback(self._closed)
                raise
            except BaseException:
                connection.terminate()  # failed mid-statement: its state is unknown
                raise
        except TimeoutError:
            raise PoolTimeoutError("no connection to the database in time") from None
        except Exception as error:
            # These statements do not fail on a healthy connection: whatever broke (a restart, a failover,
            # a network cut), the connections opened before it are suspect too.
            self._retire()
            raise DBAPIError(None, None, error) from error
        finally:
            self._in_use -= 1
        if generation == self._generation:
            self._idle.append(connection)
        else:
            connection.terminate()
        return rows

    async def open_all(self) -> None:
        """Opens every connection now, before the worker serves: opened on demand instead, the first
        requests after a start waited for the connection and its warm-up (tens of ms under load). Any that
        cannot be opened (the database is down) open on demand later; the first error is raised."""
        missing = self.max_size - self._in_use - len(self._idle)
        opened = await asyncio.gather(*(self._connect() for _ in range(missing)), return_exceptions=True)
        self._idle.extend(item for item in opened if isinstance(item, asyncpg.Connection))
        for item in opened:
            if isinstance(item, BaseException):
                raise item

    async def _connect(self) -> asyncpg.Connection:
        connection: asyncpg.Connection = await asyncpg.connect(**self._parameters)
        try:
            for sql, arguments in self._warm_up:
                await connection.fetch(sql, *arguments)
        except BaseException:
            connection.terminate()
            raise
        return connection

    def _closed(self, closing: asyncio.Task[None]) -> None:
        self._closing.discard(closing)
        if not closing.cancelled():
            closing.exception()  # retrieved, not raised: a failed close leaves the server to drop it

    def _retire(self) -> None:
        self._generation += 1
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.terminate()

    def usage(self) -> tuple[int, int]:
        """(connections running a statement, connections open)."""
        return self._in_use, self._in_use + len(self._idle)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.close()
        await asyncio.gather(*self._closing, return_exceptions=True)
