"""Token usage into OAuthClient status: one pass per AuthServer reads every client's usage from its admin API
(a call per page of 1000 clients, never one per client) and writes each of its OAuthClients' status.usage and
Unused condition, only where they changed."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from authyard_operator.admin_client import AdminClient
from authyard_operator.clock import parse_rfc3339
from authyard_operator.constants import GROUP, VERSION
from authyard_operator.kube.client import Kube
from authyard_operator.reconcile.oauthclient import admin_access, client_id_for
from authyard_operator.spec.authserver import AuthServerSpec
from authyard_operator.spec.rules import parse_spec
from authyard_operator.status import oauthclient as client_status
from authyard_operator.status import write
from authyard_operator.status.conditions import is_ready


@dataclass(frozen=True)
class IndexedClient:
    """What the usage pass needs of an OAuthClient, as the operator's index of OAuthClients keeps it."""

    namespace: str
    name: str
    generation: int
    created: str
    unused_after_days: int | None
    status: dict[str, Any]

    @classmethod
    def of(cls, body: dict[str, Any]) -> IndexedClient:
        meta, spec = body["metadata"], body.get("spec") or {}
        days = spec.get("unusedAfterDays")
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            generation=int(meta.get("generation") or 1),
            created=meta.get("creationTimestamp") or "",
            unused_after_days=days if isinstance(days, int) else None,
            status=dict(body.get("status") or {}),
        )


def authserver_of(body: dict[str, Any]) -> tuple[str, str]:
    """The (namespace, name) of the AuthServer an OAuthClient body names (its own namespace by default)."""
    ref = (body.get("spec") or {}).get("authServerRef") or {}
    return ref.get("namespace") or body["metadata"]["namespace"], str(ref.get("name") or "")


def usage_changes(
    clients: Iterable[IndexedClient],
    usage: dict[str, dict[str, Any]],
    default_days: int,
    where: str,
    now: datetime,
) -> list[write.StatusChange]:
    """The status changes of the clients registered with ``where`` (namespace/name), unchanged ones included
    (``write.patch_if_changed`` skips them)."""
    changes = []
    for client in clients:
        client_id = client.status.get("clientId")
        if client.status.get("authServer") != where or client_id != client_id_for(
            client.namespace, client.name
        ):
            continue  # not (yet) registered with this AuthServer
        created = parse_rfc3339(client.created) if client.created else now
        days = client.unused_after_days or default_days
        after = client_status.usage_status(
            client.status, usage.get(client_id), created, days, client.generation, now
        )
        before = {key: client.status.get(key) for key in after}
        changes.append(
            write.StatusChange(
                f"{GROUP}/{VERSION}", "OAuthClient", client.namespace, client.name, before, after
            )
        )
    return changes


async def refresh_usage(
    kube: Kube,
    admin: AdminClient,
    admin_url_template: str,
    authserver: dict[str, Any],
    clients: Iterable[IndexedClient],
    now: datetime,
) -> int:
    """Read the AuthServer's usage and write its clients' status where it changed; how many were written.
    Nothing happens while the AuthServer is not Ready or has no admin Secret (its clients keep theirs)."""
    meta = authserver["metadata"]
    spec, problems = parse_spec(AuthServerSpec, authserver.get("spec"), meta["name"])
    if spec is None or problems or not is_ready(authserver.get("status")):
        return 0
    access = await admin_access(kube, meta["namespace"], meta["name"], admin_url_template)
    if access is None:
        return 0
    usage = await admin.usage(access.url, access.token)
    where = f"{meta['namespace']}/{meta['name']}"
    written = 0
    for change in usage_changes(clients, usage, spec.client_usage.unused_after_days, where, now):
        if change.after != change.before:
            await write.patch_if_changed(kube, change)
            written += 1
    return written
