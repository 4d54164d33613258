"""The Service in front of the server pods; its DNS name is the default issuer's host."""

from __future__ import annotations

from typing import Any

from authyard_operator.constants import HTTP_PORT
from authyard_operator.resources.meta import Names, object_meta, selector_labels


def render_service(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(Names(name).server, namespace, name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(name),
            "ports": [{"name": "http", "port": HTTP_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }
