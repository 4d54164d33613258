"""Capacity from a target (spec.capacity): the plan's arithmetic checked against the formulas worked by hand,
and what it renders (the HPA, the pods' CPU request) and reports (status.capacity).

The formulas (capacity.py): N = ceil(P / C), H = ceil(h x P / C), m = ceil(C / 4) millicores,
K = floor(maxCores x 1000 / m), B = floor(floor(0.9 x budget) / (W x smallest pool)),
min = A, max = min(max(A, H), K, B, 100), T = min(C, floor(P / max x h)), CPU = floor(100 x T / C).
"""

from __future__ import annotations

from typing import Any

import pytest
from authyard_operator.capacity import CapacityPlan, plan_capacity
from authyard_operator.keys import plan_keys
from authyard_operator.resources.bundle import Observed, render_children
from authyard_operator.sizing import size_pools
from authyard_operator.spec.authserver import AuthServerSpec
from authyard_operator.status.authserver import DeploymentState, reconciled_status

from tests.operator.support import CLUSTER_ISSUER, DB, EXAMPLES, NOW, by_kind, load_yaml, spec_of
from tests.operator.test_status_authserver import assert_fits_the_crd


def capacity_spec(
    budget: int = 200, workers: int = 1, pooler: str = "none", **capacity: Any
) -> dict[str, Any]:
    database = {**DB, "maxConnections": budget, "pooler": {"type": pooler}}
    return {"database": database, "workers": workers, "capacity": capacity}


def plan_of(raw: dict[str, Any]) -> CapacityPlan:
    plan = plan_capacity(spec_of(raw))
    assert plan is not None
    return plan


def figures(plan: CapacityPlan) -> tuple[int, int, int, int, int, int | None, int | None]:
    return (
        plan.replicas_needed,
        plan.replicas_with_headroom,
        plan.cpu_millicores,
        plan.min_replicas,
        plan.max_replicas,
        plan.target_rps,
        plan.target_cpu,
    )


# --- worked examples --------------------------------------------------------------------------------------


def test_no_capacity_no_plan() -> None:
    assert plan_capacity(spec_of({"database": DB, "replicas": 2})) is None


def test_a_peak_of_several_pods() -> None:
    """P = 10000, C = 1500, h = 1.2, A = 3, W = 2, budget 200 (direct):
    N = ceil(6.67) = 7; H = ceil(12000 / 1500) = 8; m = ceil(375) = 375m; B = floor(180 / (2 x 2)) = 45;
    max = min(max(3, 8), 45, 100) = 8; T = min(1500, floor(10000 / 8 x 1.2)) = 1500; CPU = 100%.
    Pools at 8 pods: floor(180 / 16) = 11 per worker, 22 per pod, 176 <= 180 connections."""
    raw = capacity_spec(workers=2, peakTokensPerSecond=10000, perPodTokensPerSecond=1500)
    plan = plan_of(raw)
    assert plan.reachable and plan.binding_limit is None and plan.bounds_from == "plan"
    assert figures(plan) == (7, 8, 375, 3, 8, 1500, 100)
    assert plan.within_budget == 45 and plan.within_cores is None
    sizing = size_pools(spec_of(raw), plan.max_replicas)
    assert (sizing.per_worker_max, sizing.per_pod_max, sizing.aggregate_max) == (11, 22, 176)
    status = plan.status(sizing)
    assert (status["connections"], status["connectionBudget"]) == (176, 200)
    assert (
        "connections = maxReplicas x pool per pod = 8 x 22 = 176 <= floor(0.9 x 200) = 180"
        in (status["arithmetic"])
    )


def test_a_peak_below_one_pod_keeps_the_replicas_for_availability() -> None:
    """P = 300, C = 2000 x 1 worker (the default), h = 1.2: N = 1, H = ceil(0.18) = 1, m = 500m;
    min = max = 3 (availability); T = min(2000, floor(300 / 3 x 1.2)) = 120; CPU = floor(6) = 6%."""
    plan = plan_of(capacity_spec(peakTokensPerSecond=300))
    assert plan.per_pod == 2000 and plan.per_pod_from == "default: 2000 x 1 worker(s)"
    assert figures(plan) == (1, 1, 500, 3, 3, 120, 6)
    assert plan.reachable and plan.binding_limit is None


