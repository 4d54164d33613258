"""OAuthClient handlers: register on every change and on a timer; unregister behind a finalizer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import kopf

from authyard_operator.clock import utcnow
from authyard_operator.constants import GROUP, VERSION
from authyard_operator.handlers.common import finish, guarded_reconcile, post_events
from authyard_operator.reconcile.oauthclient import UnregisterPending, api_failure
from authyard_operator.reconcile.outcome import Outcome
from authyard_operator.settings import OperatorSettings

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
