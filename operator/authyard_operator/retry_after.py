"""Retry-After (RFC 9110 §10.2.3): a server that asks for time gets at least that much.

The operator's retries have their own delays (5-30 s); an API server under priority-and-fairness load or an
auth server shedding load may ask for longer. The delay used is the longer of the two, capped so that a
broken header cannot park an object for hours.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_SECONDS = 600.0


def parse(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_SECONDS)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_SECONDS)


def delay(default: float, asked: float | None) -> float:
    """Our own delay, or the server's when it asked for longer."""
    return max(default, asked or 0.0)
