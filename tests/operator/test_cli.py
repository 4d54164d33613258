"""``authyard-operator --help`` and ``--version`` answer and exit; they never start the operator. Without any
cluster configuration the operator does not start either: it says why in one line."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from authyard_operator.settings import OperatorSettings

OPERATOR = Path(sys.executable).parent / "authyard-operator"


def run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # No cluster anywhere: an operator that started would fail or wait, not exit 0 at once.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "absent")}
    return subprocess.run(
        [str(OPERATOR), *args], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path, check=False
    )


@pytest.mark.parametrize("option", ["--help", "-h"])
def test_help_prints_usage_and_every_setting_and_exits(option: str, tmp_path: Path) -> None:
    result = run(option, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: authyard-operator")
    for name in OperatorSettings.model_fields:
        assert f"AUTHYARD_{name.upper()}" in result.stdout
    assert "KUBECONFIG" in result.stdout and result.stderr == ""


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    result = run("--version", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"authyard-operator {metadata.version('authyard')}"


def test_an_unknown_argument_is_a_usage_error(tmp_path: Path) -> None:
    result = run("--namespace", "x", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "unrecognized arguments: --namespace x" in result.stderr


def test_no_cluster_configuration_is_a_one_line_error(tmp_path: Path) -> None:
    result = run(tmp_path=tmp_path)
    assert result.returncode == 2
    assert "no Kubernetes configuration" in result.stderr and str(tmp_path / "absent") in result.stderr
    assert "Traceback" not in result.stderr