def test_the_default_per_pod_follows_the_workers() -> None:
    """C = 2000 x 4 = 8000, m = 2000m; P = 20000: N = 3, H = ceil(3) = 3, max = 3, T = min(8000, 8000)."""
    plan = plan_of(capacity_spec(workers=4, peakTokensPerSecond=20000))
    assert (plan.per_pod, plan.cpu_millicores) == (8000, 2000)
    assert figures(plan) == (3, 3, 2000, 3, 3, 8000, 100)


def test_headroom_is_exact_decimal_arithmetic() -> None:
    """1.1 x 1000 / 100 is 11, not the 11.000000000000002 of binary floats (which would ceil to 12)."""
    plan = plan_of(capacity_spec(peakTokensPerSecond=1000, perPodTokensPerSecond=100, headroom=1.1))
    assert (plan.replicas_needed, plan.replicas_with_headroom, plan.max_replicas) == (10, 11, 11)
    assert plan.target_rps == 100  # floor(1000 / 11 x 1.1) = floor(100)


def test_max_cores_binding_leaves_less_headroom() -> None:
    """P = 20000, C = 2500: N = 8, H = ceil(9.6) = 10, m = ceil(625) = 625m. maxCores 6:
    K = floor(6000 / 625) = 9, between N and H: max = 9, reachable, bound by maxCores;
    T = min(2500, floor(20000 / 9 x 1.2) = 2666) = 2500; CPU = 100%."""
    plan = plan_of(capacity_spec(peakTokensPerSecond=20000, perPodTokensPerSecond=2500, maxCores=6))
    assert plan.within_cores == 9
    assert figures(plan) == (8, 10, 625, 3, 9, 2500, 100)
    assert plan.reachable and plan.binding_limit == "spec.capacity.maxCores"
    assert "less headroom than 1.2" in plan.message


def test_max_cores_below_the_peak_is_unreachable() -> None:
    """maxCores 4: K = floor(4000 / 625) = 6 < N = 8."""
    plan = plan_of(capacity_spec(peakTokensPerSecond=20000, perPodTokensPerSecond=2500, maxCores=4))
    assert not plan.reachable and plan.binding_limit == "spec.capacity.maxCores"
    assert plan.within_cores == 6 and plan.max_replicas == 6
    assert "needs 8 replicas" in plan.message and "spec.capacity.maxCores allows 6" in plan.message
    assert plan.status()["reachable"] is False


def test_max_cores_below_availability_is_unreachable() -> None:
    """C = 2000 (m = 500m), maxCores 1: K = 2, enough for the peak (N = 1) but not for A = 3."""
    plan = plan_of(capacity_spec(peakTokensPerSecond=100, maxCores=1))
    assert not plan.reachable and plan.binding_limit == "spec.capacity.maxCores"
    assert "minReplicasForAvailability is 3" in plan.message
    assert "spec.capacity.minReplicasForAvailability" in plan.message
    assert plan_of(capacity_spec(peakTokensPerSecond=100, maxCores=1, minReplicasForAvailability=2)).reachable


def test_max_cores_that_fit_no_pod_have_no_target() -> None:
    """C = 8000 needs m = 2000m; maxCores 1 fits K = 0 pods."""
    plan = plan_of(capacity_spec(peakTokensPerSecond=100, perPodTokensPerSecond=8000, maxCores=1))
    assert not plan.reachable and plan.within_cores == 0
    assert plan.target_rps is None and "targetRequestsPerSecondPerPod" not in plan.status()


def test_the_connection_budget_binding_leaves_less_headroom() -> None:
    """P = 20000, C = 2500 (N = 8, H = 10), W = 2, budget 40: B = floor(36 / (2 x 2)) = 9; max = 9.
    Pools at 9 pods: floor(36 / 18) = 2 per worker, 4 per pod, 36 connections."""
    raw = capacity_spec(budget=40, workers=2, peakTokensPerSecond=20000, perPodTokensPerSecond=2500)
    plan = plan_of(raw)
    assert plan.reachable and plan.binding_limit == "spec.database.maxConnections"
    assert (plan.within_budget, plan.max_replicas) == (9, 9)
    sizing = size_pools(spec_of(raw), plan.max_replicas)
    assert sizing.fits and sizing.aggregate_max == 36 == 9 * sizing.per_pod_max


