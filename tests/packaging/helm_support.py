"""Running the real Helm binaries that scripts/get-helm.sh puts in tools/helm3 and tools/helm4.

Without them the chart tests skip locally, and fail when ``CI`` or ``AUTHYARD_REQUIRE_HELM`` is set: CI must
never report a chart as checked when no helm ran.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "authyard-operator"
EXAMPLES = ROOT / "examples"
# Chart values examples live in examples/helm/: examples/*.yaml are custom resources (tests/operator checks
# every one of them against the CRDs).
VALUES_EXAMPLES = EXAMPLES / "helm"
RELEASE = "authyard"
NAMESPACE = "authyard-system"
KUBE_VERSION = "1.32.0"
MAJORS = (3, 4)


def helm_required() -> bool:
    return any(os.environ.get(name) for name in ("CI", "AUTHYARD_REQUIRE_HELM"))


def helm_path(major: int) -> Path:
    return ROOT / "tools" / f"helm{major}" / "helm"


def helm_binary(major: int) -> Path:
    """The Helm binary of this major version, or skip (fail in CI) with the command that fetches it."""
    path = helm_path(major)
    if path.is_file() and os.access(path, os.X_OK):
        return path
    message = f"Helm {major} missing at {path.relative_to(ROOT)}: run scripts/get-helm.sh"
    if helm_required():
        pytest.fail(message + " (required: CI or AUTHYARD_REQUIRE_HELM is set)")
    pytest.skip(message)


def values_examples() -> list[Path]:
    return sorted(VALUES_EXAMPLES.glob("values-*.yaml"))


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_helm(major: int, *args: str) -> Result:
    completed = subprocess.run(
        [str(helm_binary(major)), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        # Helm must not read or write the developer's own config, cache or plugins.
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(ROOT / "tools"),
            "HELM_CACHE_HOME": str(ROOT / "tools" / ".helm-cache"),
            "HELM_CONFIG_HOME": str(ROOT / "tools" / ".helm-config"),
            "HELM_DATA_HOME": str(ROOT / "tools" / ".helm-data"),
            "KUBECONFIG": "/dev/null",
        },
    )
    return Result(completed.returncode, completed.stdout, completed.stderr)


def template_args(
    values_files: tuple[Path, ...] = (), sets: tuple[str, ...] = (), include_crds: bool = False
) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
    if include_crds:
        args.append("--include-crds")
    for path in values_files:
        args += ["--values", str(path)]
    for assignment in sets:
        args += ["--set-json", assignment]
    return args


def render(
    major: int = 3,
    values_files: tuple[Path, ...] = (),
    sets: tuple[str, ...] = (),
    include_crds: bool = False,
) -> list[dict[str, Any]]:
    """Every object `helm template` renders (``sets`` are ``--set-json key=<json>`` assignments)."""
    result = run_helm(major, *template_args(values_files, sets, include_crds))
    assert result.returncode == 0, result.output
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj.get("kind") == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]
