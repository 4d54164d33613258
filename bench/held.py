"""SQLite's log restarts during a run: how often the server held its token-path writers, and for how long.

Under saturated writes the server's checkpoint holds SQLite's writers once per 256 MiB of log while it syncs
the log and the database (``authserver_sqlite_writers_held_seconds``): a few milliseconds on a quiet disk,
but every write in flight waits through a disk stall. The histogram's difference across a run says whether a
SQLite row's slowest requests waited for such a hold (``wal.py`` is PostgreSQL's counterpart).
"""

from __future__ import annotations

import math
import urllib.request
from typing import NamedTuple

from prometheus_client.parser import text_string_to_metric_families

METRIC = "authserver_sqlite_writers_held_seconds"


class WritersHeld(NamedTuple):
    count: int
    seconds: float
    buckets: tuple[tuple[float, float], ...] = ()  # (upper bound in seconds, holds at most that long)

    def since(self, earlier: WritersHeld) -> WritersHeld:
        before = dict(earlier.buckets)
        return WritersHeld(
            self.count - earlier.count,
            self.seconds - earlier.seconds,
            tuple((bound, total - before.get(bound, 0)) for bound, total in self.buckets),
        )

    @property
    def longest_ms_at_most(self) -> float | None:
        """The smallest bucket bound that every hold fits under (None without holds or beyond the last)."""
        if not self.count:
            return None
        for bound, total in sorted(self.buckets):
            if total >= self.count and not math.isinf(bound):
                return bound * 1000
        return None


def parse(text: str) -> WritersHeld:
    """The histogram in a /metrics page; zero when the server has none (PostgreSQL, or no hold yet)."""
    count, seconds, buckets = 0, 0.0, []
    for family in text_string_to_metric_families(text):
        if family.name != METRIC:
            continue
        for sample in family.samples:
            if sample.name == f"{METRIC}_count":
                count = int(sample.value)
            elif sample.name == f"{METRIC}_sum":
                seconds = sample.value
            elif sample.name == f"{METRIC}_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
    return WritersHeld(count, seconds, tuple(sorted(buckets)))


def writers_held(base_url: str) -> WritersHeld:
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:  # noqa: S310 (loopback)
        return parse(response.read().decode())
