"""The OAuthClient's status as a pure function of what a reconcile found: one Ready condition, the client_id,
the credentials Secret, the AuthServer it is registered with and when its client secret last rotated; and,
from the AuthServer's admin API, its token usage and the Unused condition (``usage_status``)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from authyard_operator.clock import parse_rfc3339, rfc3339
from authyard_operator.status.conditions import READY, carried_over, condition, is_ready

UNUSED = "Unused"


def _with_ready(ready: dict[str, Any], previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ready first, then the other conditions as they were (Unused is written by the usage refresh: a status
    merge patch replaces the whole list, so a registration must carry it over)."""
    return [ready, *(c for c in previous if c.get("type") != READY)]


def registered_status(
    *,
    generation: int,
    client_id: str,
    secret_name: str | None,
    authserver: str,
    last_rotation: str | None,
    now: datetime,
    previous: dict[str, Any],
    trusted: bool = False,
) -> dict[str, Any]:
    """Registered with ``authserver`` (namespace/name); the last rotation's date stays until the next one."""
    message = f"registered with AuthServer {authserver} as {client_id}"
    return {
        "observedGeneration": generation,
        "clientId": client_id,
        "secretName": secret_name,
        "authServer": authserver,
        "lastRotation": last_rotation or previous.get("lastRotation"),
        "trusted": trusted,
        "conditions": _with_ready(
            condition(READY, True, "Registered", message, generation, now, previous.get("conditions") or []),
            previous.get("conditions") or [],
        ),
    }


def newly_registered(previous: dict[str, Any], generation: int) -> bool:
    """Whether a registration is news (worth an event): a new generation, or Ready after not being Ready."""
    return previous.get("observedGeneration") != generation or not is_ready(previous)


def failed_status(
    generation: int, reason: str, message: str, now: datetime, previous: dict[str, Any]
) -> dict[str, Any]:
    """Ready=False with the reason; the registration's figures of the last good reconcile stay."""
    return {
        **carried_over(previous),
        "observedGeneration": generation,
        "conditions": _with_ready(
            condition(READY, False, reason, message, generation, now, previous.get("conditions") or []),
            previous.get("conditions") or [],
        ),
    }


def api_error_status(previous: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes API error mid-reconcile (most often a 409: the Secret changed under us) is retried within
    seconds with a fresh read: the status stays as it was rather than flap Ready."""
    return dict(previous)


def usage_fields(reported: dict[str, Any] | None) -> dict[str, Any]:
    """status.usage from the admin API's usage of the client (None: nothing recorded: no token yet)."""
    reported = reported or {}
    usage: dict[str, Any] = {
        "tokensLastHour": int(reported.get("tokens_last_hour") or 0),
        "tokensLastDay": int(reported.get("tokens_last_day") or 0),
    }
    if reported.get("last_token_at"):
        usage["lastTokenAt"] = rfc3339(parse_rfc3339(reported["last_token_at"]))
    error = reported.get("last_error")
    if error:
        usage["lastError"] = {"code": str(error["code"]), "at": rfc3339(parse_rfc3339(error["at"]))}
    return usage


def unused_condition(
    last_token_at: datetime | None,
    created: datetime,
    days: int,
    generation: int,
    now: datetime,
    previous: list[dict[str, Any]],
) -> dict[str, Any]:
    """Unused=True once ``days`` passed without a token: since the last one, or since the client was created
    when it never got one."""
    since = last_token_at or created
    stale = since <= now - timedelta(days=days)
    if last_token_at is None:
        reason = "NeverUsed" if stale else "NotUsedYet"
        message = f"no token since it was created at {rfc3339(created)}"
    else:
        reason = "NoRecentToken" if stale else "Used"
        message = f"last token at {rfc3339(last_token_at)}"
    message += f", more than {days} days ago" if stale else f"; Unused after {days} days without a token"
    return condition(UNUSED, stale, reason, message, generation, now, previous)


def usage_status(
    current: dict[str, Any],
    reported: dict[str, Any] | None,
    created: datetime,
    days: int,
    generation: int,
    now: datetime,
) -> dict[str, Any]:
    """The part of the status the usage refresh writes: ``usage`` and the conditions with Unused replaced (a
    key of ``usage`` no longer reported is set to None, which a merge patch deletes)."""
    usage = usage_fields(reported)
    before = current.get("usage") or {}
    gone = {key: None for key in before if key not in usage}
    last = parse_rfc3339(usage["lastTokenAt"]) if "lastTokenAt" in usage else None
    conditions = current.get("conditions") or []
    unused = unused_condition(last, created, days, generation, now, conditions)
    others = [c for c in conditions if c.get("type") != UNUSED]
    return {"usage": {**gone, **usage}, "conditions": [*others, unused]}
