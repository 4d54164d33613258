"""A Prometheus Operator ServiceMonitor for /metrics (rendered only when its CRD exists in the cluster)."""

from __future__ import annotations

from typing import Any

from authyard_operator.resources.meta import Names, object_meta, selector_labels

SCRAPE_INTERVAL = "30s"


def render_service_monitor(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": object_meta(Names(name).server, namespace, name),
        "spec": {
            "selector": {"matchLabels": selector_labels(name)},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": SCRAPE_INTERVAL}],
        },
    }
