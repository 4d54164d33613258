"""The real operator (kopf + authyard_operator.main) against the emulated API: an AuthServer sized from a
throughput target (spec.capacity). The arithmetic behind each figure is in test_capacity.py."""

from __future__ import annotations

from typing import Any

import pytest

from harness.kube import AUTHSERVERS, custom_resource
from harness.kube_emulator import AuthyardEmulator
from harness.polling import wait_for
from tests.operator.kubeapi import KubeApi

NS = "platform"
PATH = f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers"
HPAS = "autoscaling/v2/horizontalpodautoscalers"
DATABASE = {"urlSecretRef": {"name": "auth-db", "key": "url"}, "maxConnections": 200}


def _status(emulator: AuthyardEmulator) -> dict[str, Any]:
    return (emulator.get(AUTHSERVERS, NS, "auth") or {}).get("status") or {}


def _ready(emulator: AuthyardEmulator) -> dict[str, Any]:
    return next((c for c in _status(emulator).get("conditions", []) if c["type"] == "Ready"), {})


def _pool_max(emulator: AuthyardEmulator) -> str | None:
    return (
        (emulator.get("v1/configmaps", NS, "auth-config") or {})
        .get("data", {})
        .get("AUTHSERVER_DB_POOL_MAX_SIZE")
    )


@pytest.fixture
async def running(operator, emulator: AuthyardEmulator, kube: KubeApi):  # type: ignore[no-untyped-def]
    emulator.create_namespace(NS)
    yield await operator("authyard_operator.main")


async def test_a_capacity_target_becomes_the_hpa_the_pods_and_status(
    running, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    # 10,000 tokens/s at 1,500 per pod: 7 pods needed, 8 with 1.2 headroom, 375m CPU each.
    spec = {
        "database": DATABASE,
        "workers": 2,
        "capacity": {"peakTokensPerSecond": 10000, "perPodTokensPerSecond": 1500},
    }
    await kube.post(PATH, custom_resource("AuthServer", "auth", NS, spec))
    hpa = await wait_for(lambda: emulator.get(HPAS, NS, "auth"), timeout=20, message="no HPA")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 8)
    cpu = hpa["spec"]["metrics"][0]["resource"]
    assert cpu["name"] == "cpu" and cpu["target"]["averageUtilization"] == 100
    assert [metric["type"] for metric in hpa["spec"]["metrics"]] == ["Resource", "Resource"]
    deployment = emulator.get("apps/v1/deployments", NS, "auth")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    assert server["resources"]["requests"]["cpu"] == "375m"
    assert _pool_max(emulator) == "11"  # floor(0.9 x 200 / (8 pods x 2 workers))

    capacity = await wait_for(lambda: _status(emulator).get("capacity"), timeout=20)
    assert capacity["reachable"] is True and capacity["boundsFrom"] == "plan"
    assert (capacity["replicasNeeded"], capacity["replicasWithHeadroom"]) == (7, 8)
    assert (capacity["minReplicas"], capacity["maxReplicas"], capacity["cpuPerPod"]) == (3, 8, "375m")
    assert (capacity["connections"], capacity["connectionBudget"]) == (176, 200)
    assert "replicasNeeded = ceil(peak / perPod) = ceil(10000 / 1500) = 7" in capacity["arithmetic"]
    emulator.mark_deployment_ready(NS, "auth")
    await wait_for(lambda: _ready(emulator).get("status") == "True", timeout=20, message="not Ready")

    # 2 cores hold floor(2000m / 375m) = 5 pods, fewer than the 7 the peak needs.
    await kube.merge(f"{PATH}/auth", {"spec": {"capacity": {"maxCores": 2}}})
    ready = await wait_for(
        lambda: _ready(emulator) if _ready(emulator).get("reason") == "CapacityUnreachable" else None,
        timeout=20,
        message=lambda: f"not CapacityUnreachable: {_ready(emulator)}",
    )
    assert ready["status"] == "False"
    assert "needs 7 replicas" in ready["message"] and "spec.capacity.maxCores allows 5" in ready["message"]
    capacity = _status(emulator)["capacity"]
    assert capacity["reachable"] is False and capacity["bindingLimit"] == "spec.capacity.maxCores"
    assert capacity["replicasWithinCores"] == 5
    await wait_for(lambda: emulator.events(NS, name="auth", reason="CapacityUnreachable"), message="no event")
    assert emulator.get(HPAS, NS, "auth")["spec"]["maxReplicas"] == 8, "an unreachable plan applies nothing"

    # Explicit autoscaling bounds win; without maxCores nothing binds any more and its figures go.
    await kube.merge(
        f"{PATH}/auth",
        {
            "spec": {
                "capacity": {"maxCores": None},
                "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 12},
            }
        },
    )
    await wait_for(
        lambda: emulator.get(HPAS, NS, "auth")["spec"]["maxReplicas"] == 12, timeout=20, message="bounds"
    )
    hpa = emulator.get(HPAS, NS, "auth")
    assert hpa["spec"]["minReplicas"] == 2
    # The target follows the explicit maximum: floor(10000 / 12 x 1.2) = 1000/s, 66% of 1500.
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 66
    assert _pool_max(emulator) == "7"  # floor(180 / (12 x 2))
    capacity = await wait_for(
        lambda: (lambda c: c if c.get("boundsFrom") == "spec.autoscaling" else None)(
            _status(emulator).get("capacity") or {}
        ),
        timeout=20,
    )
    assert capacity["reachable"] is True and capacity["targetRequestsPerSecondPerPod"] == 1000
    assert "bindingLimit" not in capacity and "replicasWithinCores" not in capacity

    # Neither a target nor autoscaling: the HPA goes, the Deployment has replicas, the plan leaves status.
    await kube.merge(f"{PATH}/auth", {"spec": {"capacity": None, "autoscaling": {"enabled": False}}})
    await wait_for(lambda: emulator.get(HPAS, NS, "auth") is None, timeout=20, message="HPA left behind")
    await wait_for(lambda: "capacity" not in _status(emulator), timeout=20, message="stale status.capacity")
    assert emulator.get("apps/v1/deployments", NS, "auth")["spec"]["replicas"] == 1
