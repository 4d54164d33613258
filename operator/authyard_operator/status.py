"""The AuthServer's status as a pure function of what a reconcile found: conditions (Ready, Progressing,
Degraded — what kstatus, Argo CD and Flux read), observedGeneration, replicas, endpoints, pool figures and
signing keys.

A condition's ``lastTransitionTime`` changes only when its status does, so a reconcile that finds nothing
new writes an identical status (no watch event, no churn for GitOps tools).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from authyard_operator.clock import rfc3339
from authyard_operator.endpoints import endpoint_urls
from authyard_operator.keys import KeyPlan, keys_status
from authyard_operator.sizing import PoolSizing
from authyard_operator.spec.authserver import Tokens
from authyard_operator.spec.rules import Problem

READY, PROGRESSING, DEGRADED = "Ready", "Progressing", "Degraded"


@dataclass(frozen=True)
class DeploymentState:
    """The parts of the server Deployment's status that readiness depends on."""

    desired: int
    replicas: int = 0
    ready: int = 0
    updated: int = 0
    available: int = 0
    up_to_date: bool = False  # the Deployment controller has seen its latest spec

    @classmethod
    def of(cls, deployment: dict[str, Any]) -> DeploymentState:
        spec, status = deployment.get("spec", {}), deployment.get("status") or {}
        generation = deployment.get("metadata", {}).get("generation", 0)
        return cls(
            desired=spec.get("replicas", status.get("replicas", 1)),
            replicas=status.get("replicas", 0),
            ready=status.get("readyReplicas", 0),
            updated=status.get("updatedReplicas", 0),
            available=status.get("availableReplicas", 0),
            up_to_date=status.get("observedGeneration", 0) >= generation,
        )

    @property
    def rolled_out(self) -> bool:
        return self.up_to_date and self.updated >= self.desired and self.ready >= self.desired >= 1


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
    before = next((c for c in previous if c.get("type") == kind), None)
    transitioned = before is None or before.get("status") != value or "lastTransitionTime" not in before
    return {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": rfc3339(now) if transitioned else before["lastTransitionTime"],  # type: ignore[index]  # before exists when not transitioned
    }


def _conditions(
    ready: tuple[bool, str, str],
    progressing: tuple[bool, str, str],
    degraded: tuple[bool, str, str],
    generation: int,
    now: datetime,
    previous: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    return [
        condition(kind, *values, generation, now, previous)
        for kind, values in ((READY, ready), (PROGRESSING, progressing), (DEGRADED, degraded))
    ]


def failed_status(
    generation: int, reason: str, message: str, now: datetime, previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A spec the operator cannot act on (InvalidSpec, PoolBudgetExceeded, a missing Secret, an apply error).
    Children already running are left alone; the figures of the last good reconcile stay in status."""
    before = previous or {}
    status = {key: value for key, value in before.items() if key not in {"conditions", "observedGeneration"}}
    status["observedGeneration"] = generation
    status["conditions"] = _conditions(
        (False, reason, message), (False, reason, message), (True, reason, message),
        generation, now, before.get("conditions", []),
    )  # fmt: skip
    return status


def invalid_spec_status(
    generation: int, problems: list[Problem], now: datetime, previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    return failed_status(generation, "InvalidSpec", "; ".join(map(str, problems)), now, previous)


def _readiness(deployment: DeploymentState | None) -> tuple[tuple[bool, str, str], tuple[bool, str, str]]:
    """(Ready, Progressing) from the server Deployment's rollout."""
    if deployment is None:
        waiting = "waiting for the Deployment"
        return (False, "Creating", waiting), (True, "Creating", waiting)
    if deployment.rolled_out:
        message = f"{deployment.ready}/{deployment.desired} replicas ready"
        return (True, "Available", message), (False, "Complete", message)
    message = f"{deployment.ready}/{deployment.desired} replicas ready, {deployment.updated} updated"
    return (False, "RollingOut", message), (True, "RollingOut", message)


def with_deployment_state(
    previous: dict[str, Any], generation: int, deployment: DeploymentState, now: datetime
) -> dict[str, Any] | None:
    """The status after the Deployment's rollout moved on; None when a full reconcile must decide instead
    (the spec changed since the last one, or it failed: its reason must not be overwritten)."""
    conditions = previous.get("conditions") or []
    degraded = next((c for c in conditions if c.get("type") == DEGRADED), None)
    if (
        previous.get("observedGeneration") != generation
        or degraded is None
        or degraded.get("status") != "False"
    ):
        return None
    ready, progressing = _readiness(deployment)
    degraded_values = (False, degraded.get("reason", "AsExpected"), degraded.get("message", ""))
    return {
        **previous,
        "conditions": _conditions(ready, progressing, degraded_values, generation, now, conditions),
        "replicas": deployment.replicas,
        "readyReplicas": deployment.ready,
    }


def reconciled_status(
    *,
    generation: int,
    issuer: str,
    sizing: PoolSizing,
    key_plan: KeyPlan,
    tokens: Tokens,
    deployment: DeploymentState | None,
    now: datetime,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The status after every child was applied: Ready once the Deployment has rolled out."""
    ready, progressing = _readiness(deployment)
    degraded = (False, "AsExpected", sizing.message)
    previous_conditions = (previous or {}).get("conditions", [])
    return {
        "observedGeneration": generation,
        "conditions": _conditions(ready, progressing, degraded, generation, now, previous_conditions),
        "issuer": issuer,
        "endpoints": endpoint_urls(issuer),
        "replicas": deployment.replicas if deployment else 0,
        "readyReplicas": deployment.ready if deployment else 0,
        "database": sizing.status(),
        "signingKeys": keys_status(key_plan, tokens),
    }
