"""The HorizontalPodAutoscaler (autoscaling/v2) of the server Deployment."""

from __future__ import annotations

from typing import Any

from authyard_operator.capacity import CapacityPlan
from authyard_operator.resources.meta import Names, object_meta
from authyard_operator.spec.authserver import AuthServerSpec

# The Pods metric a custom-metrics adapter (prometheus-adapter) derives from the server's request counter.
REQUESTS_METRIC = "http_requests_per_second"


def _utilization(resource: str, percent: int) -> dict[str, Any]:
    return {
        "type": "Resource",
        "resource": {"name": resource, "target": {"type": "Utilization", "averageUtilization": percent}},
    }


def _requests_per_second(per_pod: int) -> dict[str, Any]:
    return {
        "type": "Pods",
        "pods": {
            "metric": {"name": REQUESTS_METRIC},
            "target": {"type": "AverageValue", "averageValue": str(per_pod)},
        },
    }


def render_hpa(
    name: str, namespace: str, spec: AuthServerSpec, plan: CapacityPlan | None = None
) -> dict[str, Any]:
    """The HPA of spec.autoscaling, or of the capacity plan (whose bounds are spec.autoscaling's when that
    is enabled, and whose targets are its own)."""
    scaling = spec.autoscaling
    min_replicas, max_replicas = scaling.min_replicas, scaling.max_replicas
    cpu_target, requests_target = scaling.target_cpu_utilization, scaling.target_requests_per_second_per_pod
    if plan is not None and plan.target_rps is not None and plan.target_cpu is not None:
        min_replicas, max_replicas, cpu_target = plan.min_replicas, plan.max_replicas, plan.target_cpu
        requests_target = plan.target_rps if plan.requests_metric else None
    metrics = [
        _utilization("cpu", cpu_target),
        _utilization("memory", scaling.target_memory_utilization),
    ]
    if requests_target is not None:
        metrics.append(_requests_per_second(requests_target))
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(Names(name).server, namespace, name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": Names(name).server},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": metrics,
            # Token traffic is bursty: scale up at once, scale down only after five quiet minutes.
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }
