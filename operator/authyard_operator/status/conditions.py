"""metav1.Conditions, as every kind writes them.

A condition's ``lastTransitionTime`` changes only when its status does, so a reconcile that finds nothing
new writes an identical status (no watch event, no churn for GitOps tools).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from authyard_operator.clock import rfc3339

READY, PROGRESSING, DEGRADED = "Ready", "Progressing", "Degraded"


def condition(
    kind: str,
    status: bool,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
    previous: list[dict[str, Any]],
) -> dict[str, Any]:
    """A metav1.Condition, keeping the previous lastTransitionTime while its status is unchanged."""
    value = "True" if status else "False"
    before = find(previous, kind)
    unchanged = before is not None and before.get("status") == value and "lastTransitionTime" in before
    since = before["lastTransitionTime"] if before is not None and unchanged else rfc3339(now)
    return {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": since,
    }


def find(conditions: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == kind), None)


def is_ready(status: dict[str, Any] | None) -> bool:
    """Whether a status (ours or another object's) says Ready=True."""
    conditions = (status or {}).get("conditions") or []
    return any(c.get("type") == READY and c.get("status") == "True" for c in conditions)


def carried_over(previous: dict[str, Any]) -> dict[str, Any]:
    """What a failed reconcile keeps of the last status: every figure it reported, but neither its conditions
    nor its observedGeneration, which the failure rewrites."""
    return {key: value for key, value in previous.items() if key not in {"conditions", "observedGeneration"}}
