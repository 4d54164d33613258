"""The OAuthClient's status as a pure function of what a reconcile found: one Ready condition, the client_id,
the credentials Secret, the AuthServer it is registered with and when its client secret last rotated."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from authyard_operator.status.conditions import READY, carried_over, condition, is_ready


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
        "conditions": [
            condition(READY, True, "Registered", message, generation, now, previous.get("conditions") or [])
        ],
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
        "conditions": [
            condition(READY, False, reason, message, generation, now, previous.get("conditions") or [])
        ],
    }


def api_error_status(previous: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes API error mid-reconcile (most often a 409: the Secret changed under us) is retried within
    seconds with a fresh read: the status stays as it was rather than flap Ready."""
    return dict(previous)
