"""A per-worker cache of client registrations in front of the database.

Consistency rule: a change made through the admin API is seen at once by the worker that made it (it
invalidates its own entry) and by every other worker and replica within ``client_cache_ttl`` (default 2 s).
Only clients that exist are cached, so random client_ids cannot fill memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from authserver.protocol.client_authentication import ClientLookup
from authserver.protocol.models import Client


class ClientCache:
    def __init__(self, lookup: ClientLookup, ttl_seconds: float, max_entries: int = 50_000) -> None:
        self._lookup = lookup
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[Client, float]] = OrderedDict()

    async def get(self, client_id: str) -> Client | None:
        now = time.monotonic()
        entry = self._entries.get(client_id)
        if entry is not None and entry[1] > now:
            return entry[0]
        client = await self._lookup(client_id)
        if client is None or self.ttl <= 0:
            self._entries.pop(client_id, None)
            return client
        self._entries[client_id] = (client, now + self.ttl)
        self._entries.move_to_end(client_id)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return client

    def invalidate(self, client_id: str) -> None:
        self._entries.pop(client_id, None)
