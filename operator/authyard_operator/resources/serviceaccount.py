"""The ServiceAccount the server pods run as: no API access, so no token is mounted."""

from __future__ import annotations

from typing import Any

from authyard_operator.resources.meta import Names, object_meta


def render_service_account(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(Names(name).server, namespace, name),
        "automountServiceAccountToken": False,
    }