def test_the_connection_budget_below_the_peak_is_unreachable() -> None:
    """Budget 30: B = floor(27 / 4) = 6 < N = 8."""
    plan = plan_of(capacity_spec(budget=30, workers=2, peakTokensPerSecond=20000, perPodTokensPerSecond=2500))
    assert not plan.reachable and plan.binding_limit == "spec.database.maxConnections"
    assert "spec.database.maxConnections allows 6" in plan.message and "pgbouncer" in plan.message


def test_write_connections_shrink_the_budget_bound() -> None:
    """writeConnections 3: the smallest pool per worker is 4, so B = floor(180 / (2 x 4)) = 22."""
    raw = capacity_spec(workers=2, peakTokensPerSecond=1000)
    raw["database"]["writeConnections"] = 3
    assert plan_of(raw).within_budget == 22


def test_pgbouncer_pods_do_not_spend_the_budget() -> None:
    """Through PgBouncer the pods' connections cost the database nothing: budget 30 binds nothing."""
    raw = capacity_spec(
        budget=30, workers=2, pooler="pgbouncer", peakTokensPerSecond=20000, perPodTokensPerSecond=2500
    )
    plan = plan_of(raw)
    assert plan.reachable and plan.within_budget is None and plan.max_replicas == 10
    sizing = size_pools(spec_of(raw), plan.max_replicas)
    status = plan.status(sizing)
    assert (status["connections"], status["connectionBudget"]) == (26, 30)  # 2 PgBouncers x 13
    assert "replicasWithinConnectionBudget" not in status


def test_more_than_a_hundred_replicas_is_unreachable() -> None:
    plan = plan_of(capacity_spec(budget=100000, peakTokensPerSecond=1_000_000))
    assert not plan.reachable and plan.replicas_needed == 500
    assert "the 100-replica bound allows 100" in plan.message


def test_explicit_autoscaling_bounds_win() -> None:
    """spec.autoscaling.enabled with 4-12: the bounds are those; P = 20000, C = 2500:
    T = min(2500, floor(20000 / 12 x 1.2)) = 2000; CPU = floor(100 x 2000 / 2500) = 80%."""
    raw = capacity_spec(peakTokensPerSecond=20000, perPodTokensPerSecond=2500)
    raw["autoscaling"] = {"enabled": True, "minReplicas": 4, "maxReplicas": 12}
    plan = plan_of(raw)
    assert plan.bounds_from == "spec.autoscaling" and plan.reachable
    assert figures(plan) == (8, 10, 625, 4, 12, 2000, 80)
    assert any("spec.autoscaling wins" in line for line in plan.arithmetic)
    assert plan.status()["boundsFrom"] == "spec.autoscaling"


def test_explicit_max_replicas_below_the_peak_is_unreachable() -> None:
    raw = capacity_spec(peakTokensPerSecond=20000, perPodTokensPerSecond=2500)
    raw["autoscaling"] = {"enabled": True, "minReplicas": 2, "maxReplicas": 6}
    plan = plan_of(raw)
    assert not plan.reachable and plan.binding_limit == "spec.autoscaling.maxReplicas"
    assert "spec.autoscaling.maxReplicas allows 6" in plan.message


@pytest.mark.parametrize("peak", [1, 7, 999, 1000, 1001, 12345, 99_999])
@pytest.mark.parametrize("per_pod", [1, 250, 1000, 3333])
@pytest.mark.parametrize("headroom", [1, 1.2, 1.5, 3])
def test_every_reachable_plan_serves_its_peak_within_its_limits(
    peak: int, per_pod: int, headroom: float
) -> None:
    raw = capacity_spec(
        budget=5000, peakTokensPerSecond=peak, perPodTokensPerSecond=per_pod, headroom=headroom, maxCores=64
    )
    plan = plan_of(raw)
    assert plan.replicas_needed * per_pod >= peak > (plan.replicas_needed - 1) * per_pod
    if not plan.reachable:
        assert plan.binding_limit is not None
        return
    assert plan.min_replicas <= plan.max_replicas <= 100
    assert plan.max_replicas * per_pod >= peak  # all pods at their capacity serve the peak
    assert plan.max_replicas * plan.cpu_millicores <= 64 * 1000
    assert plan.target_rps is not None and 1 <= plan.target_rps <= per_pod
    assert plan.target_cpu == max(1, 100 * plan.target_rps // per_pod) <= 100
    assert size_pools(spec_of(raw), plan.max_replicas).fits


# --- rendered and reported --------------------------------------------------------------------------------


def rendered(raw: dict[str, Any]) -> tuple[dict[tuple[str, str], dict[str, Any]], CapacityPlan]:
    spec = AuthServerSpec.model_validate(raw)
    plan = plan_capacity(spec)
    assert plan is not None
    sizing = size_pools(spec, plan.max_replicas)
    observed = Observed(cluster_issuer=CLUSTER_ISSUER)
    return by_kind(render_children("auth", "platform", spec, sizing, observed, NOW, plan)), plan


def utilization(resource: str, percent: int) -> dict[str, Any]:
    target = {"type": "Utilization", "averageUtilization": percent}
    return {"type": "Resource", "resource": {"name": resource, "target": target}}


def test_the_hpa_and_the_pods_follow_the_plan() -> None:
    children, _ = rendered(capacity_spec(workers=2, peakTokensPerSecond=10000, perPodTokensPerSecond=1500))
    hpa, deployment = children[("HorizontalPodAutoscaler", "auth")], children[("Deployment", "auth")]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 8)
    assert hpa["spec"]["metrics"] == [utilization("cpu", 100), utilization("memory", 80)]
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    assert server["resources"]["requests"] == {"cpu": "375m", "memory": "128Mi"}
    assert server["command"][-2:] == ["--workers", "2"]
    # The pools are sized for the plan's 8 pods: floor(180 / (8 x 2)) = 11 per worker.
    assert children[("ConfigMap", "auth-config")]["data"]["AUTHSERVER_DB_POOL_MAX_SIZE"] == "11"


def test_the_requests_metric_is_added_only_when_asked() -> None:
    children, plan = rendered(
        capacity_spec(peakTokensPerSecond=20000, perPodTokensPerSecond=2500, requestsPerSecondMetric=True)
    )
    hpa = children[("HorizontalPodAutoscaler", "auth")]
    pods_metric = hpa["spec"]["metrics"][2]
    assert pods_metric["pods"]["metric"]["name"] == "http_requests_per_second"
    assert pods_metric["pods"]["target"] == {"type": "AverageValue", "averageValue": str(plan.target_rps)}


def test_explicit_bounds_win_in_the_hpa_and_user_memory_stays() -> None:
    raw = capacity_spec(peakTokensPerSecond=20000, perPodTokensPerSecond=2500)
    raw["autoscaling"] = {"enabled": True, "minReplicas": 4, "maxReplicas": 12, "targetCPUUtilization": 50}
    raw["resources"] = {"requests": {"memory": "300Mi"}, "limits": {"memory": "600Mi"}}
    children, _ = rendered(raw)
    hpa, deployment = children[("HorizontalPodAutoscaler", "auth")], children[("Deployment", "auth")]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (4, 12)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80  # the plan's
    resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources == {"requests": {"memory": "300Mi", "cpu": "625m"}, "limits": {"memory": "600Mi"}}


def test_an_unreachable_plan_renders_nothing() -> None:
    raw = capacity_spec(peakTokensPerSecond=20000, perPodTokensPerSecond=2500, maxCores=4)
    spec = spec_of(raw)
    plan = plan_capacity(spec)
    with pytest.raises(ValueError, match=r"spec\.capacity\.maxCores"):
        render_children("auth", "platform", spec, size_pools(spec), Observed(), NOW, plan)


