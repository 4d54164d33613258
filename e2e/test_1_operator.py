"""The operator as the chart installs it: two ready replicas, one leader holding the Lease, and a failover
when the leader goes away."""

from __future__ import annotations

from typing import Any

from e2e import support
from e2e.conftest import Cluster

NS = support.OPERATOR_NAMESPACE


def _holder(cluster: Cluster, deployment: dict[str, Any]) -> str | None:
    return cluster.lease_holder(deployment["metadata"]["name"], NS)


def _pods(cluster: Cluster) -> set[str]:
    return {
        pod["metadata"]["name"]
        for pod in cluster.running_pods(NS, "app.kubernetes.io/name=authyard-operator")
    }


def test_two_replicas_ready_and_hardened(cluster: Cluster, operator: dict[str, Any]) -> None:
    name = operator["metadata"]["name"]
    deployment = support.poll(
        lambda: (d := cluster.get("deployment", name, NS)) and d["status"].get("readyReplicas") == 2 and d,
        timeout=180,
        what="operator Deployment 2/2 ready",
    )
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    crds = cluster.kubectl(
        "get", "crd", "authservers.authyard.dev", "oauthclients.authyard.dev", "-o", "name"
    )
    assert len(crds.stdout.split()) == 2


def test_one_leader_holds_the_lease(cluster: Cluster, operator: dict[str, Any]) -> None:
    holder = support.poll(lambda: _holder(cluster, operator), timeout=120, what="Lease held")
    assert holder in _pods(cluster)


def test_standby_takes_over_when_the_leader_goes(cluster: Cluster, operator: dict[str, Any]) -> None:
    leader = _holder(cluster, operator)
    assert leader is not None
    cluster.kubectl("delete", "pod", leader, "--wait=false", namespace=NS)
    new_leader = support.poll(
        lambda: (holder := _holder(cluster, operator)) != leader and holder in _pods(cluster) and holder,
        timeout=120,
        what=f"a replica other than {leader} leads",
    )
    assert new_leader != leader
    name = operator["metadata"]["name"]
    support.poll(
        lambda: (cluster.get("deployment", name, NS) or {}).get("status", {}).get("readyReplicas") == 2,
        timeout=180,
        what="operator back to 2/2 ready",
    )
