"""The e2e suite's own logic, free of any cluster: manifest loading and rewriting, bounded polling, the
kubectl/helm command lines, Secret decoding, port-forward output parsing, token checks, the upgrade
scenario's configuration, and the reachability check that decides between running and skipping.
Unit-tested in tests/packaging/test_e2e_helpers.py.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import os
import re
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jwt
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


def example(name: str, examples: Path = EXAMPLES) -> dict[str, Any]:
    """The single object in examples/<name> (of this checkout, or of the one ``examples`` points into)."""
    (obj,) = load_manifests(examples / name)
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


def rolled_out(deployment: Mapping[str, Any] | None) -> bool:
    """The Deployment's controller has seen its current spec and every pod it counts runs that spec and is
    ready: no pod of an older ReplicaSet is left (what `kubectl rollout status` waits for)."""
    if not deployment:
        return False
    wanted = deployment.get("spec", {}).get("replicas", 1)
    status = deployment.get("status") or {}
    if status.get("observedGeneration", 0) < deployment.get("metadata", {}).get("generation", 0):
        return False
    counts = (
        status.get(key, 0) for key in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")
    )
    return all(count == wanted for count in counts)


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


def fingerprint(secret: str) -> str:
    """A SHA-256 of a credential: enough to tell later that it is unchanged, without keeping it."""
    return hashlib.sha256(secret.encode()).hexdigest()


# --- tokens ----------------------------------------------------------------------------------------------


def client_credentials_token(token_url: str, client_id: str, secret: str) -> httpx.Response:
    """A client_credentials grant with HTTP Basic client authentication (RFC 6749 sections 4.4 and 2.3.1)."""
    return httpx.post(
        token_url, data={"grant_type": "client_credentials"}, auth=(client_id, secret), timeout=10
    )


def verify_access_token(
    access_token: str,
    jwks: Mapping[str, Any],
    issuer: str,
    audience: str,
    algorithms: Sequence[str] = ("ES256",),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JWT access token's header and claims once its signature verifies against the JWKS key its
    ``kid`` names, with an algorithm the verifier chose (never the token's say), and its issuer and audience
    match, as a resource server checks it (RFC 9068 section 4); raises on any mismatch."""
    header = jwt.get_unverified_header(access_token)
    key = jwt.PyJWKSet.from_dict(dict(jwks))[header["kid"]]
    claims = jwt.decode(access_token, key.key, algorithms=list(algorithms), issuer=issuer, audience=audience)
    return header, claims


# --- the upgrade scenario --------------------------------------------------------------------------------

UPGRADE_FROM = "AUTHYARD_E2E_UPGRADE_FROM"
UPGRADE_FROM_OPERATOR_IMAGE = "AUTHYARD_E2E_UPGRADE_FROM_OPERATOR_IMAGE"
UPGRADE_FROM_AUTHSERVER_IMAGE = "AUTHYARD_E2E_UPGRADE_FROM_AUTHSERVER_IMAGE"


def split_image(reference: str) -> tuple[str, str]:
    """``repository`` and ``tag`` of an image reference (``registry:5000/a/b:1.0`` -> ``registry:5000/a/b``,
    ``1.0``); a reference without a tag or with a digest is refused: the chart takes a tag."""
    repository, _, tag = reference.rpartition(":")
    if "@" in reference or not repository or not tag or "/" in tag:
        raise ValueError(f"not an image reference with a tag: {reference!r}")
    return repository, tag


@dataclass(frozen=True)
class UpgradeSource:
    """The release a `helm upgrade` starts from: a checkout of the previous commit, whose images the
    workflow built and loaded into the cluster."""

    checkout: Path
    operator_image: str
    authserver_image: str

    @property
    def chart(self) -> Path:
        return self.checkout / "charts" / "authyard-operator"

    @property
    def examples(self) -> Path:
        """The previous commit's examples: the objects a user of that version applied. A commit older
        than one of them falls back to this checkout's."""
        return self.checkout / "examples"

    def example(self, name: str) -> dict[str, Any]:
        return example(name, self.examples if (self.examples / name).is_file() else EXAMPLES)

    def values_files(self) -> list[Path]:
        kind_values = self.examples / "helm" / "values-kind.yaml"
        return [kind_values] if kind_values.is_file() else []

    def image_values(self) -> dict[str, str]:
        repository, tag = split_image(self.operator_image)
        return {"image.repository": repository, "image.tag": tag, "image.pullPolicy": "Never"}


def upgrade_source(env: Mapping[str, str]) -> UpgradeSource | None:
    """The previous release from the environment the e2e workflow's upgrade job sets; None when the
    scenario is not configured. Half a configuration is an error, never a skip."""
    checkout = env.get(UPGRADE_FROM)
    if not checkout:
        return None
    path = Path(checkout)
    if not (path / "charts" / "authyard-operator" / "Chart.yaml").is_file():
        raise ValueError(f"{UPGRADE_FROM}={checkout} holds no charts/authyard-operator/Chart.yaml")
    images = {
        name: env.get(name, "") for name in (UPGRADE_FROM_OPERATOR_IMAGE, UPGRADE_FROM_AUTHSERVER_IMAGE)
    }
    missing = [name for name, value in images.items() if not value]
    if missing:
        raise ValueError(f"{UPGRADE_FROM} is set but {', '.join(missing)} is not")
    source = UpgradeSource(path, images[UPGRADE_FROM_OPERATOR_IMAGE], images[UPGRADE_FROM_AUTHSERVER_IMAGE])
    split_image(source.operator_image)
    return source


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
