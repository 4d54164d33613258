"""Server-wide rate limits: each worker's share of a budget, the census of live workers over the memory
store, and the bounds docs/rate-limits.md documents while the census lags a scale up or down.

Time is simulated (``now`` passed in): the arithmetic is what is under test, not the machine's clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from authserver.protocol.models import RateLimit
from authserver.ratelimit import LIVE_PERIODS, RateLimiter, Share, WorkerCensus, worker_share
from tests.support.memory_store import MemoryStore

PERIOD = timedelta(milliseconds=500)
BUDGET = RateLimit(requests_per_second=200, burst=40)
START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_a_workers_share_divides_the_budget_and_keeps_a_burst_of_at_least_one() -> None:
    assert worker_share(BUDGET, 1) == Share(200, 40)
    assert worker_share(BUDGET, 4) == Share(50, 10)
    assert worker_share(BUDGET, 8) == Share(25, 5)
    assert worker_share(RateLimit(10, 3), 4) == Share(2.5, 1.0)  # 0.75 would admit nothing
    assert worker_share(BUDGET, 0) == Share(200, 40)  # no count yet: this worker is the one it knows


def _admitted(limiters: list[RateLimiter], seconds: float, start: float, key: str = "client") -> int:
    """Every limiter offered a request every millisecond for ``seconds``: how many they admitted in all."""
    admitted = 0
    for step in range(int(seconds * 1000)):
        now = start + step / 1000
        admitted += sum(limiter.acquire(key, now=now) == 0.0 for limiter in limiters)
    return admitted


async def _census(store: MemoryStore, count: int, now: datetime) -> list[WorkerCensus]:
    workers = [WorkerCensus() for _ in range(count)]
    for _round in range(2):  # the first ones counted fewer: a second round, as the next period does
        for worker in workers:
            await worker.beat(store, now, PERIOD)
    return workers


@pytest.mark.parametrize("workers", [1, 2, 4, 8])
async def test_the_workers_together_admit_the_budget_not_a_multiple_of_it(workers: int) -> None:
    census = await _census(MemoryStore(), workers, START)
    assert [worker.live_workers for worker in census] == [workers] * workers
    limiters = [RateLimiter(BUDGET, worker) for worker in census]
    admitted = _admitted(limiters, 10.0, start=100.0)
    # The budget's rate for 10 s plus one burst (each worker's share of it, at least one each).
    expected = 200 * 10 + max(BUDGET.burst, workers)
    assert expected - workers <= admitted <= expected + workers


async def test_the_census_drops_a_worker_gone_silent_after_the_live_periods_and_one_that_left_at_once() -> (
    None
):
    store = MemoryStore()
    first, second, third = await _census(store, 3, START)
    # third crashes: no more heartbeats. Within LIVE_PERIODS periods it still counts ...
    now = START
    for _period in range(LIVE_PERIODS):
        now += PERIOD
        assert await first.beat(store, now, PERIOD) == 3
        await second.beat(store, now, PERIOD)
    # ... and one period later it no longer does, and its row is gone.
    now += PERIOD
    assert await first.beat(store, now, PERIOD) == 2
    assert third.worker_id not in store.heartbeats
    # second shuts down gracefully: it leaves the census, and first's next heartbeat counts itself alone.
    await store.forget_worker(second.worker_id)
    now += PERIOD
    assert await first.beat(store, now, PERIOD) == 1


async def test_after_a_scale_up_the_cluster_admits_less_than_the_documented_bound_then_the_budget() -> None:
    """docs/rate-limits.md: from N to M workers, until the old ones count again (one period) the cluster
    admits at most r x (1 + (M - N) / (N + 1)) per second plus the new workers' full buckets; from then on
    the budget."""
    store = MemoryStore()
    old = await _census(store, 2, START)
    limiters = [RateLimiter(BUDGET, worker) for worker in old]
    _admitted(limiters, 1.0, start=0.0)  # the old workers' buckets in their steady state
    new = [WorkerCensus() for _ in range(2)]
    for worker in new:  # a new worker counts everyone at its first heartbeat, before it serves
        await worker.beat(store, START + PERIOD / 10, PERIOD)
    assert [worker.live_workers for worker in new] == [3, 4]
    limiters += [RateLimiter(BUDGET, worker) for worker in new]
    # The lag: the old workers still count 2 for up to one period.
    lagging = _admitted(limiters, PERIOD.total_seconds(), start=1.0)
    full_buckets = sum(worker_share(BUDGET, worker.live_workers).burst for worker in new)
    bound = 200 * (1 + (4 - 2) / (2 + 1)) * PERIOD.total_seconds() + full_buckets
    assert 200 * PERIOD.total_seconds() * 1.2 < lagging <= bound
    # The next heartbeats: every share is a quarter, and the cluster admits the budget.
    for worker in old + new:
        await worker.beat(store, START + PERIOD, PERIOD)
    assert [worker.live_workers for worker in old + new] == [4] * 4
    _admitted(limiters, 1.0, start=1.5)  # buckets settle at the new share
    settled = _admitted(limiters, 5.0, start=2.5)
    assert abs(settled - 200 * 5) <= 4


def test_a_keys_own_budget_wins_over_the_default_and_no_budget_is_unlimited() -> None:
    census = WorkerCensus()
    limited = RateLimiter(RateLimit(1000, 1000), census)
    own = RateLimit(2, 2)
    assert [limited.acquire("slow", own, now=0.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert limited.acquire("slow", own, now=0.5) == 0.0  # one request's worth refilled
    assert all(limited.acquire("fast", now=0.0) == 0.0 for _ in range(100))
    unlimited = RateLimiter(None, census)
    assert all(unlimited.acquire("any", now=0.0) == 0.0 for _ in range(10_000))
    assert [unlimited.acquire("slow", own, now=0.0) for _ in range(3)] == [0.0, 0.0, 0.5]


async def test_a_shrinking_share_caps_what_a_full_bucket_holds() -> None:
    """A worker whose count rises mid-burst admits no more than its new, smaller share."""
    store = MemoryStore()
    (worker,) = await _census(store, 1, START)
    limiter = RateLimiter(RateLimit(10, 10), worker)
    assert limiter.acquire("k", now=0.0) == 0.0  # the bucket holds 9 of 10
    others = [WorkerCensus() for _ in range(4)]
    for other in others:
        await other.beat(store, START, PERIOD)
    await worker.beat(store, START, PERIOD)
    assert worker.live_workers == 5
    admitted = sum(limiter.acquire("k", now=0.0) == 0.0 for _ in range(20))
    assert admitted == 2  # the share's burst (10 / 5), not the 9 left over
