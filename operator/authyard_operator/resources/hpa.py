"""The HorizontalPodAutoscaler (autoscaling/v2) of the server Deployment."""

from __future__ import annotations

from typing import Any

from authyard_operator.resources.meta import Names, object_meta
from authyard_operator.spec.authserver import AuthServerSpec

# The Pods metric a custom-metrics adapter (prometheus-adapter) derives from the server's request counter.
REQUESTS_METRIC = "http_requests_per_second"


def _utilization(resource: str, percent: int) -> dict[str, Any]:
    return {
        "type": "Resource",
        "resource": {"name": resource, "target": {"type": "Utilization", "averageUtilization": percent}},
    }


def render_hpa(name: str, namespace: str, spec: AuthServerSpec) -> dict[str, Any]:
    scaling = spec.autoscaling
    metrics = [
        _utilization("cpu", scaling.target_cpu_utilization),
        _utilization("memory", scaling.target_memory_utilization),
    ]
    if scaling.target_requests_per_second_per_pod is not None:
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": REQUESTS_METRIC},
                    "target": {
                        "type": "AverageValue",
                        "averageValue": str(scaling.target_requests_per_second_per_pod),
                    },
                },
            }
        )
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": object_meta(Names(name).server, namespace, name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": Names(name).server},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": metrics,
            # Token traffic is bursty: scale up at once, scale down only after five quiet minutes.
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }
