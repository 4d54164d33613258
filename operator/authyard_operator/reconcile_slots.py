"""At most a few reconciles of one kind run at a time; the others wait for a slot, in arrival order.

kopf starts a handler for every object as soon as it sees it: after an operator restart or a bulk apply of
10,000 OAuthClients, that is 10,000 reconciles at once, whose API calls then queue for the HTTP clients'
connection pools (100 connections) and fail on the pools' timeouts, to be retried later and fail again
(docs/performance.md, "2026-12-07: scale figures"). Waiting for a slot has no deadline: it is the queue.
Each kind has its own slots, so an AuthServer's reconcile never waits behind its clients'.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

# Well under the connection pools' 100, and enough to keep a real API server's round trips overlapped.
SLOTS_PER_KIND = 20


class ReconcileSlots:
    def __init__(self, per_kind: int = SLOTS_PER_KIND) -> None:
        self._slots: defaultdict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(per_kind))

    def of(self, kind: str) -> asyncio.Semaphore:
        return self._slots[kind]
