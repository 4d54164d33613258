"""The emulated Kubernetes API as the operator meets it: the built-in resources it and kopf touch, the
repository's CRDs, and a kubeconfig that points a client at it."""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import yaml
from kmock._internal import apps

from harness.kube_emulator import AuthyardEmulator

CRD_DIR = Path(__file__).resolve().parents[1] / "crds"
AUTHSERVERS = "authyard.dev/v1alpha1/authservers"
OAUTHCLIENTS = "authyard.dev/v1alpha1/oauthclients"
TOKEN = "emulator-token"  # the emulator accepts any bearer token; clients must still send one


@functools.cache
def _parsed_crds() -> tuple[dict[str, Any], ...]:
    return tuple(yaml.safe_load(path.read_text()) for path in sorted(CRD_DIR.glob("*.yaml")))


def load_crds() -> list[dict[str, Any]]:
    """The repository's CRDs (parsed once; fresh copies each call)."""
    return copy.deepcopy(list(_parsed_crds()))


def declare_authyard_api(emulator: AuthyardEmulator) -> None:
    """Every built-in resource the operator and kopf touch, the ``default``/``kube-system`` namespaces
    and the CRDs from ``crds/``."""
    emulator.declare_builtins()
    for crd in load_crds():
        emulator.declare_crd(crd)


def custom_resource(
    kind: str, name: str, namespace: str, spec: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An ``authyard.dev/v1alpha1`` object of ``kind`` as a user applies it (without ``spec`` when None)."""
    body: dict[str, Any] = {
        "apiVersion": "authyard.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
    }
    if spec is not None:
        body["spec"] = spec
    return body


def service_monitor_crd() -> dict[str, Any]:
    """The Prometheus Operator's ServiceMonitor CRD, without its schema: the operator renders a
    ServiceMonitor only once this CRD exists in the cluster."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {
                "kind": "ServiceMonitor",
                "plural": "servicemonitors",
                "singular": "servicemonitor",
                "listKind": "ServiceMonitorList",
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }


@contextlib.asynccontextmanager
async def serving_emulator(namespaces: Iterable[str] = ()) -> AsyncIterator[AuthyardEmulator]:
    """The emulator on a loopback port outside pytest, served as kmock's pytest plugin serves it, with
    :func:`declare_authyard_api` and ``namespaces`` created."""
    async with AuthyardEmulator() as emulator, apps.Server(emulator):
        declare_authyard_api(emulator)
        for namespace in namespaces:
            emulator.create_namespace(namespace)
        try:
            yield emulator
        finally:
            emulator.close_watches()  # let the HTTP server stop without waiting for open watch streams


def write_kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig at ``path`` whose current context is the API at ``server`` with a bearer token."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": server}}],
        "users": [{"name": "tester", "user": {"token": TOKEN}}],
        "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "tester"}}],
        "current-context": "emulator",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path
