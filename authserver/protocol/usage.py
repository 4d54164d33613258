"""Usage per client: what each worker counts at the token endpoint, and what the admin API reports.

A worker counts in memory (no database write per request) and hands its counts to the store every few
seconds (``Services.flush_usage``), where they are added to hourly buckets per client: several workers and
replicas flushing the same client and hour sum. The last token's time and the last error are kept per client
as long as the client; the buckets for ``RETENTION``.

"Last hour" and "last day" are sliding windows estimated from the hourly buckets: the buckets wholly inside
the window count fully, the oldest one (partly inside) in proportion to the part of its hour inside the
window, as if its tokens were spread evenly over its hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from authserver.protocol.models import ClientUsage, UsageCount

HOUR = 3600
RETENTION = timedelta(hours=48)  # hourly buckets older than this are purged
# What a report reads: a day of buckets and the one the day's window starts in.
REPORT_SPAN = timedelta(hours=25)
# Distinct (client, hour) pairs one worker holds between flushes; beyond it new ones are dropped (and
# counted), so a flood of clients cannot grow a worker's memory. Only registered clients are counted.
MAX_ENTRIES = 50_000


@dataclass(slots=True)
class _Tally:
    tokens: int = 0
    errors: int = 0
    last_token_at: float = 0.0  # 0: none
    last_error: str | None = None
    last_error_at: float = 0.0


class UsageCounter:
    """One worker's counts since its last flush, by (client_id, clock hour)."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.dropped = 0  # counts lost because the table was full
        self._tallies: dict[tuple[str, int], _Tally] = {}

    def _tally(self, client_id: str, now: float) -> _Tally | None:
        key = (client_id, int(now // HOUR))
        tally = self._tallies.get(key)
        if tally is None:
            if len(self._tallies) >= self.max_entries:
                self.dropped += 1
                return None
            tally = self._tallies[key] = _Tally()
        return tally

    def token(self, client_id: str, now: float | None = None) -> None:
        at = time.time() if now is None else now
        tally = self._tally(client_id, at)
        if tally is not None:
            tally.tokens += 1
            tally.last_token_at = max(tally.last_token_at, at)

    def error(self, client_id: str, code: str, now: float | None = None) -> None:
        at = time.time() if now is None else now
        tally = self._tally(client_id, at)
        if tally is not None:
            tally.errors += 1
            if at >= tally.last_error_at:
                tally.last_error, tally.last_error_at = code, at

    def take_dropped(self) -> int:
        """The counts dropped since the last call."""
        dropped, self.dropped = self.dropped, 0
        return dropped

    def __len__(self) -> int:
        return len(self._tallies)

    def drain(self) -> list[UsageCount]:
        """Everything counted since the last drain, as the store's additive counts; counting starts over."""
        tallies, self._tallies = self._tallies, {}
        return [
            UsageCount(
                client_id=client_id,
                hour=datetime.fromtimestamp(hour * HOUR, UTC),
                tokens=tally.tokens,
                errors=tally.errors,
                last_token_at=_moment(tally.last_token_at),
                last_error=tally.last_error,
                last_error_at=_moment(tally.last_error_at),
            )
            for (client_id, hour), tally in tallies.items()
        ]

    def restore(self, counts: list[UsageCount]) -> None:
        """Take back counts a flush could not store (the database was down), to go with the next flush."""
        for count in counts:
            key = (count.client_id, int(count.hour.timestamp() // HOUR))
            tally = self._tallies.get(key)
            if tally is None:
                if len(self._tallies) >= self.max_entries:
                    self.dropped += count.tokens + count.errors
                    continue
                tally = self._tallies[key] = _Tally()
            tally.tokens += count.tokens
            tally.errors += count.errors
            if count.last_token_at is not None:
                tally.last_token_at = max(tally.last_token_at, count.last_token_at.timestamp())
            if count.last_error_at is not None and count.last_error_at.timestamp() >= tally.last_error_at:
                tally.last_error, tally.last_error_at = count.last_error, count.last_error_at.timestamp()


async def flush(counter: UsageCounter, record: Callable[[Sequence[UsageCount]], Awaitable[None]]) -> int:
    """Hand what ``counter`` holds to ``record`` (the store's one batched, additive write); what it could
    not store goes back into the counter for the next flush. How many (client, hour) counts were stored.

    Cancelled mid-write (a shutdown), it waits for the write it started: counts restored after a write that
    did commit would be added twice by the shutdown's last flush."""
    counts = counter.drain()
    if not counts:
        return 0
    write = asyncio.ensure_future(record(counts))
    try:
        await asyncio.shield(write)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await write
        if not write.done() or write.cancelled() or write.exception() is not None:
            counter.restore(counts)
        raise
    except Exception:
        counter.restore(counts)
        raise
    return len(counts)


def _moment(timestamp: float) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp else None


def hour_of(moment: datetime) -> datetime:
    """The start of ``moment``'s clock hour, UTC."""
    return datetime.fromtimestamp(math.floor(moment.timestamp() / HOUR) * HOUR, UTC)


@dataclass(frozen=True)
class UsageSummary:
    client_id: str
    last_token_at: datetime | None
    tokens_last_hour: int
    tokens_last_day: int
    errors_last_hour: int
    errors_last_day: int
    last_error: str | None
    last_error_at: datetime | None


def _in_window(hours: tuple[tuple[datetime, int, int], ...], now: datetime, span: int) -> tuple[int, int]:
    """(tokens, errors) in the ``span`` hours before ``now``, estimated from hourly buckets."""
    current = hour_of(now)
    inside = 1 - (now - current).total_seconds() / HOUR  # of the oldest bucket's hour, the part in the window
    oldest = current - timedelta(hours=span)
    tokens = errors = 0.0
    for start, bucket_tokens, bucket_errors in hours:
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
        if oldest < start <= current:
            tokens, errors = tokens + bucket_tokens, errors + bucket_errors
        elif start == oldest:
            tokens, errors = tokens + bucket_tokens * inside, errors + bucket_errors * inside
    return round(tokens), round(errors)


def summarize(usage: ClientUsage, now: datetime) -> UsageSummary:
    tokens_hour, errors_hour = _in_window(usage.hours, now, 1)
    tokens_day, errors_day = _in_window(usage.hours, now, 24)
    return UsageSummary(
        client_id=usage.client_id,
        last_token_at=usage.last_token_at,
        tokens_last_hour=tokens_hour,
        tokens_last_day=tokens_day,
        errors_last_hour=errors_hour,
        errors_last_day=errors_day,
        last_error=usage.last_error,
        last_error_at=usage.last_error_at,
    )
