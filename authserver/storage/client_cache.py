"""A per-worker cache of client registrations in front of the database.

Consistency rule: a change made through the admin API is seen at once by the worker that made it (it
invalidates its own entry) and by every other worker and replica within ``client_cache_ttl`` (default 2 s):
a cached copy is never served longer than the TTL after the database read that produced it began.
Only clients that exist are cached, so random client_ids cannot fill memory.

Under load the cache never makes a request wait for the database once a client is cached: an entry in the
last quarter of its life is re-read in the background while the cached copy keeps being served, and
concurrent misses for one client share a single database read. Without both, every entry's expiry sent
all the requests in flight for that client to the database at once, and their queue for the connection
pool was the token endpoint's p99 (docs/performance.md).

Client changes (``changes_seen``): every write to a client records its time in the database, and each
worker's revocation sync (every ``revocation_sync_interval``) reads the changes since its last look, drops
those clients and confirms the rest as of the moment the sync began. An entry confirmed within the TTL is as
good as one read then, so while the syncs succeed no entry expires and a client that is used less often than
once a TTL (10,000 clients taking turns) is not read again on each use; the consistency rule holds, because
a change is dropped by the first sync after it. When the syncs stop (the database is unreachable) entries
expire a TTL after the last confirmation, as without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from authserver.protocol.client_authentication import ClientLookup
from authserver.protocol.models import Client
from authserver.protocol.workload_identity import WorkloadLookup

# An entry is re-read in the background once this fraction of its TTL has passed.
REFRESH_AHEAD_FRACTION = 0.75
# Syncs this far apart cannot vouch for what was cached before the gap: the database keeps client changes
# for a day (``storage.sql_store``'s purge), so after a longer gap some may be gone; the cache starts over.
MAX_CONFIRMATION_GAP_SECONDS = 3600.0


@dataclass(slots=True)
class _Entry:
    client: Client
    expires_at: float
    refresh_after: float


@dataclass(slots=True)
class _Workload:
    client_id: str
    expires_at: float
    refresh_after: float


class ClientCache:
    def __init__(
        self,
        lookup: ClientLookup,
        ttl_seconds: float,
        max_entries: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
        by_workload: WorkloadLookup | None = None,
    ) -> None:
        self._lookup = lookup
        self._by_workload = by_workload
        # (trusted issuer, subject) -> which client a workload is, re-read within the TTL; the client itself
        # comes through get() (and its cache), checked to still be that workload's.
        self._workloads: OrderedDict[tuple[str, str], _Workload] = OrderedDict()
        self._workload_reads: dict[tuple[str, str], asyncio.Task[Client | None]] = {}
        self._clock = clock
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        # One database read per client at a time, shared by every request that needs it.
        self._reads: dict[str, asyncio.Task[Client | None]] = {}
        # Bumped by invalidate(): a read that began before an invalidation must not be cached. One counter
        # for all clients: invalidations are rare (admin writes) and then re-reading a few more is cheap.
        self._generation = 0
        # When the last sync that read the client changes began (this cache's clock); None: none yet.
        self._confirmed_at: float | None = None

    def clock(self) -> float:
        """This cache's clock, for ``changes_seen``'s ``as_of``."""
        return self._clock()

    def changes_seen(self, client_ids: Iterable[str], as_of: float) -> None:
        """A sync that began at ``as_of`` read every client changed since the sync before it: drop those;
        every other cached client is as good as read at ``as_of``."""
        previous = self._confirmed_at
        if previous is not None and as_of - previous > MAX_CONFIRMATION_GAP_SECONDS:
            self._entries.clear()
            self._generation += 1
        for client_id in client_ids:
            self.invalidate(client_id)
        self._confirmed_at = as_of if previous is None else max(previous, as_of)

    async def get(self, client_id: str) -> Client | None:
        if self.ttl <= 0:
            return await self._lookup(client_id)
        now = self._clock()
        entry = self._entries.get(client_id)
        if entry is not None:
            expires_at, refresh_after = entry.expires_at, entry.refresh_after
            confirmed = self._confirmed_at
            if confirmed is not None:  # as good as read when the last sync began, if that is later
                expires_at = max(expires_at, confirmed + self.ttl)
                refresh_after = max(refresh_after, confirmed + self.ttl * REFRESH_AHEAD_FRACTION)
            if expires_at > now:
                if refresh_after <= now and client_id not in self._reads:
                    self._start_read(client_id).add_done_callback(_consume_exception)
                return entry.client
        read = self._reads.get(client_id) or self._start_read(client_id)
        # shield: a caller that gives up (client gone) must not cancel the read the others wait for.
        return await asyncio.shield(read)

    async def get_by_workload(self, issuer: str, subject: str) -> Client | None:
        """The workload_identity client registered for (issuer, subject), with the same consistency rule and
        the same load rule: a known workload is re-read in the background late in its life, and concurrent
        misses share one read (a pod's every request names its workload)."""
        if self._by_workload is None:
            return None
        if self.ttl <= 0:
            return await self._by_workload(issuer, subject)
        key = (issuer, subject)
        now = self._clock()
        known = self._workloads.get(key)
        if known is not None and known.expires_at > now:
            if known.refresh_after <= now and key not in self._workload_reads:
                self._start_workload_read(key).add_done_callback(_consume_exception)
            client = await self.get(known.client_id)
            if client is not None and (client.workload_issuer, client.workload_subject) == key:
                return client
        read = self._workload_reads.get(key) or self._start_workload_read(key)
        return await asyncio.shield(read)

    def _start_workload_read(self, key: tuple[str, str]) -> asyncio.Task[Client | None]:
        read = asyncio.get_running_loop().create_task(self._read_workload(key))
        self._workload_reads[key] = read
        return read

    async def _read_workload(self, key: tuple[str, str]) -> Client | None:
        assert self._by_workload is not None
        started = self._clock()
        try:
            client = await self._by_workload(*key)
        finally:
            if self._workload_reads.get(key) is asyncio.current_task():
                del self._workload_reads[key]
        if client is None:
            self._workloads.pop(key, None)
            return None
        # Only which client it is is kept here; the client itself is get()'s (and checked on each use).
        self._workloads[key] = _Workload(
            client.client_id, started + self.ttl, started + self.ttl * REFRESH_AHEAD_FRACTION
        )
        self._workloads.move_to_end(key)
        if len(self._workloads) > self.max_entries:
            self._workloads.popitem(last=False)
        return client

    def invalidate(self, client_id: str) -> None:
        self._entries.pop(client_id, None)
        self._generation += 1
        self._reads.pop(client_id, None)  # the next get() reads again, after the change

    def _start_read(self, client_id: str) -> asyncio.Task[Client | None]:
        read = asyncio.get_running_loop().create_task(self._read(client_id, self._generation))
        self._reads[client_id] = read
        return read

    async def _read(self, client_id: str, generation: int) -> Client | None:
        started = self._clock()
        try:
            client = await self._lookup(client_id)
        except BaseException:
            self._forget_read(client_id)
            raise
        self._forget_read(client_id)
        if self._generation != generation:
            return client  # invalidated meanwhile: answer this caller, cache nothing
        if client is None:
            self._entries.pop(client_id, None)
            return None
        self._entries[client_id] = _Entry(
            client, started + self.ttl, started + self.ttl * REFRESH_AHEAD_FRACTION
        )
        self._entries.move_to_end(client_id)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return client

    def _forget_read(self, client_id: str) -> None:
        current = self._reads.get(client_id)
        if current is not None and current is asyncio.current_task():
            del self._reads[client_id]


def _consume_exception(read: asyncio.Task[Client | None]) -> None:
    # A failed background re-read is not an error of any request: the entry is served until it
    # expires, and the next read after that reports the failure to its caller.
    if not read.cancelled():
        with contextlib.suppress(BaseException):
            read.exception()
