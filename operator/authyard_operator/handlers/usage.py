"""What the operator reads back from each AuthServer's admin API on a timer: client usage (an index of
OAuthClients by the AuthServer they name; one read per AuthServer writes its clients' status.usage and Unused
condition) and the health of its upstream identity providers (its own status)."""

from __future__ import annotations

from typing import Any

import kopf

from authyard_operator.admin_client import AdminApiError
from authyard_operator.clock import utcnow
from authyard_operator.constants import GROUP, VERSION
from authyard_operator.kube.client import KubeError
from authyard_operator.reconcile.identity_providers import refresh_identity_providers
from authyard_operator.reconcile.usage import IndexedClient, authserver_of, refresh_usage
from authyard_operator.settings import OperatorSettings

# Read once at import: kopf's decorators need the interval when handlers are registered.
USAGE_SECONDS = OperatorSettings().usage_interval.total_seconds()


@kopf.index(GROUP, VERSION, "oauthclients")
def clients_by_authserver(body: kopf.Body, **_: Any) -> dict[tuple[str, str], IndexedClient]:
    """Kept by kopf from the OAuthClient watch it already has: no list call per pass, and the status as last
    written (a pass compares against it and writes only what changed)."""
    return {authserver_of(dict(body)): IndexedClient.of(dict(body))}


@kopf.timer(GROUP, VERSION, "authservers", interval=USAGE_SECONDS, initial_delay=USAGE_SECONDS)
async def client_usage(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> None:
    meta = body["metadata"]
    key = (meta["namespace"], meta["name"])
    index: kopf.Index[tuple[str, str], IndexedClient] = kwargs["clients_by_authserver"]  # the index above
    clients = list(index.get(key, []))
    if not clients:
        return
    try:
        written = await refresh_usage(
            memo.kube, memo.admin, memo.settings.admin_url_template, dict(body), clients, utcnow()
        )
    except (AdminApiError, KubeError) as error:  # the next pass tries again; the status keeps what it had
        logger.warning("client usage of %s/%s not refreshed: %s", key[0], key[1], error)
        return
    if written:
        logger.debug("client usage of %s/%s: %d OAuthClient statuses updated", key[0], key[1], written)


@kopf.timer(GROUP, VERSION, "authservers", interval=USAGE_SECONDS, initial_delay=USAGE_SECONDS)
async def identity_provider_health(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """The upstreams' health, read from the server on the same period as usage."""
    meta = body["metadata"]
    try:
        await refresh_identity_providers(
            memo.kube, memo.admin, memo.settings.admin_url_template, dict(body), utcnow()
        )
    except (AdminApiError, KubeError) as error:  # the next pass tries again; the status keeps what it had
        logger.warning("identity providers of %s/%s not checked: %s", meta["namespace"], meta["name"], error)
