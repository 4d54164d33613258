"""Capacity from a target: ``spec.capacity`` -> the HPA's bounds and targets and the pods' CPU request.

With peak P tokens/s, one pod sustaining C tokens/s (``perPodTokensPerSecond``, default 2000 x workers),
headroom h, A replicas for availability, W workers per pod::

    replicas needed        N = ceil(P / C)
    with headroom          H = ceil(h x P / C)
    CPU per pod            m = ceil(C x 0.25) millicores  (the benchmark's ~250 µs of CPU per token)
    within maxCores        K = floor(maxCores x 1000 / m)
    within the budget      B = floor(0.9 x maxConnections / (W x smallest pool per worker))  (direct only)
    minReplicas            A
    maxReplicas            min(max(A, H), K, B, 100)
    target per pod         T = min(C, floor(P / maxReplicas x h))  requests/s
    CPU target             floor(100 x T / C) percent of m

The peak is unreachable when ``min(K, B, 100)`` is below N (the pods cannot serve it) or below A. When the
limits fall between N and H the plan runs with less headroom than asked and says so. With
``spec.autoscaling.enabled: true`` its minReplicas and maxReplicas win: the plan only checks that
maxReplicas reaches N and derives the targets from it.

Why CPU: an autoscaling/v2 HPA reads CPU from metrics-server, which every cluster has, while requests per
second need a custom-metrics adapter; an HPA that cannot read one of its metrics never scales down. So the
requests-per-second target is expressed as CPU (the request is the CPU of C tokens/s, so T tokens/s is
T / C of it) and the Pods metric is added only when ``requestsPerSecondMetric`` says an adapter serves it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from authyard_operator.sizing import PoolSizing, smallest_worker_pool, usable_connections
from authyard_operator.spec.authserver import DEFAULT_TOKENS_PER_SECOND_PER_WORKER, AuthServerSpec

CAPACITY_UNREACHABLE = "CapacityUnreachable"
# CPU of one token per second, in millicores: the benchmark measured 213-245 µs of worker CPU per
# client_credentials token (docs/performance.md), rounded up.
MILLICORES_PER_TOKEN_PER_SECOND = Fraction(1, 4)
# The most replicas spec.autoscaling.maxReplicas may name; the plan keeps to the same bound.
MOST_REPLICAS = 100


@dataclass(frozen=True)
class CapacityPlan:
    peak: int
    per_pod: int
    per_pod_from: str  # the field, or how the default was computed
    headroom: Fraction
    availability: int
    max_cores: int | None
    replicas_needed: int
    replicas_with_headroom: int
    cpu_millicores: int
    within_cores: int | None
    within_budget: int | None
    min_replicas: int
    max_replicas: int
    bounds_from: Literal["plan", "spec.autoscaling"]
    target_rps: int | None  # None only when unreachable with no pod at all
    target_cpu: int | None
    requests_metric: bool
    reachable: bool
    binding_limit: str | None
    message: str
    arithmetic: tuple[str, ...] = field(default=())

    @property
    def cpu_request(self) -> str:
        return f"{self.cpu_millicores}m"

    def status(self, sizing: PoolSizing | None = None) -> dict[str, Any]:
        """status.capacity; ``sizing`` (the pools at maxReplicas) adds the connections used."""
        result: dict[str, Any] = {
            "reachable": self.reachable,
            "peakTokensPerSecond": self.peak,
            "perPodTokensPerSecond": self.per_pod,
            "headroom": float(self.headroom),
            "replicasNeeded": self.replicas_needed,
            "replicasWithHeadroom": self.replicas_with_headroom,
            "cpuPerPod": self.cpu_request,
            "minReplicas": self.min_replicas,
            "maxReplicas": self.max_replicas,
            "boundsFrom": self.bounds_from,
        }
        if self.target_rps is not None:
            result["targetRequestsPerSecondPerPod"] = self.target_rps
            result["targetCPUUtilization"] = self.target_cpu
        if self.binding_limit is not None:
            result["bindingLimit"] = self.binding_limit
        if self.within_cores is not None:
            result["replicasWithinCores"] = self.within_cores
        if self.within_budget is not None:
            result["replicasWithinConnectionBudget"] = self.within_budget
        lines = list(self.arithmetic)
        if sizing is not None and sizing.fits and sizing.budget is not None:
            result |= {"connections": sizing.aggregate_max, "connectionBudget": sizing.budget}
            usable = usable_connections(sizing.budget)
            if sizing.mode == "pgbouncer":
                lines.append(
                    f"connections = {sizing.pooler_instances} PgBouncer(s) x {sizing.pooler_pool_size} = "
                    f"{sizing.aggregate_max} <= floor(0.9 x {sizing.budget}) = {usable}, whatever the pods"
                )
            else:
                lines.append(
                    f"connections = maxReplicas x pool per pod = {sizing.max_pods} x {sizing.per_pod_max} = "
                    f"{sizing.aggregate_max} <= floor(0.9 x {sizing.budget}) = {usable}"
                )
        result["arithmetic"] = lines
        return result


def _number(value: Fraction) -> str:
    """1.2, not 6/5: the headroom as the user wrote it."""
    return str(float(value)) if value.denominator != 1 else str(value.numerator)


def replicas_within_budget(spec: AuthServerSpec) -> int | None:
    """The most pods whose pools fit the connection budget; None when pods do not spend it (PgBouncer)."""
    if spec.database is None or spec.uses_pgbouncer:
        return None
    smallest = smallest_worker_pool(spec.database.write_connections)
    return usable_connections(spec.database.max_connections) // (spec.workers * smallest)


def plan_capacity(spec: AuthServerSpec) -> CapacityPlan | None:
    """The plan for ``spec.capacity``; None without one."""
    capacity = spec.capacity
    if capacity is None:
        return None
    peak, workers = capacity.peak_tokens_per_second, spec.workers
    if capacity.per_pod_tokens_per_second is not None:
        per_pod, per_pod_from = capacity.per_pod_tokens_per_second, "spec.capacity.perPodTokensPerSecond"
        per_pod_line = f"perPod = {per_pod} (spec.capacity.perPodTokensPerSecond)"
    else:
        per_pod = DEFAULT_TOKENS_PER_SECOND_PER_WORKER * workers
        per_pod_from = f"default: {DEFAULT_TOKENS_PER_SECOND_PER_WORKER} x {workers} worker(s)"
        per_pod_line = f"perPod = {DEFAULT_TOKENS_PER_SECOND_PER_WORKER} x {workers} worker(s) = {per_pod}"
    headroom = Fraction(str(capacity.headroom))
    availability = capacity.min_replicas_for_availability
    needed = math.ceil(Fraction(peak, per_pod))
    with_headroom = math.ceil(headroom * peak / per_pod)
    millicores = max(1, math.ceil(per_pod * MILLICORES_PER_TOKEN_PER_SECOND))
    h = _number(headroom)
    lines = [
        per_pod_line,
        f"replicasNeeded = ceil(peak / perPod) = ceil({peak} / {per_pod}) = {needed}",
        f"replicasWithHeadroom = ceil(headroom x peak / perPod) = ceil({h} x {peak} / {per_pod}) = "
        f"{with_headroom}",
        f"cpuPerPod = ceil(perPod x 0.25m) = ceil({per_pod} x 0.25) = {millicores}m",
    ]

    # Each limit on maxReplicas, by the field that sets it.
    limits: list[tuple[int, str]] = [(MOST_REPLICAS, f"the {MOST_REPLICAS}-replica bound")]
    within_cores = None
    if capacity.max_cores is not None:
        within_cores = capacity.max_cores * 1000 // millicores
        limits.append((within_cores, "spec.capacity.maxCores"))
        lines.append(
            f"replicasWithinCores = floor(maxCores / cpuPerPod) = floor({capacity.max_cores * 1000}m / "
            f"{millicores}m) = {within_cores}"
        )
    within_budget = replicas_within_budget(spec)
    if within_budget is not None and spec.database is not None:
        smallest = smallest_worker_pool(spec.database.write_connections)
        budget = spec.database.max_connections
        limits.append((within_budget, "spec.database.maxConnections"))
        lines.append(
            f"replicasWithinConnectionBudget = floor(floor(0.9 x {budget}) / ({workers} worker(s) x "
            f"{smallest} connections)) = {within_budget}"
        )
    limit, limit_field = min(limits, key=lambda item: item[0])
    named = ", ".join(f"{value} ({name})" for value, name in limits)
    lines.append(f"limit = min({named}) = {limit}")

    if spec.autoscaling.enabled:
        bounds_from: Literal["plan", "spec.autoscaling"] = "spec.autoscaling"
        min_replicas, max_replicas = spec.autoscaling.min_replicas, spec.autoscaling.max_replicas
        lines += [
            f"minReplicas = spec.autoscaling.minReplicas = {min_replicas} (spec.autoscaling wins over the "
            f"plan's {availability})",
            f"maxReplicas = spec.autoscaling.maxReplicas = {max_replicas} (spec.autoscaling wins over the "
            f"plan's {min(max(availability, with_headroom), limit)})",
        ]
        limits.append((max_replicas, "spec.autoscaling.maxReplicas"))
        limit, limit_field = min(limits, key=lambda item: item[0])
        named = ", ".join(f"{value} ({name})" for value, name in limits)
        lines.append(f"limit = min({named}) = {limit}")
    else:
        bounds_from = "plan"
        min_replicas = availability
        wanted = max(availability, with_headroom)
        max_replicas = min(wanted, limit)
        lines += [
            f"minReplicas = minReplicasForAvailability = {min_replicas}",
            f"maxReplicas = min(max(minReplicasForAvailability, replicasWithHeadroom), limit) = "
            f"min(max({availability}, {with_headroom}), {limit}) = {max_replicas}",
        ]

    binding = None
    reachable = True
    if limit < needed:
        reachable, binding = False, limit_field
        message = (
            f"the peak of {peak} tokens/s needs {needed} replicas of {per_pod}/s, but {limit_field} allows "
            f"{limit}: {_remedy(limit_field)}"
        )
    elif bounds_from == "plan" and limit < availability:
        reachable, binding = False, limit_field
        message = (
            f"minReplicasForAvailability is {availability}, but {limit_field} allows {limit} replicas: "
            f"{_remedy(limit_field)}, or lower spec.capacity.minReplicasForAvailability"
        )
    else:
        if limit < with_headroom:
            binding = limit_field
        message = (
            f"{peak} tokens/s: {needed} replica(s) of {per_pod}/s needed, {min_replicas}-{max_replicas} "
            f"planned ({bounds_from}), {millicores}m CPU each"
        )
        if with_headroom > max_replicas:
            message += f"; {binding or 'maxReplicas'} leaves less headroom than {h}"

    target = cpu_target = None
    if max_replicas >= 1:  # a plan that fits no pod at all has no target
        target = min(per_pod, max(1, math.floor(Fraction(peak) / max_replicas * headroom)))
        cpu_target = max(1, math.floor(Fraction(100 * target, per_pod)))
        lines += [
            f"targetRequestsPerSecondPerPod = min(perPod, floor(peak / maxReplicas x headroom)) = "
            f"min({per_pod}, floor({peak} / {max_replicas} x {h})) = {target}",
            f"targetCPUUtilization = floor(100 x target / perPod) = floor(100 x {target} / {per_pod}) = "
            f"{cpu_target}%",
        ]
    return CapacityPlan(
        peak=peak,
        per_pod=per_pod,
        per_pod_from=per_pod_from,
        headroom=headroom,
        availability=availability,
        max_cores=capacity.max_cores,
        replicas_needed=needed,
        replicas_with_headroom=with_headroom,
        cpu_millicores=millicores,
        within_cores=within_cores,
        within_budget=within_budget,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        bounds_from=bounds_from,
        target_rps=target,
        target_cpu=cpu_target,
        requests_metric=capacity.requests_per_second_metric,
        reachable=reachable,
        binding_limit=binding,
        message=message,
        arithmetic=tuple(lines),
    )


def _remedy(limit_field: str) -> str:
    return {
        "spec.capacity.maxCores": "raise spec.capacity.maxCores, or spec.capacity.perPodTokensPerSecond "
        "if your pods serve more",
        "spec.database.maxConnections": "raise spec.database.maxConnections, lower spec.workers, or set "
        "spec.database.pooler.type to pgbouncer",
        "spec.autoscaling.maxReplicas": "raise spec.autoscaling.maxReplicas, or set "
        "spec.autoscaling.enabled to false to let the plan choose",
    }.get(limit_field, "raise spec.workers or spec.capacity.perPodTokensPerSecond")
