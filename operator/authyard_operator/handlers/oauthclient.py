"""OAuthClient handlers: register on every change and on a timer; unregister behind a finalizer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import kopf

from authyard_operator.admin_client import AdminApiError
from authyard_operator.clock import utcnow
from authyard_operator.constants import GROUP, VERSION
from authyard_operator.handlers.common import finish, guarded_reconcile, post_events
from authyard_operator.kube.client import KubeError
from authyard_operator.reconcile.oauthclient import client_id_for
from authyard_operator.reconcile.outcome import Event, Outcome
from authyard_operator.resources.meta import Names
from authyard_operator.resources.secrets import admin_token
from authyard_operator.retry_after import delay as retry_delay
from authyard_operator.settings import OperatorSettings
from authyard_operator.spec.oauthclient import OAuthClientSpec
from authyard_operator.spec.rules import parse_spec

KIND = "OAuthClient"
PLURAL = "oauthclients"
# Read once at import: kopf's decorators need the interval when handlers are registered.
RESYNC_SECONDS = OperatorSettings().client_resync_interval.total_seconds()


def _api_error(error: KubeError, body: dict[str, Any]) -> Outcome:
    # A 409 (the Secret changed under us) or an API hiccup: retry soon with a fresh read.
    message = f"Kubernetes API error: {error}"
    return Outcome(
        dict(body.get("status") or {}),
        [Event("Warning", "ApiError", message)],
        retry_after=retry_delay(5, error.retry_after),
    )


async def _reconcile(body: kopf.Body, memo: kopf.Memo) -> Outcome:
    return await guarded_reconcile(
        KIND, body, memo, lambda current: memo.clients.reconcile(current, utcnow()), _api_error
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


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def unregister(body: kopf.Body, memo: kopf.Memo, runtime: timedelta, **_: Any) -> None:
    """Delete the registration. Never strands the deletion: when the AuthServer (or its namespace) is gone,
    or stays unreachable past ``unregister_timeout``, the finalizer is released with an event."""
    meta = body["metadata"]
    spec, _problems = parse_spec(OAuthClientSpec, body.get("spec"))
    if spec is None:
        return  # never valid, so never registered
    namespace = spec.auth_server_ref.namespace or meta["namespace"]
    name = spec.auth_server_ref.name
    try:
        authserver = await memo.kube.get(f"{GROUP}/{VERSION}", "AuthServer", namespace, name)
        admin_name = Names(name).admin
        admin_secret = await memo.kube.get("v1", "Secret", namespace, admin_name) if authserver else None
    except KubeError as error:
        delay = retry_delay(10, error.retry_after)
        raise kopf.TemporaryError(f"Kubernetes API error: {error}", delay=delay) from None
    if authserver is None or authserver["metadata"].get("deletionTimestamp") or admin_secret is None:
        post_events(
            body,
            Outcome(
                {},
                [
                    Event(
                        "Normal",
                        "AuthServerGone",
                        f"AuthServer {namespace}/{name} is gone; nothing to unregister",
                    )
                ],
            ),
        )
        return
    settings: OperatorSettings = memo.settings
    base_url = settings.admin_url_template.format(name=name, namespace=namespace).rstrip("/")
    client_id = client_id_for(meta["namespace"], meta["name"])
    try:
        await memo.admin.delete(base_url, admin_token(admin_secret), client_id)
    except AdminApiError as error:
        if runtime >= settings.unregister_timeout:
            message = f"gave up unregistering {client_id} after {runtime}: {error.message}"
            post_events(body, Outcome({}, [Event("Warning", "UnregisterAbandoned", message)]))
            return
        raise kopf.TemporaryError(error.message, delay=retry_delay(10, error.retry_after)) from None
    memo.locks.forget(KIND, meta["namespace"], meta["name"])
