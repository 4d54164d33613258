"""ownerReferences, added in one place: children of a custom resource are deleted with it by the
garbage collector, and kopf routes their events to the owner."""

from __future__ import annotations

import copy
from typing import Any


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_by(manifest: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``manifest`` controlled by ``owner`` (same namespace: Kubernetes has no cross-namespace
    owners)."""
    owner_namespace = owner["metadata"].get("namespace")
    namespace = manifest.get("metadata", {}).get("namespace")
    if owner_namespace != namespace:
        raise ValueError(
            f"{manifest['kind']} {namespace}/{manifest['metadata']['name']} cannot be owned by an object in "
            f"namespace {owner_namespace}"
        )
    result = copy.deepcopy(manifest)
    reference = owner_reference(owner)
    # Keep other (non-controller) owners someone added; there is only one controller, and it is us.
    existing = result["metadata"].get("ownerReferences", [])
    others = [ref for ref in existing if ref.get("uid") != reference["uid"] and not ref.get("controller")]
    result["metadata"]["ownerReferences"] = [*others, reference]
    return result
