"""One reconcile at a time per object: kopf runs a timer and the event handlers of one object concurrently."""

from __future__ import annotations

import asyncio
from collections import defaultdict


class ObjectLocks:
    def __init__(self) -> None:
        self._locks: defaultdict[tuple[str, str, str], asyncio.Lock] = defaultdict(asyncio.Lock)

    def of(self, kind: str, namespace: str, name: str) -> asyncio.Lock:
        return self._locks[(kind, namespace, name)]

    def forget(self, kind: str, namespace: str, name: str) -> None:
        self._locks.pop((kind, namespace, name), None)
