"""Build and run the project's container images with podman, on a machine with no image registry.

The Dockerfile's base (`python:3.11-slim-bookworm`) cannot be pulled here, so an equivalent one is made
from the distribution's own packages (mmdebstrap: Debian 12 with its Python 3.11) and passed as the
Dockerfile's ``PYTHON_IMAGE``; everything after ``FROM`` is the Dockerfile as users build it.

podman keeps its storage under ``AUTHYARD_PODMAN_ROOT`` (a directory outside the checkout), so the base
image and the dependency layers are reused by later runs on the same machine. Its defaults do not run on
these machines (a file-descriptor limit above the hard limit, and crun without cgroup v2): the
containers.conf written here sets the limits to the hard ones and uses runc.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/local/python:3.11-slim-bookworm"
CACHE_ROOT = Path(os.environ.get("AUTHYARD_PODMAN_ROOT", "/var/tmp/authyard-podman"))
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_PACKAGES = "python3,python3-pip,python3-venv,ca-certificates,netbase,tzdata"
BUILD_TIMEOUT_SECONDS = 900


def podman_missing() -> str | None:
    """Why podman cannot run here, or None."""
    for program in ("podman", "mmdebstrap", "runc"):
        if shutil.which(program) is None:
            return f"{program} is not installed (scripts/setup.sh --test installs podman, mmdebstrap, runc)"
    if os.geteuid() != 0:
        return "podman's storage here is rootful (overlay, runc): run the image tests as root"
    return None


def debian_mirror() -> str:
    """The mirror this machine's apt uses (read at run time: the repository names no mirror)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        match = re.search(r"^URIs:\s*(\S+)", sources.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    listing = Path("/etc/apt/sources.list")
    if listing.exists():
        match = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\b", listing.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    raise RuntimeError("no Debian mirror found in /etc/apt (needed to bootstrap the base image)")


@dataclass
class Podman:
    root: Path = CACHE_ROOT

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = self.root / "containers.conf"
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        # podman lowers its own process limit to 32768 before it starts a container; ask for no more.
        nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 32768)
        self.config.write_text(
            "[containers]\n"
            f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
            "[engine]\n"
            'runtime = "runc"\n'
        )
        # uv inside the build reaches the package index through this machine's TLS setup: the host's CA
        # bundle is mounted into RUN steps only, so nothing of it lands in a layer.
        self.uv_config = self.root / "uv.toml"
        self.uv_config.write_text("system-certs = true\n")

    def command(self, *args: str) -> list[str]:
        return [
            "podman",
            "--root",
            str(self.root / "storage"),
            "--runroot",
            str(self.root / "run"),
            *args,
        ]

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        environment = {**os.environ, "CONTAINERS_CONF": str(self.config)}
        result = subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=timeout, env=environment, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args[:3])} ... exited {result.returncode}\n"
                f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
            )
        return result

    def has_image(self, name: str) -> bool:
        return self.run("image", "exists", name, check=False).returncode == 0

    def ensure_base(self) -> float:
        """The local base image; seconds spent making it (0 when it was cached)."""
        if self.has_image(BASE_IMAGE):
            return 0.0
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="authyard-base-") as scratch:
            tarball = Path(scratch) / "base.tar"
            subprocess.run(
                [
                    "mmdebstrap",
                    "--variant=minbase",
                    "--mode=root",
                    "--format=tar",
                    f"--include={BASE_PACKAGES}",
                    # As in the official image: pip may install into the image's Python.
                    '--customize-hook=rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED',
                    "bookworm",
                    str(tarball),
                    f"deb {debian_mirror()} bookworm main",
                ],
                check=True,
                capture_output=True,
                timeout=BUILD_TIMEOUT_SECONDS,
            )
            self.run("import", "--change", "ENV LANG=C.UTF-8", str(tarball), BASE_IMAGE, timeout=300)
        return time.monotonic() - started

    def build(self, target: str, tag: str) -> float:
        """``podman build --target`` of images/Dockerfile on the local base; seconds it took."""
        started = time.monotonic()
        self.run(
            "build",
            "--file",
            str(ROOT / "images" / "Dockerfile"),
            "--target",
            target,
            "--build-arg",
            f"PYTHON_IMAGE={BASE_IMAGE}",
            "--volume",
            f"{HOST_CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro",
            "--volume",
            f"{self.uv_config}:/etc/uv/uv.toml:ro",
            "--tag",
            tag,
            str(ROOT),
            timeout=BUILD_TIMEOUT_SECONDS,
        )
        return time.monotonic() - started

    def image_size(self, name: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", name).stdout.strip())


IMAGES = {"authserver": "localhost/authyard/authserver:test", "operator": "localhost/authyard/operator:test"}
_built: dict[str, str] = {}


@pytest.fixture(scope="session")
def podman() -> Podman:
    """podman here, or a skip with the reason (a failure when AUTHYARD_REQUIRE_PODMAN is set)."""
    reason = podman_missing()
    if reason:
        if os.environ.get("AUTHYARD_REQUIRE_PODMAN"):
            pytest.fail(f"{reason}; AUTHYARD_REQUIRE_PODMAN is set")
        pytest.skip(reason)
    return Podman()


@pytest.fixture(scope="session")
def container_images(podman: Podman, pytestconfig: pytest.Config) -> dict[str, str]:
    """Both targets, built once per test session (whichever module asks first); their build times and
    sizes printed in the test report."""
    if _built:
        return _built
    lines = []
    base_seconds = podman.ensure_base()
    lines.append(f"base image: {'cached' if not base_seconds else f'bootstrapped in {base_seconds:.0f} s'}")
    for target, tag in IMAGES.items():
        seconds = podman.build(target, tag)
        lines.append(f"{target} image: built in {seconds:.0f} s, {podman.image_size(tag) / 2**20:.0f} MiB")
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            for line in lines:
                reporter.write_line(f"[images] {line}")
    _built.update(IMAGES)
    return _built
