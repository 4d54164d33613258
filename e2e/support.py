"""The e2e suite's own logic, free of any cluster: manifest loading and rewriting, bounded polling, the
kubectl/helm command lines, Secret decoding, port-forward output parsing, and the reachability check that
decides between running and skipping. Unit-tested in tests/packaging/test_e2e_helpers.py.
"""

from __future__ import annotations

import base64
import copy
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CHART = ROOT / "charts" / "authyard-operator"
OPERATOR_NAMESPACE = "authyard-system"
RELEASE = "authyard"

T = TypeVar("T")


# --- manifests -------------------------------------------------------------------------------------------


def load_manifests(path: Path) -> list[dict[str, Any]]:
    """Every object in a (multi-document) YAML file; empty documents are dropped."""
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for doc in documents:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise ValueError(f"{path}: not a Kubernetes object: {doc!r}")
    return documents


def example(name: str) -> dict[str, Any]:
    """The single object in examples/<name>."""
    (obj,) = load_manifests(EXAMPLES / name)
    return obj


def in_namespace(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    result = copy.deepcopy(obj)
    result["metadata"]["namespace"] = namespace
    return result


def allow_client_namespaces(authserver: dict[str, Any], namespaces: Sequence[str]) -> dict[str, Any]:
    """The embedded example admits clients from its own namespace only; the client examples live in team-a
    and team-b."""
    result = copy.deepcopy(authserver)
    policy = result["spec"].setdefault("clientPolicy", {})
    policy["allowedNamespaces"] = sorted(set(policy.get("allowedNamespaces", [])) | set(namespaces))
    return result


def pointed_at(client: dict[str, Any], name: str, namespace: str) -> dict[str, Any]:
    result = copy.deepcopy(client)
    result["spec"]["authServerRef"] = {"name": name, "namespace": namespace}
    return result


def to_yaml(objects: Sequence[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(list(objects), sort_keys=False)


# --- status ----------------------------------------------------------------------------------------------


def condition(obj: Mapping[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return item
    return None


def is_ready(obj: Mapping[str, Any] | None) -> bool:
    """Ready=True for the current generation (what kstatus, Argo CD and Flux call healthy)."""
    if not obj:
        return False
    ready = condition(obj, "Ready")
    generation = obj.get("metadata", {}).get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return False
    return bool(ready and ready.get("status") == "True")


def describe_status(obj: Mapping[str, Any] | None) -> str:
    if not obj:
        return "absent"
    ready = condition(obj, "Ready") or {}
    return (
        f"generation={obj.get('metadata', {}).get('generation')} "
        f"observedGeneration={(obj.get('status') or {}).get('observedGeneration')} "
        f"Ready={ready.get('status')} reason={ready.get('reason')} message={ready.get('message')!r}"
    )


# --- bounded polling -------------------------------------------------------------------------------------


class PollTimeout(AssertionError):
    """The condition did not hold in time; the message carries the last observation."""


def poll(
    probe: Callable[[], T],
    *,
    timeout: float,
    interval: float = 2.0,
    what: str = "condition",
    describe: Callable[[T], str] = repr,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Calls ``probe`` until it returns something truthy, at most ``timeout`` seconds; returns that value.

    An exception from ``probe`` counts as "not yet" (the API may be briefly unavailable) and is reported if
    time runs out. Never waits longer than the deadline, never loops without sleeping.
    """
    if timeout <= 0 or interval <= 0:
        raise ValueError("timeout and interval must be positive")
    deadline = clock() + timeout
    last: str = "never probed"
    attempts = 0
    while True:
        attempts += 1
        try:
            value = probe()
        except Exception as error:
            last = f"{type(error).__name__}: {error}"
        else:
            if value:
                return value
            last = describe(value)
        remaining = deadline - clock()
        if remaining <= 0:
            raise PollTimeout(f"{what}: not true after {timeout:g}s ({attempts} attempts); last: {last}")
        sleep(min(interval, remaining))


# --- command lines ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tools:
    kubectl: str = "kubectl"
    helm: str = "helm"
    kubeconfig: str | None = None
    context: str | None = None

    def kubectl_cmd(self, *args: str, namespace: str | None = None) -> list[str]:
        command = [self.kubectl]
        if self.kubeconfig:
            command += ["--kubeconfig", self.kubeconfig]
        if self.context:
            command += ["--context", self.context]
        if namespace:
            command += ["--namespace", namespace]
        return [*command, *args]

    def helm_cmd(self, *args: str, namespace: str | None = None) -> list[str]:
        command = [self.helm]
        if self.kubeconfig:
            command += ["--kubeconfig", self.kubeconfig]
        if self.context:
            command += ["--kube-context", self.context]
        if namespace:
            command += ["--namespace", namespace]
        return [*command, *args]

    def helm_install_cmd(
        self,
        release: str,
        chart: Path,
        namespace: str,
        values_files: Sequence[Path] = (),
        sets: Mapping[str, str] | None = None,
        timeout: str = "5m",
    ) -> list[str]:
        """Install or upgrade, create the namespace, and wait until the operator's pods are ready."""
        args = [
            "upgrade",
            "--install",
            release,
            str(chart),
            "--create-namespace",
            "--wait",
            "--timeout",
            timeout,
        ]
        for path in values_files:
            args += ["--values", str(path)]
        for key, value in (sets or {}).items():
            args += ["--set-string", f"{key}={value}"]
        return self.helm_cmd(*args, namespace=namespace)

    def port_forward_cmd(self, target: str, remote_port: int, namespace: str) -> list[str]:
        """``kubectl port-forward`` on a random local port of 127.0.0.1 (read back from its output)."""
        return self.kubectl_cmd(
            "port-forward", "--address", "127.0.0.1", target, f":{remote_port}", namespace=namespace
        )


def find_tool(name: str, env: Mapping[str, str], candidates: Sequence[Path] = ()) -> str | None:
    """``AUTHYARD_<NAME>`` from the environment, else the first existing candidate, else ``name`` on PATH."""
    override = env.get(f"AUTHYARD_{name.upper()}")
    if override:
        return override
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    from shutil import which

    return which(name, path=env.get("PATH"))


PORT_FORWARD_LINE = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)")


def parse_port_forward(line: str) -> int | None:
    """The local port from a line of ``kubectl port-forward`` output, or None."""
    match = PORT_FORWARD_LINE.search(line)
    return int(match.group(1)) if match else None


def local_url(url: str, port: int) -> str:
    """An in-cluster URL (http://auth.platform.svc:8080/token) rewritten to the port-forward."""
    match = re.match(r"^(https?)://[^/]+(/.*)?$", url)
    if not match:
        raise ValueError(f"not an http(s) URL: {url}")
    return f"http://127.0.0.1:{port}{match.group(2) or ''}"


# --- Secrets ---------------------------------------------------------------------------------------------


def decode_secret(secret: Mapping[str, Any]) -> dict[str, str]:
    """The Secret's data as text (``stringData`` as well, for objects not yet stored)."""
    decoded = {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
    decoded.update(secret.get("stringData") or {})
    return decoded


CLIENT_SECRET_KEYS = ("client_id", "client_secret", "issuer", "token_endpoint", "jwks_uri")


# --- reachability ----------------------------------------------------------------------------------------


def unreachable_reason(
    env: Mapping[str, str],
    tools: Tools | None,
    run: Callable[[list[str]], subprocess.CompletedProcess[str]],
    home: Path | None = None,
) -> str | None:
    """Why the suite cannot run against a cluster, or None when it can. Never a silent pass."""
    kubeconfig = env.get("KUBECONFIG")
    default = (home or Path.home()) / ".kube" / "config"
    if not kubeconfig and not default.is_file():
        return f"no Kubernetes cluster: KUBECONFIG unset and {default} absent"
    if kubeconfig and not any(Path(part).is_file() for part in kubeconfig.split(os.pathsep) if part):
        return f"no Kubernetes cluster: KUBECONFIG={kubeconfig} names no existing file"
    if tools is None:
        return "no kubectl on PATH (set AUTHYARD_KUBECTL)"
    try:
        result = run(tools.kubectl_cmd("get", "--raw", "/readyz", "--request-timeout", "10s"))
    except (OSError, subprocess.SubprocessError) as error:
        return f"no Kubernetes cluster: kubectl failed to run: {error}"
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        return f"no Kubernetes cluster: API unreachable ({detail[-1] if detail else 'no output'})"
    return None
