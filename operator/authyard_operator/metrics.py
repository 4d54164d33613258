"""The operator's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("authyard_operator_reconciles_total", "Reconciles run", ["kind", "result"])
RECONCILE_DURATION = Histogram(
    "authyard_operator_reconcile_duration_seconds",
    "Time a reconcile took",
    ["kind"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IS_LEADER = Gauge("authyard_operator_leader", "1 while this replica holds the leader Lease")
