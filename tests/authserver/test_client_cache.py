"""The per-worker client cache: bounded staleness, no negative caching, local invalidation."""

from __future__ import annotations

import pytest

from authserver.protocol.models import Client, ClientType
from authserver.storage import client_cache
from authserver.storage.client_cache import ClientCache


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(client_cache.time, "monotonic", fake)
    return fake


async def test_cached_until_ttl_then_reloaded(clock: Clock) -> None:
    database = {"a": Client("a", "A", ClientType.CONFIDENTIAL, ("client_credentials",), ("read",))}
    calls: list[str] = []

    async def lookup(client_id: str) -> Client | None:
        calls.append(client_id)
        return database.get(client_id)

    cache = ClientCache(lookup, ttl_seconds=2)
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