def test_status_capacity_shows_the_plan_and_fits_the_crd() -> None:
    raw = capacity_spec(workers=2, peakTokensPerSecond=10000, perPodTokensPerSecond=1500, maxCores=16)
    spec = spec_of(raw)
    plan = plan_capacity(spec)
    assert plan is not None
    sizing = size_pools(spec, plan.max_replicas)
    status = reconciled_status(
        generation=1,
        issuer="https://auth.example.com",
        sizing=sizing,
        key_plan=plan_keys(None, None, spec.tokens, NOW),
        tokens=spec.tokens,
        deployment=DeploymentState(desired=3, replicas=3, ready=3, updated=3, available=3, up_to_date=True),
        now=NOW,
        capacity=plan,
    )
    assert_fits_the_crd(status)
    capacity = status["capacity"]
    assert {key: capacity[key] for key in (
        "reachable", "peakTokensPerSecond", "perPodTokensPerSecond", "headroom", "replicasNeeded",
        "replicasWithHeadroom", "cpuPerPod", "replicasWithinCores", "replicasWithinConnectionBudget",
        "minReplicas", "maxReplicas", "boundsFrom", "targetRequestsPerSecondPerPod", "targetCPUUtilization",
        "connections", "connectionBudget",
    )} == {
        "reachable": True, "peakTokensPerSecond": 10000, "perPodTokensPerSecond": 1500, "headroom": 1.2,
        "replicasNeeded": 7, "replicasWithHeadroom": 8, "cpuPerPod": "375m", "replicasWithinCores": 42,
        "replicasWithinConnectionBudget": 45, "minReplicas": 3, "maxReplicas": 8, "boundsFrom": "plan",
        "targetRequestsPerSecondPerPod": 1500, "targetCPUUtilization": 100, "connections": 176,
        "connectionBudget": 200,
    }  # fmt: skip
    assert capacity["arithmetic"] == [
        "perPod = 1500 (spec.capacity.perPodTokensPerSecond)",
        "replicasNeeded = ceil(peak / perPod) = ceil(10000 / 1500) = 7",
        "replicasWithHeadroom = ceil(headroom x peak / perPod) = ceil(1.2 x 10000 / 1500) = 8",
        "cpuPerPod = ceil(perPod x 0.25m) = ceil(1500 x 0.25) = 375m",
        "replicasWithinCores = floor(maxCores / cpuPerPod) = floor(16000m / 375m) = 42",
        "replicasWithinConnectionBudget = floor(floor(0.9 x 200) / (2 worker(s) x 2 connections)) = 45",
        "limit = min(100 (the 100-replica bound), 42 (spec.capacity.maxCores), "
        "45 (spec.database.maxConnections)) = 42",
        "minReplicas = minReplicasForAvailability = 3",
        "maxReplicas = min(max(minReplicasForAvailability, replicasWithHeadroom), limit) = "
        "min(max(3, 8), 42) = 8",
        "targetRequestsPerSecondPerPod = min(perPod, floor(peak / maxReplicas x headroom)) = "
        "min(1500, floor(10000 / 8 x 1.2)) = 1500",
        "targetCPUUtilization = floor(100 x target / perPod) = floor(100 x 1500 / 1500) = 100%",
        "connections = maxReplicas x pool per pod = 8 x 22 = 176 <= floor(0.9 x 200) = 180",
    ]
    ready = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert ready["message"].startswith("10000 tokens/s: 7 replica(s) of 1500/s needed, 3-8 planned (plan)")


def test_the_example_renders_what_its_comments_say() -> None:
    """examples/authserver-capacity.yaml: 3-6 pods of 1000m at 100% CPU, 15 connections per worker."""
    raw = load_yaml(EXAMPLES / "authserver-capacity.yaml")["spec"]
    children, plan = rendered(raw)
    hpa = children[("HorizontalPodAutoscaler", "auth")]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 6)
    assert hpa["spec"]["metrics"][0] == utilization("cpu", 100)
    resources = children[("Deployment", "auth")]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"] == {"memory": "256Mi", "cpu": "1000m"}
    assert children[("ConfigMap", "auth-config")]["data"]["AUTHSERVER_DB_POOL_MAX_SIZE"] == "15"
    assert (plan.replicas_needed, plan.replicas_with_headroom, plan.within_cores, plan.within_budget) == (
        5,
        6,
        16,
        45,
    )
