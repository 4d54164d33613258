"""Applying desired children: the one place where ownerReferences are set and server-side apply is done."""

from __future__ import annotations

from typing import Any

from authyard_operator.kube.client import Kube
from authyard_operator.resources.ownership import owned_by


async def apply_children(
    kube: Kube, owner: dict[str, Any], children: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Apply every child, owned by ``owner``, in order; returns the live objects keyed by ``Kind/name``.

    Server-side apply with ``force``: fields the operator manages are taken back when someone edits them
    (drift correction); fields others added and the operator does not manage are left alone.
    """
    live: dict[str, dict[str, Any]] = {}
    for child in children:
        applied = await kube.apply(owned_by(child, owner))
        live[f"{child['kind']}/{child['metadata']['name']}"] = applied
    return live


async def delete_unwanted(
    kube: Kube, namespace: str | None, unwanted: list[tuple[str, str, str]]
) -> list[str]:
    """Delete children an earlier spec wanted and this one does not; returns what was actually deleted."""
    deleted = []
    for api_version, kind, name in unwanted:
        if await kube.delete(api_version, kind, namespace, name):
            deleted.append(f"{kind}/{name}")
    return deleted


async def replace_owned(
    kube: Kube, owner: dict[str, Any], manifest: dict[str, Any], existing: dict[str, Any] | None
) -> dict[str, Any]:
    """Create, or replace whole with optimistic concurrency (a 409 means someone changed it meanwhile: the
    caller retries with a fresh read). For objects the operator owns entirely, where a key it stops writing
    must disappear."""
    owned = owned_by(manifest, owner)
    if existing is None:
        return await kube.create(owned)
    return await kube.update(owned)
