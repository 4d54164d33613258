"""The per-worker client cache: bounded staleness, no negative caching, local invalidation."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from authserver.protocol.models import Client, ClientType
from authserver.storage.client_cache import ClientCache


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_cached_until_ttl_then_reloaded(clock: Clock) -> None:
    database = {"a": Client("a", "A", ClientType.CONFIDENTIAL, ("client_credentials",), ("read",))}
    calls: list[str] = []

    async def lookup(client_id: str) -> Client | None:
        calls.append(client_id)
        return database.get(client_id)

    cache = ClientCache(lookup, ttl_seconds=2, clock=clock)
    assert (await cache.get("a")).scopes == ("read",)
    database["a"] = Client("a", "A", ClientType.CONFIDENTIAL, ("client_credentials",), ("write",))
    clock.now += 1.9
    assert (await cache.get("a")).scopes == ("read",)  # within the documented staleness bound
    clock.now += 0.2
    assert (await cache.get("a")).scopes == ("write",)
    assert calls == ["a", "a"]

    del database["a"]
    cache.invalidate("a")  # what the admin API does in its own worker
    assert await cache.get("a") is None
    assert await cache.get("missing") is None and await cache.get("missing") is None
    assert calls.count("missing") == 2  # unknown ids are never cached


def _client(scope: str) -> Client:
    return Client("a", "A", ClientType.CONFIDENTIAL, ("client_credentials",), (scope,))


class GatedDatabase:
    """A lookup that blocks until the test opens the gate: reads in flight are observable."""

    def __init__(self, client: Client | None) -> None:
        self.client = client
        self.reads = 0
        self.gate = asyncio.Event()
        self.failure: Exception | None = None
        self._started: asyncio.Queue[int] = asyncio.Queue()

    async def read_started(self) -> None:
        """Wait (bounded) until the next database read has begun."""
        await asyncio.wait_for(self._started.get(), timeout=5)

    async def lookup(self, client_id: str) -> Client | None:
        self.reads += 1
        self._started.put_nowait(self.reads)
        snapshot = self.client  # what the database held when the read began
        await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return snapshot


async def _background_reads_done(cache: ClientCache) -> None:
    reads = list(cache._reads.values())
    if reads:
        await asyncio.wait(reads, timeout=5)


async def test_concurrent_misses_share_one_database_read(clock: Clock) -> None:
    database = GatedDatabase(_client("read"))
    cache = ClientCache(database.lookup, ttl_seconds=2, clock=clock)
    waiting = [asyncio.create_task(cache.get("a")) for _ in range(50)]
    await database.read_started()
    database.gate.set()
    answers = await asyncio.wait_for(asyncio.gather(*waiting), timeout=5)
    assert {answer.scopes for answer in answers} == {("read",)}
    assert database.reads == 1


async def test_an_entry_near_expiry_is_reread_in_the_background_and_nobody_waits(clock: Clock) -> None:
    database = GatedDatabase(_client("read"))
    database.gate.set()
    cache = ClientCache(database.lookup, ttl_seconds=2, clock=clock)
    await cache.get("a")
    database.gate.clear()  # from now on a database read does not finish until the test says so
    database.client = _client("write")
    clock.now += 1.6  # in the last quarter of the entry's life
    for _ in range(20):  # served at once (the read cannot finish), whatever the background does
        assert (await asyncio.wait_for(cache.get("a"), timeout=5)).scopes == ("read",)
    await database.read_started()
    database.gate.set()
    await _background_reads_done(cache)
    assert database.reads == 2  # one background read, not one per request
    assert (await cache.get("a")).scopes == ("write",)
    clock.now += 2.1  # past the first read's expiry, within the second's
    assert (await cache.get("a")).scopes == ("write",)


async def test_never_served_past_the_ttl_when_the_background_read_has_not_finished(clock: Clock) -> None:
    database = GatedDatabase(_client("read"))
    database.gate.set()
    cache = ClientCache(database.lookup, ttl_seconds=2, clock=clock)
    await cache.get("a")
    database.gate.clear()
    database.client = _client("write")
    clock.now += 1.6
    await cache.get("a")  # starts the background read, which hangs
    await database.read_started()
    clock.now += 0.5  # the entry has expired: the caller must wait for the database, not get "read"
    pending = asyncio.create_task(cache.get("a"))
    done, _ = await asyncio.wait({pending}, timeout=0.05)
    assert not done
    database.gate.set()
    assert (await pending).scopes == ("write",)
    assert database.reads == 2  # the expired caller joined the read in flight


async def test_a_read_that_began_before_an_invalidation_is_not_cached(clock: Clock) -> None:
    database = GatedDatabase(_client("read"))
    cache = ClientCache(database.lookup, ttl_seconds=2, clock=clock)
    before = asyncio.create_task(cache.get("a"))
    await database.read_started()
    database.client = _client("write")  # the admin API writes in this worker...
    cache.invalidate("a")  # ...and invalidates while the old read is still in flight
    after = asyncio.create_task(cache.get("a"))
    await database.read_started()  # the request after the change did not join the older read
    database.gate.set()
    assert (await before).scopes == ("read",)
    assert (await after).scopes == ("write",)
    assert (await cache.get("a")).scopes == ("write",)
    assert database.reads == 2


async def test_a_failed_read_reaches_every_waiter_and_is_not_cached(clock: Clock) -> None:
    database = GatedDatabase(_client("read"))
    database.failure = ConnectionError("database down")
    cache = ClientCache(database.lookup, ttl_seconds=2, clock=clock)
    waiting = [asyncio.create_task(cache.get("a")) for _ in range(3)]
    await database.read_started()
    database.gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results)
    database.failure = None
    assert (await cache.get("a")).scopes == ("read",)
    assert database.reads == 2


async def test_a_failed_background_read_keeps_serving_until_expiry_then_reports(clock: Clock) -> None:
    database = GatedDatabase(_client("read"))
    database.gate.set()
    cache = ClientCache(database.lookup, ttl_seconds=2, clock=clock)
    await cache.get("a")
    database.failure = ConnectionError("database down")
    clock.now += 1.6
    assert (await cache.get("a")).scopes == ("read",)  # starts the background read, which fails
    await _background_reads_done(cache)
    assert database.reads == 2
    assert (await cache.get("a")).scopes == ("read",)  # still within the TTL of the last good read
    clock.now += 0.5
    with pytest.raises(ConnectionError):
        await cache.get("a")


async def test_a_caller_that_gives_up_does_not_cancel_the_shared_read(clock: Clock) -> None:
    database = GatedDatabase(_client("read"))
    cache = ClientCache(database.lookup, ttl_seconds=2, clock=clock)
    impatient = asyncio.create_task(cache.get("a"))
    patient = asyncio.create_task(cache.get("a"))
    await database.read_started()
    impatient.cancel()
    database.gate.set()
    assert (await patient).scopes == ("read",)
    assert database.reads == 1


async def test_a_workload_is_found_through_the_cache_and_a_moved_workload_is_read_again(clock: Clock) -> None:
    """workload_identity: which client a (trusted issuer, subject) is, cached with the same TTL; a cached
    answer is checked against the client as cached, so a workload given to another client is read again."""

    def workload_client(client_id: str, subject: str) -> Client:
        return Client(
            client_id, "W", ClientType.CONFIDENTIAL, ("client_credentials",), (), workload_issuer="k8s",
            workload_subject=subject,
        )  # fmt: skip

    database = {"a": workload_client("a", "system:serviceaccount:ns:sa")}
    by_workload_reads: list[tuple[str, str]] = []

    async def lookup(client_id: str) -> Client | None:
        return database.get(client_id)

    async def by_workload(issuer: str, subject: str) -> Client | None:
        by_workload_reads.append((issuer, subject))
        found = [c for c in database.values() if (c.workload_issuer, c.workload_subject) == (issuer, subject)]
        return found[0] if found else None

    cache = ClientCache(lookup, ttl_seconds=2, clock=clock, by_workload=by_workload)
    for _ in range(3):
        found = await cache.get_by_workload("k8s", "system:serviceaccount:ns:sa")
        assert found is not None and found.client_id == "a"
    assert len(by_workload_reads) == 1
    assert await cache.get_by_workload("k8s", "system:serviceaccount:ns:other") is None
    assert await cache.get_by_workload("k8s", "system:serviceaccount:ns:other") is None
    assert len(by_workload_reads) == 3  # unknown workloads are never cached
    # The admin API moves the workload to client b (a deleted in the same worker).
    del database["a"]
    database["b"] = workload_client("b", "system:serviceaccount:ns:sa")
    cache.invalidate("a")
    found = await cache.get_by_workload("k8s", "system:serviceaccount:ns:sa")
    assert found is not None and found.client_id == "b"


async def test_a_workloads_requests_share_one_read_and_a_late_entry_is_reread_in_the_background(
    clock: Clock,
) -> None:
    """Every request of a pod names its workload: when the cached answer runs out, the requests in flight
    must not all go to the database (their queue for a connection was the service-account row's p99)."""
    client = Client(
        "a", "W", ClientType.CONFIDENTIAL, ("client_credentials",), (), workload_issuer="k8s",
        workload_subject="system:serviceaccount:ns:sa",
    )  # fmt: skip
    gate = asyncio.Event()
    reads: list[tuple[str, str]] = []

    async def lookup(client_id: str) -> Client | None:
        return client if client_id == "a" else None

    async def by_workload(issuer: str, subject: str) -> Client | None:
        reads.append((issuer, subject))
        await gate.wait()
        return client

    cache = ClientCache(lookup, ttl_seconds=2, clock=clock, by_workload=by_workload)
    waiting = [
        asyncio.ensure_future(cache.get_by_workload("k8s", client.workload_subject or "")) for _ in range(20)
    ]
    await asyncio.sleep(0)  # let every request reach the cache before the database answers
    gate.set()
    assert all(found is not None and found.client_id == "a" for found in await asyncio.gather(*waiting))
    assert len(reads) == 1
    clock.now += 1.6  # past three quarters of the TTL: served from the cache, re-read behind it
    gate.clear()
    served = await cache.get_by_workload("k8s", client.workload_subject or "")
    assert served is not None and served.client_id == "a" and len(reads) == 2
    gate.set()
    await asyncio.gather(*cache._workload_reads.values())  # the background read finishes
    clock.now += 1.0  # the first read's answer has expired; the background read's has not
    assert await cache.get_by_workload("k8s", client.workload_subject or "") is not None
    assert len(reads) == 2


async def test_synced_client_changes_keep_unchanged_clients_and_drop_changed_ones(clock: Clock) -> None:
    """With the workers' syncs reading client changes, an unchanged client is served past its TTL (10,000
    clients taking turns are not read again on each use), a changed one is read again after the sync that
    lists it, and when the syncs stop the cache falls back to its TTL."""
    database = {"a": _client("read"), "b": replace(_client("read"), client_id="b")}
    calls: list[str] = []

    async def lookup(client_id: str) -> Client | None:
        calls.append(client_id)
        return database.get(client_id)

    cache = ClientCache(lookup, ttl_seconds=2, clock=clock)
    await cache.get("a")
    await cache.get("b")
    for _ in range(10):  # a sync every half second, for five seconds: nothing changed
        clock.now += 0.5
        cache.changes_seen([], clock.now)
        assert (await cache.get("a")).scopes == ("read",)
    assert calls == ["a", "b"]
    database["a"] = _client("write")
    started = clock.now + 0.5
    clock.now += 0.7  # the sync began before this moment and lists a
    cache.changes_seen(["a"], started)
    assert (await cache.get("a")).scopes == ("write",) and (await cache.get("b")).scopes == ("read",)
    assert calls == ["a", "b", "a"]
    clock.now += 1.0  # no sync since: b (read before the last sync) is still within its TTL of it
    assert (await cache.get("b")).scopes == ("read",) and calls.count("b") == 1
    clock.now += 0.9  # past it: read again, as without the syncs
    await cache.get("b")
    assert calls.count("b") == 2


async def test_after_a_long_gap_between_syncs_the_cache_starts_over(clock: Clock) -> None:
    calls: list[str] = []

    async def lookup(client_id: str) -> Client | None:
        calls.append(client_id)
        return _client("read")

    cache = ClientCache(lookup, ttl_seconds=2, clock=clock)
    cache.changes_seen([], clock.now)
    await cache.get("a")
    clock.now += 2 * 3600  # the database kept client changes for a day, but this worker looked long ago
    cache.changes_seen([], clock.now)
    await cache.get("a")
    assert calls == ["a", "a"]
