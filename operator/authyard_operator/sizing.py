"""The database connection budget: how big each pool may be so that the AuthServer fits its database.

``spec.database.maxConnections`` (B) is the budget this AuthServer may use. 10% of it stays in reserve (for
the migration init container, ``psql`` sessions, a surge during a node drain), so the pools share
``usable = floor(0.9 x B)``. Each pod runs ``spec.workers`` (W) worker processes with one pool each, and the
most pods that can run at once (P) are ``autoscaling.maxReplicas`` when autoscaling is on, the capacity
plan's maxReplicas with ``spec.capacity`` (``capacity.py``, which keeps it within this budget), else
``replicas``.

Direct (pods connect to PostgreSQL)::

    per-worker max = floor(usable / (P x W))            -> AUTHSERVER_DB_POOL_MAX_SIZE
    per-worker min = max(1, floor(25% x per-worker max)) -> AUTHSERVER_DB_POOL_MIN_SIZE
    per-pod max    = W x per-worker max                 (status.database.perPodPoolMax)
    aggregate max  = P x per-pod max <= usable           (status.database.aggregateMax)

  A rollout's surge pod would be pod P + 1: the Deployment surges only when (P + 1) x per-pod max still fits
  ``usable``, and otherwise replaces pods one at a time (maxSurge 0).

PgBouncer (pods connect to PgBouncer, PgBouncer to PostgreSQL in transaction pooling)::

    pool size per instance (default_pool_size = max_db_connections) = floor(usable / instances)
    aggregate max = instances x pool size <= usable

  Client connections to PgBouncer are cheap and multiplexed, so the pods' pools are sized for concurrency
  instead: ``clamp(ceil(2 x aggregate max / (P x W)), 2, 20)`` per worker, and every PgBouncer instance
  accepts all of them (``max_client_conn``), because the Service may send every pod to the same instance.

Each worker's pool also needs one connection more than ``spec.database.writeConnections`` (those serve only
the token path's writes; the server refuses a pool they would fill), so the smallest pool per worker is
``max(MIN_POOL, writeConnections + 1)``. A pool smaller than that per worker (or than ``MIN_POOL`` per
PgBouncer instance) does not fit: the result says so, with reason ``PoolBudgetExceeded`` and a message that
names the fields to change. Embedded SQLite has no budget
but allows a single pod; more is ``InvalidSpec``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

from authyard_operator.spec.authserver import AuthServerSpec

MIN_POOL = 2
# Pool of each worker on embedded SQLite: connections to a local file, nothing to budget.
SQLITE_POOL_MAX = 5
# PgBouncer mode: pods may hold this many client connections per server connection, within these bounds.
CLIENT_OVERSUBSCRIPTION = 2
CLIENT_POOL_CAP = 20
PGBOUNCER_MIN_CLIENT_CONN = 100

POOL_BUDGET_EXCEEDED = "PoolBudgetExceeded"
INVALID_SPEC = "InvalidSpec"

Mode = Literal["embedded", "direct", "pgbouncer"]


def usable_connections(budget: int) -> int:
    """floor(0.9 x budget), in integers so that 0.9 x 10 is exactly 9."""
    return (9 * budget) // 10


def budget_needed(connections: int) -> int:
    """The smallest budget whose usable part holds ``connections``."""
    return math.ceil(10 * connections / 9)


@dataclass(frozen=True)
class PoolSizing:
    mode: Mode
    fits: bool
    reason: str | None  # PoolBudgetExceeded / InvalidSpec when it does not fit
    message: str
    budget: int | None
    max_pods: int
    workers: int
    per_worker_max: int = 0
    per_worker_min: int = 0
    pooler_instances: int = 0
    pooler_pool_size: int = 0  # PgBouncer default_pool_size (server connections per instance)
    pooler_max_client_conn: int = 0
    write_connections: int = 1  # of each worker's pool, for refresh-token rotation and code redemption only

    @property
    def per_pod_max(self) -> int:
        return self.per_worker_max * self.workers

    @property
    def per_pod_min(self) -> int:
        return self.per_worker_min * self.workers

    @property
    def aggregate_max(self) -> int:
        """The most connections that can reach the database."""
        if self.mode == "pgbouncer":
            return self.pooler_instances * self.pooler_pool_size
        return self.max_pods * self.per_pod_max

    @property
    def allows_surge(self) -> bool:
        """Whether a rollout may run one pod beyond the maximum without leaving the budget."""
        if self.mode == "pgbouncer":
            return True  # client connections to PgBouncer cost the database nothing
        if self.mode == "embedded" or self.budget is None:
            return False
        return (self.max_pods + 1) * self.per_pod_max <= usable_connections(self.budget)

    def status(self) -> dict[str, Any]:
        """status.database"""
        result: dict[str, Any] = {"mode": self.mode}
        if self.budget is not None:
            result["budget"] = self.budget
        if self.fits:
            result |= {
                "perPodPoolMax": self.per_pod_max,
                "perPodPoolMin": self.per_pod_min,
                "aggregateMax": self.aggregate_max,
            }
            if self.mode == "pgbouncer":
                result["poolerPoolSize"] = self.pooler_pool_size
        return result


def size_pools(spec: AuthServerSpec, max_pods: int | None = None) -> PoolSizing:
    """``max_pods``: the maxReplicas a capacity plan chose (``capacity.py``), instead of the spec's."""
    pods, workers = max_pods or spec.max_pods, spec.workers
    if spec.database is None:
        return _embedded(pods, workers)
    database = spec.database
    if database.pooler.type == "pgbouncer":
        sizing = _pgbouncer(
            database.max_connections, database.pooler.instances, pods, workers, database.write_connections
        )
    else:
        pods_field = (
            "spec.autoscaling.maxReplicas"
            if spec.autoscaling.enabled
            else "spec.capacity.peakTokensPerSecond"
            if max_pods is not None
            else "spec.replicas"
        )
        sizing = _direct(database.max_connections, pods, workers, pods_field, database.write_connections)
    return replace(sizing, write_connections=database.write_connections)


