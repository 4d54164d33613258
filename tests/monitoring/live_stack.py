"""What the real Prometheus of test_prometheus_scrape.py scrapes: the operator as the chart deploys it and an
auth server as the operator describes it, both real processes on loopback.

* The operator: the ``authyard-operator`` console script with the chart's Deployment environment (leader
  election on, the Lease in the release namespace), against the emulated Kubernetes API, which has the
  ServiceMonitor CRD so that the operator creates a ServiceMonitor for the AuthServer.
* The auth server: ``authserver serve --workers 2`` on a real PostgreSQL, configured with the admin token
  the operator generated (tests/operator/stack.py ``running_stack``).
* Prometheus scrapes both through the ServiceMonitors the way the Prometheus Operator would: the chart's
  rendered ServiceMonitor for the operator, the operator's own for the auth server (service_monitor.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kmock
import yaml

from harness.kube import AUTHSERVERS, load_crds
from harness.kube_emulator import AuthyardEmulator
from harness.operator import OPERATOR_SCRIPT, OperatorProcess
from harness.ports import free_port
from tests.monitoring.service_monitor import Pod
from tests.operator.kubeapi import KubeApi
from tests.packaging.helm_support import NAMESPACE, by_kind, render

SERVICE_MONITORS = "monitoring.coreos.com/v1/servicemonitors"
SERVICE_MONITOR_CRD = Path(__file__).with_name("servicemonitor-crd.yaml")
# The chart with its operator ServiceMonitor on (off by default).
CHART_SETS = ('metrics={"serviceMonitor": {"enabled": true}}',)
# The operator's full resync, every second instead of the chart's minute: a few reconciles in a short test.
FAST_RESYNC = {"AUTHYARD_RESYNC_INTERVAL": "1s", "AUTHYARD_CLIENT_RESYNC_INTERVAL": "1s"}


def pod_name(deployment: dict[str, Any]) -> str:
    """A name shaped like the ReplicaSet controller's (``<deployment>-<template hash>-<suffix>``)."""
    return f"{deployment['metadata']['name']}-6d5f7c9b8-local"


def container_name(deployment: dict[str, Any]) -> str:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return str(container["name"])


@dataclass(frozen=True)
class ChartOperator:
    """The objects the chart renders for the operator and its metrics."""

    deployment: dict[str, Any]
    service: dict[str, Any]
    service_monitor: dict[str, Any]

    @classmethod
    def render(cls) -> ChartOperator:
        objects = render(sets=CHART_SETS)
        (deployment,) = by_kind(objects, "Deployment")
        (service,) = [s for s in by_kind(objects, "Service") if s["spec"]["ports"][0]["name"] == "metrics"]
        (monitor,) = by_kind(objects, "ServiceMonitor")
        return cls(deployment, service, monitor)

    @property
    def pod(self) -> str:
        return pod_name(self.deployment)

    def environment(self, issuer: str, kubeconfig: Path, metrics_port: int) -> dict[str, str]:
        """The Deployment's environment, with what the kubelet fills in (the namespace and pod name from the
        downward API) and what differs on loopback: ports, the admin API's address, the resync interval."""
        (container,) = self.deployment["spec"]["template"]["spec"]["containers"]
        env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
        return {
            **env,
            "AUTHYARD_LEASE_NAMESPACE": self.deployment["metadata"]["namespace"],
            "AUTHYARD_IDENTITY": self.pod,
            "AUTHYARD_HEALTH_PORT": str(free_port()),
            "AUTHYARD_METRICS_PORT": str(metrics_port),
            "AUTHYARD_ADMIN_URL_TEMPLATE": issuer,
            "KUBECONFIG": str(kubeconfig),
            **FAST_RESYNC,
        }

    def scraped_pod(self, metrics_port: int) -> Pod:
        return Pod(self.pod, container_name(self.deployment), f"127.0.0.1:{metrics_port}")


def write_kubeconfig(server: str, path: Path) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": server}}],
        "users": [{"name": "operator", "user": {"token": "emulator-token"}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "operator"}}],
        "current-context": "emulator",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.asynccontextmanager
async def emulated_cluster() -> AsyncIterator[tuple[AuthyardEmulator, KubeApi]]:
    """The emulated API with Authyard's CRDs, the ServiceMonitor CRD and the release namespace, for a whole
    module (the ``emulator`` fixture of tests/operator is per test)."""
    async with AuthyardEmulator() as emulator, kmock.Server(emulator):
        emulator.declare_builtins(namespaces=("default", "kube-system", NAMESPACE))
        for crd in [*load_crds(), SERVICE_MONITOR_CRD]:
            emulator.declare_crd(crd)
        api = KubeApi(str(emulator.url).rstrip("/"))
        try:
            yield emulator, api
        finally:
            await api.close()
            emulator.close_watches()


async def start_chart_operator(
    emulator: AuthyardEmulator, chart: ChartOperator, issuer: str, directory: Path, metrics_port: int
) -> OperatorProcess:
    """The operator process, running once it leads and watches AuthServers."""
    kubeconfig = write_kubeconfig(str(emulator.url).rstrip("/"), directory / "kubeconfig")
    process = OperatorProcess(
        OPERATOR_SCRIPT,
        log_path=directory / "operator.log",
        env=chart.environment(issuer, kubeconfig, metrics_port),
    )
    return await process.start(ready=lambda: emulator.active_watches(AUTHSERVERS) > 0)
