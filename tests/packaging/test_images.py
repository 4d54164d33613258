"""The container images: what can be checked without a container engine.

The install step of each image target is reproduced for real (uv from the lock file, no dev dependencies,
not editable) into a fresh environment, and the entry point is run from it. The Dockerfile's hardening is
read from the file itself. The images are built and run for real in test_images_run.py (podman).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "images" / "Dockerfile"
# The wheel's packages, as pyproject.toml lists them: the top-level folders every image build copies.
WHEEL_SOURCES = sorted(
    {
        Path(package).parts[0]
        for package in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
            "targets"
        ]["wheel"]["packages"]
    }
)


def _stages() -> dict[str, list[str]]:
    stages: dict[str, list[str]] = {}
    current = None
    for line in DOCKERFILE.read_text().splitlines():
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = match.group(1)
            stages[current] = []
        elif current and line.strip() and not line.startswith("#"):
            stages[current].append(line.strip())
    return stages


@pytest.mark.parametrize("target", ["authserver", "operator"])
def test_final_images_run_as_a_fixed_non_root_user(target: str) -> None:
    stage = _stages()[target]
    assert "USER 10001:10001" in stage
    assert any(line.startswith("ENTRYPOINT") for line in stage)
    assert "HEALTHCHECK" not in DOCKERFILE.read_text()  # Kubernetes probes do that
    assert not any(line.startswith(("RUN pip", "RUN uv", "COPY . ")) for line in stage), (
        "no build tools at run time"
    )


def test_dependencies_come_from_the_lock_file() -> None:
    installs = [line for lines in _stages().values() for line in lines if "uv sync" in line]
    assert installs and all("--frozen" in line and "--no-dev" in line for line in installs)


@pytest.mark.parametrize("stage", ["build-authserver", "build-operator"])
def test_every_build_copies_every_package_the_wheel_lists(stage: str) -> None:
    copied = {line.split()[1] for line in _stages()[stage] if line.startswith("COPY ")}
    assert set(WHEEL_SOURCES) <= copied


def _install_like_the_image(tmp_path: Path, *extra: str) -> Path:
    project = tmp_path / "app"
    project.mkdir()
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, project / name)
    for source in WHEEL_SOURCES:
        shutil.copytree(ROOT / source, project / source, ignore=shutil.ignore_patterns("__pycache__"))
    environment = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(project / ".venv"),
        "UV_PYTHON_DOWNLOADS": "never",
    }
    subprocess.run(
        ["uv", "sync", "--frozen", "--no-dev", "--no-editable", "--quiet", *extra],
        cwd=project,
        env=environment,
        check=True,
        timeout=300,
    )
    for source in WHEEL_SOURCES:  # prove the installed copy runs, not the source tree
        shutil.rmtree(project / source)
    return project / ".venv"


def test_authserver_image_environment_runs_and_carries_no_operator_deps(tmp_path: Path) -> None:
    venv = _install_like_the_image(tmp_path)
    help_text = subprocess.run(
        [str(venv / "bin" / "authserver"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert "serve" in help_text and "migrate" in help_text
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import kopf"], capture_output=True, timeout=60
    )
    assert probe.returncode != 0, "the auth server image must not carry the operator's dependencies"
    # Its `authyard-operator` answers --version, and says what is missing instead of a traceback.
    operator = [str(venv / "bin" / "authyard-operator")]
    version = subprocess.run(
        [*operator, "--version"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert version.returncode == 0 and version.stdout.startswith("authyard-operator "), version.stderr
    started = subprocess.run(operator, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert started.returncode == 2 and "'operator' extra" in started.stderr, started.stderr
    assert "Traceback" not in started.stderr
    templates = list((venv / "lib").glob("python3*/site-packages/authserver/web/templates/login.html"))
    migrations = list((venv / "lib").glob("python3*/site-packages/authserver/migrations/versions/0001_*.py"))
    assert templates and migrations, "templates and migrations must ship in the wheel"


def test_the_shared_value_types_import_neither_the_server_nor_the_operator() -> None:
    """Both sides import authyard_values; it must pull in neither of them (nor kopf)."""
    probe = (
        "import sys, authyard_values.durations, authyard_values.lists; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'authserver', 'authyard_operator', 'kopf'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True, cwd=ROOT
    ).stdout
    assert loaded.strip() == "[]"