def smallest_worker_pool(write_connections: int) -> int:
    """The write connections and at least one for everything else, and never under ``MIN_POOL``."""
    return max(MIN_POOL, write_connections + 1)


def _embedded(pods: int, workers: int) -> PoolSizing:
    if pods != 1:
        return PoolSizing(
            "embedded",
            fits=False,
            reason=INVALID_SPEC,
            message=f"embedded SQLite (no spec.database) runs exactly one pod, but this spec allows {pods}: "
            "set spec.replicas to 1 and spec.autoscaling.enabled to false, or configure spec.database",
            budget=None,
            max_pods=pods,
            workers=workers,
        )
    return PoolSizing(
        "embedded",
        fits=True,
        reason=None,
        message="embedded SQLite, one pod",
        budget=None,
        max_pods=1,
        workers=workers,
        per_worker_max=SQLITE_POOL_MAX,
        per_worker_min=1,
    )


def _direct(budget: int, pods: int, workers: int, pods_field: str, write_connections: int = 1) -> PoolSizing:
    usable = usable_connections(budget)
    pools = pods * workers
    per_worker = usable // pools
    smallest = smallest_worker_pool(write_connections)
    if per_worker < smallest:
        most_pods = usable // (workers * smallest)
        fewer = f"lower {pods_field} to {most_pods} or fewer, " if most_pods >= 1 else ""
        writes = "lower spec.database.writeConnections, " if smallest > MIN_POOL else ""
        return PoolSizing(
            "direct",
            fits=False,
            reason=POOL_BUDGET_EXCEEDED,
            message=f"{pods} pod(s) x {workers} worker(s) need at least {smallest} connections each "
            f"({pools * smallest}), but spec.database.maxConnections={budget} leaves {usable} (90%): raise "
            f"spec.database.maxConnections to {budget_needed(pools * smallest)} or more, {fewer}{writes}"
            "lower spec.workers, or set spec.database.pooler.type to pgbouncer",
            budget=budget,
            max_pods=pods,
            workers=workers,
        )
    sizing = PoolSizing(
        "direct",
        fits=True,
        reason=None,
        message="",
        budget=budget,
        max_pods=pods,
        workers=workers,
        per_worker_max=per_worker,
        per_worker_min=max(1, per_worker // 4),
    )
    return _with_summary(sizing)


def _pgbouncer(
    budget: int, instances: int, pods: int, workers: int, write_connections: int = 1
) -> PoolSizing:
    usable = usable_connections(budget)
    pool_size = usable // instances
    if pool_size < MIN_POOL:
        return PoolSizing(
            "pgbouncer",
            fits=False,
            reason=POOL_BUDGET_EXCEEDED,
            message=f"{instances} PgBouncer instance(s) need at least {MIN_POOL} server connections each "
            f"({instances * MIN_POOL}), but spec.database.maxConnections={budget} leaves {usable} (90%): "
            f"raise spec.database.maxConnections to {budget_needed(instances * MIN_POOL)} or more, or lower "
            "spec.database.pooler.instances",
            budget=budget,
            max_pods=pods,
            workers=workers,
            pooler_instances=instances,
        )
    aggregate = instances * pool_size
    smallest = smallest_worker_pool(write_connections)
    per_worker = min(
        max(CLIENT_POOL_CAP, smallest),
        max(smallest, math.ceil(CLIENT_OVERSUBSCRIPTION * aggregate / (pods * workers))),
    )
    sizing = PoolSizing(
        "pgbouncer",
        fits=True,
        reason=None,
        message="",
        budget=budget,
        max_pods=pods,
        workers=workers,
        per_worker_max=per_worker,
        per_worker_min=max(1, per_worker // 4),
        pooler_instances=instances,
        pooler_pool_size=pool_size,
        pooler_max_client_conn=max(PGBOUNCER_MIN_CLIENT_CONN, pods * workers * per_worker),
    )
    return _with_summary(sizing)


def _with_summary(sizing: PoolSizing) -> PoolSizing:
    via = f" through {sizing.pooler_instances} PgBouncer(s)" if sizing.mode == "pgbouncer" else ""
    message = (
        f"{sizing.aggregate_max}/{sizing.budget} connections at most{via}; "
        f"{sizing.per_pod_min}-{sizing.per_pod_max} per pod"
    )
    return replace(sizing, message=message)
