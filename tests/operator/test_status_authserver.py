"""The AuthServer's status and conditions as pure functions (what kubectl, kstatus, Argo CD and Flux read)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jsonschema
from authyard_operator.keys import plan_keys
from authyard_operator.reconcile.authserver import server_deployment_owner
from authyard_operator.sizing import size_pools
from authyard_operator.spec import AuthServerStatus
from authyard_operator.spec.authserver import AuthServerSpec
from authyard_operator.spec.rules import parse_spec
from authyard_operator.status.authserver import (
    DeploymentState,
    failed_status,
    invalid_spec_status,
    reconciled_status,
)

from tests.operator.support import NOW, SPECS, schema_of, spec_of, strict


def conditions_of(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


KEY_PLAN = plan_keys(None, None, spec_of({}).tokens, NOW)


def reconciled(
    deployment: DeploymentState | None, previous: dict[str, Any] | None = None, now=NOW
) -> dict[str, Any]:
    spec = spec_of(SPECS["direct"])
    return reconciled_status(
        generation=3,
        issuer="https://auth.example.com",
        sizing=size_pools(spec),
        key_plan=KEY_PLAN,
        tokens=spec.tokens,
        deployment=deployment,
        now=now,
        previous=previous,
    )


def assert_fits_the_crd(status: dict[str, Any]) -> None:
    status_schema = strict(schema_of("AuthServer"))["properties"]["status"]
    jsonschema.validate(status, status_schema)
    AuthServerStatus.model_validate(status)


def test_deployment_state_from_an_object() -> None:
    deployment = {
        "metadata": {"generation": 4},
        "spec": {"replicas": 3},
        "status": {"observedGeneration": 4, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3},
    }
    assert DeploymentState.of(deployment).rolled_out
    deployment["status"]["observedGeneration"] = 3
    assert not DeploymentState.of(deployment).rolled_out
    assert not DeploymentState.of({"spec": {"replicas": 2}}).rolled_out


def test_ready_once_rolled_out() -> None:
    status = reconciled(
        DeploymentState(desired=3, replicas=3, ready=3, updated=3, available=3, up_to_date=True)
    )
    conditions = conditions_of(status)
    assert conditions["Ready"]["status"] == "True" and conditions["Ready"]["reason"] == "Available"
    assert conditions["Ready"]["message"] == "3/3 replicas ready"
    assert conditions["Progressing"]["status"] == "False" and conditions["Degraded"]["status"] == "False"
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    assert status["observedGeneration"] == 3
    assert (status["replicas"], status["readyReplicas"]) == (3, 3)
    assert status["endpoints"]["token"] == "https://auth.example.com/token"
    assert status["endpoints"]["jwks"] == "https://auth.example.com/.well-known/jwks.json"
    assert (
        status["endpoints"]["metadata"] == "https://auth.example.com/.well-known/oauth-authorization-server"
    )
    assert status["database"] == {
        "mode": "direct",
        "budget": 100,
        "perPodPoolMax": 30,
        "perPodPoolMin": 7,
        "aggregateMax": 90,
    }
    assert status["signingKeys"]["nextRotation"] == "2026-12-22T12:00:00Z"
    assert_fits_the_crd(status)


def test_rolling_out_is_progressing() -> None:
    status = reconciled(DeploymentState(desired=3, replicas=4, ready=2, updated=1, up_to_date=True))
    conditions = conditions_of(status)
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("False", "RollingOut")
    assert conditions["Progressing"]["status"] == "True"
    assert "2/3 replicas ready" in conditions["Ready"]["message"]
    assert_fits_the_crd(status)
    assert conditions_of(reconciled(None))["Ready"]["reason"] == "Creating"


def test_transition_time_moves_only_when_the_status_does() -> None:
    ready = DeploymentState(desired=1, replicas=1, ready=1, updated=1, up_to_date=True)
    first = reconciled(ready)
    later = NOW + timedelta(minutes=5)
    again = reconciled(ready, previous=first, now=later)
    assert again == first  # nothing new: byte-identical status
    rolling = reconciled(
        DeploymentState(desired=1, replicas=2, ready=0, updated=1, up_to_date=True), first, later
    )
    assert conditions_of(rolling)["Ready"]["lastTransitionTime"] == "2026-11-22T12:05:00Z"
    assert conditions_of(rolling)["Degraded"]["lastTransitionTime"] == "2026-11-22T12:00:00Z"


def test_invalid_spec_is_ready_false_and_degraded() -> None:
    _, problems = parse_spec(AuthServerSpec, {"replicas": 2}, "auth")
    status = invalid_spec_status(5, problems, NOW)
    conditions = conditions_of(status)
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == ("False", "InvalidSpec")
    assert conditions["Degraded"]["status"] == "True"
    assert "spec.replicas" in conditions["Ready"]["message"]
    assert status["observedGeneration"] == 5
    assert_fits_the_crd(status)


def test_pool_budget_exceeded_keeps_the_last_good_figures() -> None:
    good = reconciled(DeploymentState(desired=3, replicas=3, ready=3, updated=3, up_to_date=True))
    sizing = size_pools(
        spec_of({"replicas": 50, "database": {**SPECS["direct"]["database"], "maxConnections": 20}})
    )
    status = failed_status(4, sizing.reason or "", sizing.message, NOW + timedelta(minutes=1), good)
    conditions = conditions_of(status)
    assert conditions["Ready"]["reason"] == "PoolBudgetExceeded"
    assert "spec.database.maxConnections" in conditions["Ready"]["message"]
    assert status["observedGeneration"] == 4
    assert status["database"] == good["database"] and status["issuer"] == good["issuer"]
    assert_fits_the_crd(status)


def test_only_the_server_deployment_of_an_authserver_reports_its_readiness() -> None:
    owner = {"apiVersion": "authyard.dev/v1alpha1", "kind": "AuthServer", "name": "auth", "uid": "u1",
             "controller": True}  # fmt: skip

    def deployment(name: str, *references: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": "platform", "ownerReferences": list(references)}}

    assert server_deployment_owner(deployment("auth", owner)) == owner
    assert server_deployment_owner(deployment("auth-pgbouncer", owner)) is None
    assert server_deployment_owner(deployment("auth", {**owner, "controller": False})) is None
    assert server_deployment_owner(deployment("auth", {**owner, "kind": "ReplicaSet"})) is None
    assert server_deployment_owner(deployment("auth")) is None
