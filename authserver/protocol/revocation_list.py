"""Which JWT access tokens have been revoked, answered from memory.

Consistency rule: the worker that handles a revocation knows at once; every other worker and replica
learns it from the database within ``revocation_sync_interval`` (default 0.5 s). Entries are dropped once
the token would have expired anyway, so the list stays as small as the set of live revoked tokens.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class RevocationList:
    def __init__(self) -> None:
        self._expiry_by_jti: dict[str, float] = {}
        self.synced_until = datetime.fromtimestamp(0, UTC)

    def add(self, jti: str, expires_at: float) -> None:
        self._expiry_by_jti[jti] = expires_at

    def is_revoked(self, jti: str) -> bool:
        return jti in self._expiry_by_jti

    def prune(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        expired = [jti for jti, expiry in self._expiry_by_jti.items() if expiry < now]
        for jti in expired:
            del self._expiry_by_jti[jti]

    def __len__(self) -> int:
        return len(self._expiry_by_jti)
