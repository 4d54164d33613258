"""``protocol/sessions.py`` over ``MemoryStore``: when a session is live, and that ``last_seen_at`` is written
at most once per touch interval, not on every request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from authserver.protocol.session_end import EndReason
from authserver.protocol.sessions import SessionPolicy, Sessions
from tests.support.memory_store import MemoryStore

START = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
TTL = timedelta(minutes=15)


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.touches = 0

    async def touch_session(self, session_id: str, now: datetime) -> None:
        self.touches += 1
        await super().touch_session(session_id, now)


@pytest.mark.parametrize(
    ("idle", "interval"),
    [
        (None, timedelta(minutes=1)),
        (timedelta(hours=1), timedelta(minutes=1)),
        (timedelta(minutes=5), timedelta(seconds=30)),
    ],
)
def test_the_touch_interval_is_a_minute_or_a_tenth_of_a_shorter_idle_timeout(
    idle: timedelta | None, interval: timedelta
) -> None:
    assert SessionPolicy(timedelta(hours=8), idle, TTL).touch_interval == interval


async def test_last_seen_is_written_at_most_once_per_interval_and_an_idle_session_is_nobody() -> None:
    store = CountingStore()
    sessions = Sessions(store, SessionPolicy(timedelta(hours=8), timedelta(minutes=10), TTL))
    session = await sessions.begin("u-1", int(START.timestamp()), START)
    for seconds in (1, 20, 59):  # within the interval: read, never written
        assert await sessions.current(session.session_id, START + timedelta(seconds=seconds)) is not None
    assert store.touches == 0
    assert await sessions.current(session.session_id, START + timedelta(seconds=61)) is not None
    assert store.touches == 1
    # Idle from its last write: ten minutes after it, nobody is signed in (and nothing is written).
    assert await sessions.current(session.session_id, START + timedelta(seconds=61, minutes=10)) is None
    assert store.touches == 1


async def test_an_ended_or_expired_session_is_nobody() -> None:
    store = MemoryStore()
    sessions = Sessions(store, SessionPolicy(timedelta(hours=1), None, TTL))
    expiring = await sessions.begin("u-1", int(START.timestamp()), START)
    assert await sessions.current(expiring.session_id, START + timedelta(minutes=59)) is not None
    assert await sessions.current(expiring.session_id, START + timedelta(hours=1)) is None
    ending = await sessions.begin("u-1", int(START.timestamp()))
    assert await sessions.current(ending.session_id) is not None
    ended = await sessions.end(ending.session_id, EndReason.SIGNED_OUT)
    assert ended is not None and ended.reason is EndReason.SIGNED_OUT
    assert await sessions.current(ending.session_id) is None
    assert await sessions.current(None) is None and await sessions.current("unknown") is None
