"""Token buckets keyed by client or source address, bounded in memory, sized as this worker's share of a
budget meant for the whole server.

A budget (``RateLimit``) holds for every worker of every replica together. Each worker counts the live
workers (``WorkerCensus``, kept current by the heartbeat the revocation sync writes) and enforces
``budget / live workers``, with a burst of ``burst / live workers`` but at least one request: no shared
state on the request path, and the shares add up to the budget once every worker has counted the same
workers. docs/rate-limits.md gives the bounds while the counts differ after a scale up or down.
"""

from __future__ import annotations

import math
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from authserver.protocol.models import RateLimit
from authserver.protocol.store import Store

# A worker not seen for this many heartbeat periods is gone: its share goes to the others.
LIVE_PERIODS = 3


@dataclass(frozen=True)
class Share:
    """What one worker admits of a budget: requests per second and the most at once."""

    rate: float
    burst: float


def worker_share(budget: RateLimit, live_workers: int) -> Share:
    """``budget`` divided among ``live_workers`` (at least this one); a burst below one request would admit
    nothing, so each worker keeps at least one."""
    workers = max(1, live_workers)
    return Share(budget.requests_per_second / workers, max(1.0, budget.burst / workers))


class WorkerCensus:
    """This worker's identity in the census and the number of live workers it last counted (itself until
    it has counted)."""

    def __init__(self) -> None:
        self.worker_id = secrets.token_hex(16)  # random per process: a restarted worker is a new one
        self.live_workers = 1

    async def beat(self, store: Store, now: datetime, period: timedelta) -> int:
        """Write this worker's heartbeat (every ``period``) and count the live workers: those seen within
        the last LIVE_PERIODS periods; older rows are deleted."""
        live = await store.worker_heartbeat(self.worker_id, now, now - LIVE_PERIODS * period)
        self.live_workers = max(1, live)  # this worker has just written its own row
        return self.live_workers


class RateLimiter:
    """Token buckets for one kind of key (client or address), each sized by its budget's share: the key's
    own budget when it has one, else ``default`` (None: unlimited)."""

    def __init__(self, default: RateLimit | None, census: WorkerCensus, max_keys: int = 100_000) -> None:
        self.default = default
        self.census = census
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, last refill)

    def acquire(self, key: str, budget: RateLimit | None = None, now: float | None = None) -> float:
        """0 when admitted; otherwise the seconds to wait before the next request would be."""
        budget = budget or self.default
        if budget is None:
            return 0.0
        share = worker_share(budget, self.census.live_workers)
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (share.burst, now))
        # A share that shrank (more workers) caps what the bucket held; one that grew refills at the new rate.
        tokens = min(share.burst, tokens + (now - last) * share.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1 - tokens) / share.rate
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)  # forget the least recently seen key
        return wait


def default_budget(requests_per_second: float, burst: int) -> RateLimit | None:
    """A server setting as a budget; a rate of 0 means unlimited."""
    return RateLimit(requests_per_second, burst) if requests_per_second > 0 else None


def retry_after_seconds(wait: float) -> int:
    return max(1, math.ceil(wait))
