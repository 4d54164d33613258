"""OAuthClient handlers: register on every change and on a timer; unregister behind a finalizer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import kopf

from authyard_operator.clock import utcnow
from authyard_operator.constants import API_VERSION, GROUP, VERSION
from authyard_operator.handlers.common import finish, guarded_reconcile, post_events
from authyard_operator.kube.client import KubeError
from authyard_operator.reconcile.oauthclient import UnregisterPending, api_failure, jwks_config_map
from authyard_operator.reconcile.outcome import Outcome
from authyard_operator.settings import OperatorSettings
from authyard_operator.status import write

KIND = "OAuthClient"
PLURAL = "oauthclients"
# Read once at import: kopf's decorators need the interval when handlers are registered.
RESYNC_SECONDS = OperatorSettings().client_resync_interval.total_seconds()


async def _reconcile(body: kopf.Body, memo: kopf.Memo) -> Outcome:
    return await guarded_reconcile(
        KIND, body, memo, lambda current: memo.clients.reconcile(current, utcnow()), api_failure
    )


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def register(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    outcome = await _reconcile(body, memo)
    finish(body, patch, outcome, retry=not outcome.permanent_failure)


@kopf.timer(GROUP, VERSION, PLURAL, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
async def resync(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Restores a deleted or edited credentials Secret and re-asserts the registration."""
    outcome = await _reconcile(body, memo)
    finish(body, patch, outcome, retry=False)


@kopf.index(GROUP, VERSION, PLURAL)
def jwks_config_maps(
    spec: kopf.Spec, name: str, namespace: str | None, **_: Any
) -> dict[tuple[str, str], str] | None:
    """OAuthClients by the ConfigMap that holds their public keys (authentication.jwksConfigMapRef)."""
    config_map = jwks_config_map(dict(spec))
    return {(namespace, config_map): name} if config_map and namespace else None


@kopf.on.event("", "v1", "configmaps")
async def config_map_changed(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **kwargs: Any) -> None:
    """A client's JWKS ConfigMap changed or went: reconcile that client now, so that the AuthServer has the
    new keys (or the client says Ready=False) without waiting for the resync."""
    index: kopf.Index[tuple[str, str], str] = kwargs["jwks_config_maps"]  # kopf passes indexes by name
    namespace, config_map = body["metadata"]["namespace"], body["metadata"]["name"]
    for name in set(index.get((namespace, config_map), [])):
        try:
            client = await memo.kube.get(API_VERSION, KIND, namespace, name)
            if client is None or client["metadata"].get("deletionTimestamp"):
                continue
            outcome = await _reconcile(kopf.Body(client), memo)
            previous = client.get("status") or {}
            status = {**previous, **outcome.status}
            change = write.StatusChange(API_VERSION, KIND, namespace, name, previous, status)
            await write.patch_if_changed(memo.kube, change)
            post_events(kopf.Body(client), outcome)
        except KubeError as error:  # the resync reconciles it instead
            logger.warning(
                "OAuthClient %s/%s not reconciled after its ConfigMap changed: %s", namespace, name, error
            )


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def unregister(body: kopf.Body, memo: kopf.Memo, runtime: timedelta, **_: Any) -> None:
    """Delete the registration behind the finalizer; kopf retries while the AuthServer is unreachable."""
    try:
        outcome = await memo.clients.unregister(dict(body), runtime, memo.settings.unregister_timeout)
    except UnregisterPending as pending:
        raise kopf.TemporaryError(pending.message, delay=pending.retry_after) from None
    post_events(body, outcome)
    meta = body["metadata"]
    memo.locks.forget(KIND, meta["namespace"], meta["name"])
