"""Where a status leaves the operator: every status write passes through here.

A handler of the object's own events stages the status on kopf's patch (:func:`stage`): kopf sends it with
its own bookkeeping in one request after the handler returns. A handler of another object's events (the
server Deployment's rollout) has no patch of the AuthServer to stage on, so it patches the status
subresource (:func:`patch_if_changed`), and only when the status changed: an unchanged status costs no
request and no watch event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import kopf

    from authyard_operator.kube.client import Kube


@dataclass(frozen=True)
class StatusChange:
    """An object's status before and after, as a status module built it."""

    api_version: str
    kind: str
    namespace: str
    name: str
    before: dict[str, Any]
    after: dict[str, Any]


def stage(patch: kopf.Patch, status: dict[str, Any]) -> None:
    patch.status.update(status)


async def patch_if_changed(kube: Kube, change: StatusChange) -> None:
    if change.after != change.before:
        await kube.patch_status(change.api_version, change.kind, change.namespace, change.name, change.after)
