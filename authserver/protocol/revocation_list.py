"""Which JWT access tokens have been revoked, answered from memory: single tokens by ``jti``, and whole
grants (every access token carrying a ``grant_id`` claim, see ``tokens.GRANT_ID_CLAIM``).

Consistency rule: the worker that handles a revocation knows at once; every other worker and replica
learns it from the database within ``revocation_sync_interval`` (default 0.5 s). Entries are dropped once
the tokens they cover would have expired anyway (plus the clock leeway verification allows), so the list
stays as small as the set of live revoked tokens and grants.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

# Verification accepts a token this long after its exp (clock skew between replicas); an entry is kept
# as long, or a revoked token would be active again for that moment.
CLOCK_LEEWAY_SECONDS = 5


class RevocationList:
    def __init__(self) -> None:
        self._expiry_by_jti: dict[str, float] = {}
        self._expiry_by_grant: dict[str, float] = {}
        self.synced_until = datetime.fromtimestamp(0, UTC)

    def add(self, jti: str, expires_at: float) -> None:
        self._expiry_by_jti[jti] = expires_at

    def add_grant(self, grant_id: str, expires_at: float) -> None:
        """Every access token of ``grant_id``, until the last of them has expired (``expires_at``)."""
        self._expiry_by_grant[grant_id] = max(expires_at, self._expiry_by_grant.get(grant_id, 0.0))

    def is_revoked(self, jti: str, grant_id: str | None = None) -> bool:
        # The verification hot path: one dict lookup per token, one more for its grant.
        return jti in self._expiry_by_jti or grant_id in self._expiry_by_grant

    def prune(self, now: float | None = None) -> None:
        cutoff = (time.time() if now is None else now) - CLOCK_LEEWAY_SECONDS
        for entries in (self._expiry_by_jti, self._expiry_by_grant):
            expired = [key for key, expiry in entries.items() if expiry < cutoff]
            for key in expired:
                del entries[key]

    def __len__(self) -> int:
        return len(self._expiry_by_jti) + len(self._expiry_by_grant)
