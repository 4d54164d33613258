"""The AuthServer's status as a pure function of what a reconcile found: conditions (Ready, Progressing,
Degraded), observedGeneration, replicas, endpoints, pool figures, the capacity plan and signing keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from authyard_operator.capacity import CapacityPlan
from authyard_operator.endpoints import endpoint_urls
from authyard_operator.keys import KeyPlan, keys_status
from authyard_operator.sizing import PoolSizing
from authyard_operator.spec.authserver import Tokens
from authyard_operator.spec.rules import Problem
from authyard_operator.status.conditions import DEGRADED, PROGRESSING, READY, carried_over, condition, find


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
    ] + [kept for kept in previous if kept.get("type") == IDENTITY_PROVIDERS]  # the health pass's own


# Whether every upstream identity provider can be used now (``identity_providers_status``). Its own condition,
# written by the health pass and carried by every other status write: an upstream that is down degrades
# sign-in through it only, never the AuthServer's readiness (local accounts and the other upstreams work).
IDENTITY_PROVIDERS = "IdentityProvidersAvailable"


def identity_providers_status(
    previous: dict[str, Any], generation: int, health: dict[str, Any] | None, now: datetime
) -> dict[str, Any]:
    """The AuthServer's status with ``identityProviders`` (each upstream: healthy, and why not) and the
    IdentityProvidersAvailable condition from the server's admin API answer; without providers (None, or
    none configured) both are removed."""
    conditions = [c for c in previous.get("conditions") or [] if c.get("type") != IDENTITY_PROVIDERS]
    providers = (health or {}).get("providers") or []
    if not providers:
        return {**previous, "conditions": conditions, "identityProviders": None}
    listed = [
        {
            "name": str(each["name"]),
            "kind": str(each.get("kind", "")),
            "healthy": bool(each.get("healthy")),
            **({"message": str(each["detail"])[:300]} if each.get("detail") else {}),
            "lastChecked": str(each.get("checked_at", "")),
        }
        for each in providers
    ]
    down = [str(each["name"]) for each in listed if not each["healthy"]]
    if down:
        message = f"cannot be used now: {', '.join(down)} (see status.identityProviders)"
        value = (False, "UpstreamUnavailable", message)
    else:
        value = (True, "AllAvailable", f"{len(listed)} identity provider(s) can be used")
    available = condition(IDENTITY_PROVIDERS, *value, generation, now, previous.get("conditions") or [])
    return {**previous, "conditions": [*conditions, available], "identityProviders": listed}


def failed_status(
    generation: int, reason: str, message: str, now: datetime, previous: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A spec the operator cannot act on (InvalidSpec, PoolBudgetExceeded, a missing Secret, an apply error).
    Children already running are left alone; the figures of the last good reconcile stay in status."""
    before = previous or {}
    status = carried_over(before)
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
    degraded = find(conditions, DEGRADED)
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
    capacity: CapacityPlan | None = None,
) -> dict[str, Any]:
    """The status after every child was applied: Ready once the Deployment has rolled out."""
    ready, progressing = _readiness(deployment)
    message = sizing.message if capacity is None else f"{capacity.message}; {sizing.message}"
    degraded = (False, "AsExpected", message)
    previous_conditions = (previous or {}).get("conditions", [])
    status = {
        "observedGeneration": generation,
        "conditions": _conditions(ready, progressing, degraded, generation, now, previous_conditions),
        "issuer": issuer,
        "endpoints": endpoint_urls(issuer),
        "replicas": deployment.replicas if deployment else 0,
        "readyReplicas": deployment.ready if deployment else 0,
        "database": sizing.status(),
        "signingKeys": keys_status(key_plan, tokens),
    }
    plan = capacity.status(sizing) if capacity is not None else None
    if plan is not None or (previous or {}).get("capacity") is not None:
        status["capacity"] = capacity_status(previous, plan)
    return status


def capacity_status(previous: dict[str, Any] | None, plan: dict[str, Any] | None) -> dict[str, Any] | None:
    """status.capacity as a merge patch over the previous one: a figure the plan no longer has (a binding
    limit that stopped binding, maxCores removed) is deleted, not left behind; None deletes the plan."""
    before = (previous or {}).get("capacity") or {}
    if plan is None:
        return None
    return {**{key: None for key in before if key not in plan}, **plan}
