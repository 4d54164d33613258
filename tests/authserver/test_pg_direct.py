"""The token path's own asyncpg connections (PostgreSQL): they open as the worker starts, never more than
its share of the worker's connection budget (with the write batcher in front, as in the server), and a
broken connection costs one failed request (a 503)."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from authserver.storage.postgres.direct_pool import DirectPool, split_pool_budget
from authserver.storage.write_batches import WriteBatcher
from harness.ports import free_port
from harness.postgres import PG_BIN, PostgresCluster

LOCK_KEY = 4242
# Waits for the test's advisory lock: the statement holds its connection for as long as the test decides.
_BLOCKED = "SELECT pg_backend_pid() AS pid, pg_advisory_lock_shared($1) AS locked"
_PID = "SELECT pg_backend_pid() AS pid"


@pytest.mark.parametrize(
    ("max_size", "writes", "engine", "direct"),
    [(1, 1, 1, 0), (2, 1, 1, 1), (10, 1, 9, 1), (10, 3, 7, 3), (4, 9, 1, 3)],
)
def test_the_budget_is_split_never_exceeded(max_size: int, writes: int, engine: int, direct: int) -> None:
    budget = split_pool_budget(max_size, writes)
    assert (budget.engine, budget.direct) == (engine, direct)
    assert budget.engine + budget.direct == max_size


@pytest.fixture
async def engine(postgres_cluster: PostgresCluster) -> AsyncIterator[AsyncEngine]:
    url = postgres_cluster.create_database(f"d_{uuid.uuid4().hex[:12]}")
    engine = create_async_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def admin(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own, outside the pool under test."""
    url = engine.url
    connection = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database=url.database)
    try:
        yield connection
    finally:
        await connection.close()


async def _waiting_on_lock(admin: asyncpg.Connection, count: int) -> None:
    """Until ``count`` backends wait for the test's lock (a condition, polled, with a deadline)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        waiting = await admin.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = $1",
            LOCK_KEY,
        )
        if waiting >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} backends never waited on the lock")


def _terminate(engine: AsyncEngine, pids: set[int]) -> None:
    url = engine.url
    listed = ",".join(str(pid) for pid in sorted(pids))
    subprocess.run(
        [
            str(PG_BIN / "psql"),
            *("-h", str(url.host), "-p", str(url.port), "-U", str(url.username), "-d", str(url.database)),
            *("-qAtc", f"SELECT pg_terminate_backend(pid) FROM unnest(ARRAY[{listed}]) AS pid"),  # noqa: S608 - ints
        ],
        check=True,
        capture_output=True,
    )


async def _other_backends(admin: asyncpg.Connection) -> set[int]:
    """The backends of the test's database other than the test's own connection."""
    rows = await admin.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return {row["pid"] for row in rows}


async def _pid(pool: DirectPool) -> int:
    return int((await pool.fetch(_PID, []))[0]["pid"])


def _blocked_statements(pool: DirectPool) -> object:
    """A kind of write that runs one statement per batch, held on the test's advisory lock."""

    async def execute(items: list[Any]) -> list[Any]:
        rows = await pool.fetch(_BLOCKED, [LOCK_KEY])
        return [rows[0]["pid"]] * len(items)

    return execute


async def test_concurrent_writes_use_at_most_the_pools_share(
    engine: AsyncEngine, admin: asyncpg.Connection
) -> None:
    pool = DirectPool.for_engine(engine, max_size=2, acquire_timeout=10)
    batcher = WriteBatcher(pool.slots, pool.wait_timeout)
    execute = _blocked_statements(pool)
    try:
        await admin.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        writes = [asyncio.create_task(batcher.submit(execute, n, n)) for n in range(12)]  # type: ignore[arg-type]
        await _waiting_on_lock(admin, 2)
        assert pool.usage() == (2, 2)  # two statements run; ten writes wait, none opens a third connection
        await admin.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        pids = set(await asyncio.gather(*writes))
        assert len(pids) <= 2 and pool.usage() == (0, 2)
    finally:
        await pool.close()


async def test_every_connection_opens_before_the_worker_serves(
    engine: AsyncEngine, admin: asyncpg.Connection
) -> None:
    pool = DirectPool.for_engine(
        engine, max_size=3, acquire_timeout=5, warm_up=[("SELECT $1::text[] AS warmed", [[]])]
    )
    try:
        await pool.open_all()
        assert pool.usage() == (0, 3)
        assert len(await _other_backends(admin)) == 3
        await pool.open_all()  # already open: nothing more
        assert pool.usage() == (0, 3)
    finally:
        await pool.close()


async def test_a_database_down_at_start_is_an_error_and_connections_open_later(engine: AsyncEngine) -> None:
    unreachable = engine.url.set(port=free_port())
    pool = DirectPool.for_engine(create_async_engine(unreachable), max_size=2, acquire_timeout=5)
    with pytest.raises(OSError):
        await pool.open_all()
    assert pool.usage() == (0, 0)
    pool._parameters["port"] = engine.url.port  # the database is back
    assert await _pid(pool) > 0
    await pool.close()


async def test_a_statement_cancelled_midway_closes_its_connection(
    engine: AsyncEngine, admin: asyncpg.Connection
) -> None:
    pool = DirectPool.for_engine(engine, max_size=1, acquire_timeout=5)
    try:
        await admin.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        statement = asyncio.create_task(pool.fetch(_BLOCKED, [LOCK_KEY]))
        await _waiting_on_lock(admin, 1)
        statement.cancel()
        with pytest.raises(asyncio.CancelledError):
            await statement
        assert pool.usage() == (0, 0)  # its state unknown: never handed to another statement
        deadline = time.monotonic() + 10
        while await _other_backends(admin) and time.monotonic() < deadline:  # noqa: ASYNC110 - the server
            await asyncio.sleep(0.02)  # state is polled: it sees the close in its own time
        assert not await _other_backends(admin), "the cancelled statement's connection stayed open"
        await admin.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        assert await _pid(pool) > 0
    finally:
        await pool.close()


async def test_after_a_restart_one_statement_fails_and_the_next_reconnects(
    engine: AsyncEngine, admin: asyncpg.Connection
) -> None:
    pool = DirectPool.for_engine(engine, max_size=2, acquire_timeout=5)
    try:
        await pool.open_all()
        assert pool.usage() == (0, 2)
        old = await _other_backends(admin)
        assert len(old) == 2
        # Every pooled connection dies, as in a restart or a failover. Blocking, on purpose: the event loop
        # must not see the sockets close before the next statement, as it would not on a network cut.
        _terminate(engine, old)
        with pytest.raises(DBAPIError):
            await _pid(pool)
        # The failure retired the other dead connection too: the very next statement runs on a new one.
        assert await _pid(pool) not in old
        assert pool.usage() == (0, 1)
    finally:
        await pool.close()


async def test_without_a_statement_cache_it_works_behind_a_transaction_pooler(engine: AsyncEngine) -> None:
    pool = DirectPool.for_engine(engine, max_size=1, acquire_timeout=5, statement_cache=False)
    try:
        assert pool._parameters["statement_cache_size"] == 0
        assert "prepared_statement_cache_size" not in pool._parameters  # SQLAlchemy's own, not asyncpg's
        assert await _pid(pool) > 0
    finally:
        await pool.close()
