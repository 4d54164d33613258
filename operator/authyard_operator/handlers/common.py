"""What every handler does with an Outcome: its status to ``status.write``, its events and retry to kopf."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import kopf

from authyard_operator import metrics
from authyard_operator.kube.client import KubeError
from authyard_operator.reconcile.outcome import Outcome
from authyard_operator.status import write


def post_events(body: kopf.Body, outcome: Outcome) -> None:
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


def finish(body: kopf.Body, patch: kopf.Patch, outcome: Outcome, *, retry: bool = True) -> None:
    """Write the status, post the events, and ask kopf to come back when the outcome wants it."""
    write.stage(patch, outcome.status)
    post_events(body, outcome)
    if retry and outcome.retry_after is not None:
        raise kopf.TemporaryError(_first_warning(outcome), delay=outcome.retry_after)


def _first_warning(outcome: Outcome) -> str:
    warning = next((event for event in outcome.events if event.type == "Warning"), None)
    return warning.message if warning else "waiting"


async def guarded_reconcile(
    kind: str,
    body: kopf.Body,
    memo: kopf.Memo,
    reconcile: Callable[[dict[str, Any]], Awaitable[Outcome]],
    on_api_error: Callable[[KubeError, dict[str, Any]], Outcome],
) -> Outcome:
    """One reconcile at a time per object and a few per kind (``reconcile_slots``), timed and counted once
    it runs; a Kubernetes API error becomes an outcome."""
    meta = body["metadata"]
    async with (
        memo.locks.of(kind, meta["namespace"], meta["name"]),
        memo.slots.of(kind),
        measured(kind) as result,
    ):
        try:
            outcome = await reconcile(dict(body))
        except KubeError as error:
            outcome = on_api_error(error, dict(body))
        if outcome.failed:
            result["value"] = "failure"
        return outcome


@asynccontextmanager
async def measured(kind: str) -> AsyncIterator[dict[str, str]]:
    """Times a reconcile and counts its result (set ``result['value']``; an exception counts as error)."""
    started = time.perf_counter()
    result = {"value": "success"}
    try:
        yield result
    except Exception:
        result["value"] = "error"
        raise
    finally:
        metrics.RECONCILES.labels(kind, result["value"]).inc()
        metrics.RECONCILE_DURATION.labels(kind).observe(time.perf_counter() - started)
