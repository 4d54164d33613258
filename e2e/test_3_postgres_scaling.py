"""The production example: PostgreSQL behind PgBouncer, autoscaled. A throwaway PostgreSQL runs in the
namespace; the example is applied there unchanged except for its namespace.

Scaling: the HPA keeps minReplicas (3) even without metrics-server; raising minReplicas scales the server
Deployment out; turning autoscaling off removes the HPA and hands `replicas` back to the spec.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from e2e import support
from e2e.conftest import Cluster

pytestmark = pytest.mark.slow

NS = "platform-pg"
SERVER = "auth"
DB_PASSWORD = "authyard-e2e-only"  # noqa: S105 - a throwaway database inside the test namespace


def postgres_objects() -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": "postgres", "app.kubernetes.io/part-of": "authyard-e2e"}
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "auth-db", "namespace": NS},
            "stringData": {"url": f"postgresql+asyncpg://authyard:{DB_PASSWORD}@pg.{NS}.svc:5432/authyard"},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "pg", "namespace": NS},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "postgres",
                                "image": "postgres:16-alpine",
                                "env": [
                                    {"name": "POSTGRES_USER", "value": "authyard"},
                                    {"name": "POSTGRES_PASSWORD", "value": DB_PASSWORD},
                                    {"name": "POSTGRES_DB", "value": "authyard"},
                                ],
                                "args": ["-c", "max_connections=120"],
                                "ports": [{"containerPort": 5432}],
                                "readinessProbe": {
                                    "exec": {"command": ["pg_isready", "-U", "authyard"]},
                                    "periodSeconds": 3,
                                },
                            }
                        ]
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "pg", "namespace": NS},
            "spec": {"selector": labels, "ports": [{"port": 5432, "targetPort": 5432}]},
        },
    ]


@pytest.fixture(scope="module")
def production(cluster: Cluster, operator: dict[str, Any]) -> Iterator[dict[str, Any]]:
    cluster.ensure_namespace(NS)
    cluster.apply(postgres_objects())
    support.poll(
        lambda: (cluster.get("deployment", "pg", NS) or {}).get("status", {}).get("readyReplicas") == 1,
        timeout=300,
        what="PostgreSQL ready",
    )
    server = support.in_namespace(support.example("authserver-postgres-pgbouncer.yaml"), NS)
    cluster.apply([server])
    yield server
    if not os.environ.get("AUTHYARD_E2E_KEEP"):
        cluster.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=false", check=False)


def _deployment(cluster: Cluster, name: str) -> dict[str, Any]:
    return cluster.get("deployment", name, NS) or {}


def _ready_replicas(cluster: Cluster, name: str) -> int:
    return _deployment(cluster, name).get("status", {}).get("readyReplicas") or 0


def test_postgres_pgbouncer_authserver_becomes_ready(cluster: Cluster, production: dict[str, Any]) -> None:
    server = cluster.wait_ready("authserver", SERVER, NS, timeout=600)
    database = server["status"]["database"]
    assert database["mode"] == "pgbouncer"
    assert database["budget"] == 100
    assert database["aggregateMax"] <= 90  # 90% of the budget
    assert _ready_replicas(cluster, f"{SERVER}-pgbouncer") == 2
    hpa = cluster.get("hpa", SERVER, NS)
    assert hpa is not None and (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 20)
    support.poll(lambda: _ready_replicas(cluster, SERVER) >= 3, timeout=300, what="3 server pods ready")


def test_raising_min_replicas_scales_out(cluster: Cluster, production: dict[str, Any]) -> None:
    result = cluster.patch("authserver", SERVER, NS, {"spec": {"autoscaling": {"minReplicas": 4}}})
    assert result.returncode == 0, result.stderr
    support.poll(
        lambda: (cluster.get("hpa", SERVER, NS) or {}).get("spec", {}).get("minReplicas") == 4,
        timeout=120,
        what="HPA minReplicas 4",
    )
    support.poll(lambda: _ready_replicas(cluster, SERVER) >= 4, timeout=300, what="4 server pods ready")
    cluster.wait_ready("authserver", SERVER, NS, timeout=300)


def test_autoscaling_off_hands_replicas_back_to_the_spec(
    cluster: Cluster, production: dict[str, Any]
) -> None:
    patch = {"spec": {"autoscaling": {"enabled": False}, "replicas": 2}}
    result = cluster.patch("authserver", SERVER, NS, patch)
    assert result.returncode == 0, result.stderr
    cluster.wait_gone("hpa", SERVER, NS, timeout=120)
    support.poll(
        lambda: (
            _deployment(cluster, SERVER).get("spec", {}).get("replicas") == 2
            and _ready_replicas(cluster, SERVER) == 2
        ),
        timeout=300,
        what="server Deployment at 2 replicas",
    )
    server = cluster.wait_ready("authserver", SERVER, NS, timeout=300)
    assert server["status"]["replicas"] == 2


def test_an_impossible_budget_is_reported_not_crashed(cluster: Cluster, production: dict[str, Any]) -> None:
    """maxConnections 1 cannot fit two PgBouncer instances: Ready=False with a reason, pods keep serving."""
    result = cluster.patch("authserver", SERVER, NS, {"spec": {"database": {"maxConnections": 1}}})
    assert result.returncode == 0, result.stderr

    def failed() -> dict[str, Any] | None:
        server = cluster.get("authserver", SERVER, NS) or {}
        ready = support.condition(server, "Ready") or {}
        observed = server.get("status", {}).get("observedGeneration") == server["metadata"]["generation"]
        return server if observed and ready.get("status") == "False" else None

    server = support.poll(failed, timeout=120, what="Ready=False for the impossible budget")
    assert support.condition(server, "Ready")["reason"]  # type: ignore[index]
    assert _ready_replicas(cluster, SERVER) == 2
