"""The PodDisruptionBudget: node drains take server pods one at a time."""

from __future__ import annotations

from typing import Any

from authyard_operator.resources.meta import SERVER, Names, object_meta, selector_labels


def render_pdb(name: str, namespace: str, component: str = SERVER) -> dict[str, Any]:
    # maxUnavailable rather than minAvailable: with a single replica, minAvailable 1 would block every
    # drain forever, while maxUnavailable 1 lets it go (a single replica has no availability to protect).
    pdb_name = Names(name).server if component == SERVER else Names(name).pgbouncer
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(pdb_name, namespace, name, component),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(name, component)},
            # A crash-looping pod protects nothing; let drains evict it.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
