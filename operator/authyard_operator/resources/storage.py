"""The PersistentVolumeClaim of the embedded SQLite database.

A claim rather than an emptyDir: registered OAuthClients, refresh tokens and consents live in that file, and
an emptyDir would lose them on every rollout or eviction (and the operator would have to re-register every
client). The claim is ReadWriteOnce, so the Deployment uses the Recreate strategy in this mode.
"""

from __future__ import annotations

from typing import Any

from authyard_operator.resources.meta import Names, object_meta
from authyard_operator.spec.authserver import AuthServerSpec


def render_data_claim(name: str, namespace: str, spec: AuthServerSpec) -> dict[str, Any]:
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": str(spec.storage.size)}},
    }
    if spec.storage.storage_class_name:
        claim_spec["storageClassName"] = spec.storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": object_meta(Names(name).data, namespace, name),
        "spec": claim_spec,
    }
