"""PostgreSQL's commit flushes during a run: how often the WAL was synced to disk and how long that took.

The benchmark's cluster is durable (every commit waits for its WAL to reach the disk, as in production), so
the writes' latency includes this machine's disk. ``pg_stat_wal`` (with ``track_wal_io_timing``) counts the
flushes and their time; the difference across a run says how much of a write's latency was the disk's.
Backends report these counters at most once a second, so a run's figures are approximate at the edges.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple

from authserver.config import Settings
from authserver.storage.engine import create_engine

_QUERY = "SELECT wal_sync, wal_sync_time FROM pg_stat_wal"


class WalFlushes(NamedTuple):
    count: int
    milliseconds: float

    def since(self, earlier: WalFlushes) -> WalFlushes:
        return WalFlushes(self.count - earlier.count, self.milliseconds - earlier.milliseconds)

    @property
    def mean_ms(self) -> float | None:
        return self.milliseconds / self.count if self.count else None


def wal_flushes(database_url: str) -> WalFlushes:
    """The cluster's flush counters now, read through the server's own engine factory (as seeding does)."""

    async def read() -> WalFlushes:
        engine = create_engine(Settings(database_url=database_url))  # type: ignore[call-arg]
        try:
            async with engine.connect() as connection:
                row = (await connection.exec_driver_sql(_QUERY)).one()
        finally:
            await engine.dispose()
        return WalFlushes(int(row.wal_sync), float(row.wal_sync_time))

    return asyncio.run(read())
