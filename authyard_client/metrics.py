"""Counts of token refreshes, by kind and outcome, in memory and (when prometheus_client is installed) as
Prometheus metrics on its default registry.

Kinds: ``initial`` (the first request for the first token), ``proactive`` (the token in hand still had more
than the last 10% of its life), ``emergency`` (it had expired or was in its last 10%, or the first request
failed and there is still no token), ``rejected`` (a resource server answered 401 to it).
Under steady use at least 95% of refreshes should be proactive:
``sum(rate(authyard_client_token_refreshes_total{kind="proactive"}[1h])) /
sum(rate(authyard_client_token_refreshes_total{kind=~"proactive|emergency"}[1h]))``.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

KINDS = ("initial", "proactive", "emergency", "rejected")
OUTCOMES = ("success", "failure")

try:  # optional: the kit works without prometheus_client
    import prometheus_client
except ImportError:  # pragma: no cover - exercised only where prometheus_client is absent
    # The module name stands for "absent" below; mypy sees only the installed module's type.
    prometheus_client = None  # type: ignore[assignment]  # absent optional dependency

_REFRESHES: Any = None
_LIFE_USED: Any = None
if prometheus_client is not None:
    _REFRESHES = prometheus_client.Counter(
        "authyard_client_token_refreshes_total",
        "Token requests of token sources, by kind (initial, proactive, emergency, rejected) and outcome.",
        ["client_id", "kind", "outcome"],
    )
    _LIFE_USED = prometheus_client.Histogram(
        "authyard_client_token_life_used_at_refresh_ratio",
        "How much of the replaced token's lifetime had passed when its refresh began.",
        ["client_id"],
        buckets=(0.5, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, float("inf")),
    )


class RefreshStats:
    """One token source's refreshes, counted by (kind, outcome); thread-safe."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def record(self, kind: str, outcome: str, life_used: float | None) -> None:
        with self._lock:
            self._counts[kind, outcome] += 1
        if _REFRESHES is not None:
            _REFRESHES.labels(self.client_id, kind, outcome).inc()
            if life_used is not None:
                _LIFE_USED.labels(self.client_id).observe(life_used)

    def count(self, kind: str | None = None, outcome: str | None = None) -> int:
        with self._lock:
            return sum(
                number
                for (k, o), number in self._counts.items()
                if (kind is None or k == kind) and (outcome is None or o == outcome)
            )

    def proactive_ratio(self) -> float | None:
        """Proactive refreshes among proactive and emergency ones (None before any)."""
        proactive, emergency = self.count("proactive"), self.count("emergency")
        return proactive / (proactive + emergency) if proactive + emergency else None
