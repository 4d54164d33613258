"""The token path's own asyncpg pool (PostgreSQL): it never opens more than its share of the worker's
connection budget, a broken connection costs one failed request (a 503), and a pool with no free connection
gives up after the pool timeout like SQLAlchemy's does."""

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
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from authserver.storage.pg_direct import DirectPool, DirectStatement, split_pool_budget
from tests.support.postgres import PG_BIN, PostgresCluster

LOCK_KEY = 4242
# Waits for the test's advisory lock: the statement holds its connection for as long as the test decides.
_BLOCKED = DirectStatement("SELECT pg_backend_pid() AS pid, pg_advisory_lock_shared($1) AS locked", ("key",))
_PID = DirectStatement("SELECT pg_backend_pid() AS pid", ())


@pytest.mark.parametrize(
    ("max_size", "engine", "direct"), [(1, 1, 0), (2, 1, 1), (3, 2, 1), (10, 5, 5), (11, 6, 5)]
)
def test_the_budget_is_split_never_exceeded(max_size: int, engine: int, direct: int) -> None:
    budget = split_pool_budget(max_size)
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


async def _held(pool: DirectPool, admin: asyncpg.Connection, count: int) -> list[asyncio.Task[Any]]:
    """``count`` statements, as many as the pool allows running, all held until the test's unlock."""
    await admin.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
    statements = [asyncio.create_task(pool.fetch_one(_BLOCKED, {"key": LOCK_KEY})) for _ in range(count)]
    await _waiting_on_lock(admin, min(count, pool.max_size))
    return statements


async def _release(admin: asyncpg.Connection, statements: list[asyncio.Task[Any]]) -> list[Any]:
    await admin.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return await asyncio.gather(*statements)


async def test_concurrent_statements_share_at_most_the_pools_share(
    engine: AsyncEngine, admin: asyncpg.Connection
) -> None:
    pool = DirectPool.for_engine(engine, max_size=2, acquire_timeout=10)
    try:
        statements = await _held(pool, admin, 12)
        assert pool.usage() == (2, 2)  # two statements run; ten wait for a connection, none opens a third
        rows = await _release(admin, statements)
        assert len({row["pid"] for row in rows}) == 2
        assert pool.usage() == (0, 2)
    finally:
        await pool.close()


async def test_requests_are_served_in_arrival_order_under_a_sustained_queue(
    engine: AsyncEngine, admin: asyncpg.Connection
) -> None:
    """New requests keep arriving, one per event-loop turn, while statements complete: none may be served
    ahead of one that was already waiting. (asyncpg's own pool waits on an asyncio.Queue, where a newcomer
    that runs just after a release takes the connection from the waiter woken for it: some waiters then
    lose again and again, the latency tail.)"""
    await admin.execute("CREATE SEQUENCE turns")
    pool = DirectPool.for_engine(engine, max_size=1, acquire_timeout=30)
    next_turn = DirectStatement("SELECT nextval('turns') AS turn", ())
    turns: dict[int, int] = {}  # arrival -> turn at the database

    async def request(arrival: int) -> None:
        turns[arrival] = (await pool.fetch_one(next_turn, {}))["turn"]

    try:
        requests = []
        for arrival in range(150):
            requests.append(asyncio.create_task(request(arrival)))
            await asyncio.sleep(0)  # one loop turn: completions and arrivals interleave
        await asyncio.gather(*requests)
    finally:
        await pool.close()
    served = [arrival for arrival, _ in sorted(turns.items(), key=lambda item: item[1])]
    assert served == sorted(served)


async def test_no_free_connection_is_a_pool_timeout(engine: AsyncEngine, admin: asyncpg.Connection) -> None:
    pool = DirectPool.for_engine(engine, max_size=1, acquire_timeout=0.2)
    try:
        holder = await _held(pool, admin, 1)
        with pytest.raises(PoolTimeoutError):
            await pool.fetch_one(_PID, {})
        await _release(admin, holder)
    finally:
        await pool.close()


async def test_after_a_restart_one_statement_fails_and_the_next_reconnects(
    engine: AsyncEngine, admin: asyncpg.Connection
) -> None:
    pool = DirectPool.for_engine(engine, max_size=2, acquire_timeout=5)
    try:
        old = {row["pid"] for row in await _release(admin, await _held(pool, admin, 2))}
        assert pool.usage() == (0, 2)
        # Every pooled connection dies, as in a restart or a failover. Blocking, on purpose: the event loop
        # must not see the sockets close before the next statement, as it would not on a network cut.
        _terminate(engine, old)
        with pytest.raises(DBAPIError):
            await pool.fetch_one(_PID, {})
        # The failure retired the other dead connection too: the very next statement runs on a new one.
        assert (await pool.fetch_one(_PID, {}))["pid"] not in old
    finally:
        await pool.close()


async def test_without_a_statement_cache_it_works_behind_a_transaction_pooler(engine: AsyncEngine) -> None:
    pool = DirectPool.for_engine(engine, max_size=1, acquire_timeout=5, statement_cache=False)
    try:
        assert pool._parameters["statement_cache_size"] == 0
        assert "prepared_statement_cache_size" not in pool._parameters  # SQLAlchemy's own, not asyncpg's
        assert (await pool.fetch_one(_PID, {}))["pid"] > 0
    finally:
        await pool.close()
