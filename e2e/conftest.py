"""Fixtures of the end-to-end suite: the cluster (or an explicit skip), the operator installed with Helm,
kubectl helpers and port-forwards. Everything waits through ``support.poll`` with a bound."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest

from e2e import support

TOOLS_DIR = support.ROOT / "tools"


class Cluster:
    """kubectl and helm against the cluster KUBECONFIG points at."""

    def __init__(self, tools: support.Tools) -> None:
        self.tools = tools

    def run(
        self, command: list[str], *, input_text: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(  # noqa: S603 - fixed command lines built by support.Tools
            command, input=input_text, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def kubectl(
        self, *args: str, namespace: str | None = None, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        return self.run(self.tools.kubectl_cmd(*args, namespace=namespace), **kwargs)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        result = self.kubectl("get", kind, name, "-o", "json", namespace=namespace, check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr or "not found" in result.stderr:
                return None
            raise AssertionError(result.stderr.strip())
        return json.loads(result.stdout)

    def list(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["get", kind, "-o", "json"]
        if selector:
            args += ["-l", selector]
        return json.loads(self.kubectl(*args, namespace=namespace).stdout)["items"]

    def apply(self, objects: Sequence[dict[str, Any]]) -> None:
        self.kubectl(
            "apply",
            "--server-side",
            "--field-manager",
            "authyard-e2e",
            "-f",
            "-",
            input_text=support.to_yaml(objects),
        )

    def apply_file(self, path: Path, force_conflicts: bool = False) -> None:
        """``kubectl apply --server-side`` of a file or a directory of manifests. ``force_conflicts`` takes
        over fields another manager set (Helm creates the CRDs of a chart's crds/ with a plain create)."""
        args = ["apply", "--server-side", "--field-manager", "authyard-e2e", "-f", str(path)]
        self.kubectl(*args, *(["--force-conflicts"] if force_conflicts else []))

    def patch(
        self, kind: str, name: str, namespace: str, patch: dict[str, Any]
    ) -> subprocess.CompletedProcess[str]:
        return self.kubectl(
            "patch", kind, name, "--type", "merge", "-p", json.dumps(patch), namespace=namespace, check=False
        )

    def ensure_namespace(self, name: str) -> None:
        self.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}])

    def delete(self, kind: str, name: str, namespace: str | None = None, wait: bool = False) -> None:
        self.kubectl(
            "delete",
            kind,
            name,
            "--ignore-not-found",
            f"--wait={str(wait).lower()}",
            namespace=namespace,
            timeout=300,
        )

    def wait_ready(self, kind: str, name: str, namespace: str, timeout: float = 300) -> dict[str, Any]:
        """Ready=True for the current generation; on timeout the message carries the last status."""
        last: dict[str, Any] = {}

        def probe() -> dict[str, Any] | None:
            obj = self.get(kind, name, namespace)
            last["obj"] = obj
            return obj if support.is_ready(obj) else None

        try:
            return support.poll(probe, timeout=timeout, interval=3, what=f"{kind} {namespace}/{name} Ready")
        except support.PollTimeout as error:
            raise support.PollTimeout(
                f"{error}; status: {support.describe_status(last.get('obj'))}"
            ) from None

    def wait_gone(self, kind: str, name: str, namespace: str | None, timeout: float = 180) -> None:
        support.poll(
            lambda: self.get(kind, name, namespace) is None,
            timeout=timeout,
            interval=3,
            what=f"{kind} {namespace}/{name} deleted",
        )

    def wait_rolled_out(self, name: str, namespace: str, timeout: float = 300) -> dict[str, Any]:
        """The Deployment's current spec runs on every replica, none of an older one left."""
        last: dict[str, Any] = {}

        def probe() -> dict[str, Any] | None:
            deployment = self.get("deployment", name, namespace)
            last["status"] = (deployment or {}).get("status")
            return deployment if support.rolled_out(deployment) else None

        try:
            return support.poll(
                probe, timeout=timeout, interval=3, what=f"Deployment {namespace}/{name} rolled out"
            )
        except support.PollTimeout as error:
            raise support.PollTimeout(f"{error}; status: {last.get('status')}") from None

    def running_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Pods in phase Running that are not on their way out."""
        return [
            pod
            for pod in self.list("pod", namespace, selector)
            if pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
        ]

    def lease_holder(self, name: str, namespace: str) -> str | None:
        return ((self.get("lease", name, namespace) or {}).get("spec") or {}).get("holderIdentity")

    def install_operator(
        self,
        chart: Path = support.CHART,
        values_files: Sequence[Path] = (support.EXAMPLES / "helm" / "values-kind.yaml",),
        sets: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """``helm upgrade --install`` of the release (an install the first time, an upgrade after) with
        ``--wait``; returns the operator Deployment."""
        command = self.tools.helm_install_cmd(
            support.RELEASE, chart, support.OPERATOR_NAMESPACE, values_files, sets, timeout="5m"
        )
        self.run(command, timeout=360)
        deployments = self.list(
            "deployment", support.OPERATOR_NAMESPACE, "app.kubernetes.io/name=authyard-operator"
        )
        assert len(deployments) == 1
        return deployments[0]

    def uninstall_operator(self) -> None:
        self.run(
            self.tools.helm_cmd("uninstall", support.RELEASE, "--wait", namespace=support.OPERATOR_NAMESPACE),
            check=False,
            timeout=300,
        )

    def release_history(self) -> list[dict[str, Any]]:
        """``helm history`` of the release, oldest first; empty when it is not installed."""
        result = self.run(
            self.tools.helm_cmd(
                "history", support.RELEASE, "-o", "json", namespace=support.OPERATOR_NAMESPACE
            ),
            check=False,
        )
        if result.returncode != 0:
            if "not found" in result.stderr:
                return []
            raise AssertionError(f"helm history failed: {result.stderr.strip()}")
        return json.loads(result.stdout)

    def secret_data(self, name: str, namespace: str) -> dict[str, str]:
        secret = self.get("secret", name, namespace)
        assert secret is not None, f"Secret {namespace}/{name} missing"
        return support.decode_secret(secret)

    @contextlib.contextmanager
    def port_forward(
        self, target: str, remote_port: int, namespace: str, timeout: float = 60
    ) -> Iterator[int]:
        """A ``kubectl port-forward`` for the duration of the block; yields the local port."""
        command = self.tools.port_forward_cmd(target, remote_port, namespace)
        process = subprocess.Popen(  # noqa: S603 - fixed command line built by support.Tools
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        found: dict[str, int] = {}
        lines: list[str] = []

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line.rstrip())
                port = support.parse_port_forward(line)
                if port is not None:
                    found.setdefault("port", port)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:

            def ready() -> int | None:
                if "port" in found:
                    return found["port"]
                if process.poll() is not None:
                    raise AssertionError(f"kubectl port-forward exited: {lines}")
                return None

            yield support.poll(
                ready, timeout=timeout, interval=0.2, what=f"port-forward to {namespace}/{target}"
            )
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _tools(env: dict[str, str]) -> support.Tools | None:
    kubectl = support.find_tool("kubectl", env)
    helm = support.find_tool("helm", env, [TOOLS_DIR / "helm3" / "helm", TOOLS_DIR / "helm4" / "helm"])
    if kubectl is None:
        return None
    return support.Tools(kubectl=kubectl, helm=helm or "helm", context=env.get("AUTHYARD_E2E_CONTEXT"))


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    env = dict(os.environ)
    tools = _tools(env)

    def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)  # noqa: S603

    reason = support.unreachable_reason(env, tools, run)
    if reason is not None:
        cannot_run(reason)
    assert tools is not None
    return Cluster(tools)


def cannot_run(reason: str) -> NoReturn:
    """Skip with the reason; where the suite must run (AUTHYARD_E2E_REQUIRE_CLUSTER, the e2e workflow) a
    failure instead."""
    if os.environ.get("AUTHYARD_E2E_REQUIRE_CLUSTER"):
        pytest.fail(f"{reason} (AUTHYARD_E2E_REQUIRE_CLUSTER is set)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def operator(cluster: Cluster) -> Iterator[dict[str, Any]]:
    """The chart installed (or upgraded) with the locally built images; uninstalled at the end unless
    AUTHYARD_E2E_KEEP is set. Yields the operator Deployment once its pods are ready."""
    yield cluster.install_operator()
    if not os.environ.get("AUTHYARD_E2E_KEEP"):
        cluster.uninstall_operator()
