"""The health of an AuthServer's upstream identity providers, from its admin API into its status (a timer
per AuthServer, like the usage pass): the server checks them (it is the one that must reach them), the
operator shows what it says."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from authyard_operator.admin_client import AdminClient
from authyard_operator.constants import GROUP, VERSION
from authyard_operator.kube.client import Kube
from authyard_operator.reconcile.oauthclient import admin_access
from authyard_operator.spec.authserver import AuthServerSpec
from authyard_operator.spec.rules import parse_spec
from authyard_operator.status import write
from authyard_operator.status.authserver import identity_providers_status
from authyard_operator.status.conditions import is_ready


async def refresh_identity_providers(
    kube: Kube, admin: AdminClient, admin_url_template: str, authserver: dict[str, Any], now: datetime
) -> bool:
    """Read the upstreams' health and write the AuthServer's status if it changed; whether it was written.
    Nothing is read while the AuthServer is not Ready (its status says why already); an AuthServer without
    providers loses any health an earlier spec left."""
    meta = authserver["metadata"]
    previous = dict(authserver.get("status") or {})
    spec, problems = parse_spec(AuthServerSpec, authserver.get("spec"), meta["name"])
    if spec is None or problems:
        return False
    generation = int(meta.get("generation") or 1)
    health: dict[str, Any] | None = None
    if spec.identity_providers.providers:
        if not is_ready(previous):
            return False
        access = await admin_access(kube, meta["namespace"], meta["name"], admin_url_template)
        if access is None:
            return False
        health = await admin.identity_providers(access.url, access.token)
    elif previous.get("identityProviders") is None:
        return False  # nothing to show, nothing to take back
    after = identity_providers_status(previous, generation, health, now)
    change = write.StatusChange(
        f"{GROUP}/{VERSION}", "AuthServer", meta["namespace"], meta["name"], previous, after
    )
    if change.after == change.before:
        return False
    await write.patch_if_changed(kube, change)
    return True
