"""Both container images built from images/Dockerfile with podman and run as a user would run them.

The base image is made locally (tests/support/podman.py); skipped only where podman cannot run, and then a
failure when AUTHYARD_REQUIRE_PODMAN is set (the test suite's script sets it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import httpx
import jwt
import pytest
from packaging.markers import Marker

from harness.ports import free_port
from tests.support.oauth import ADMIN_TOKEN, admin_headers, basic
from tests.support.podman import ROOT, Podman

SERVER_UID = 10001
START_TIMEOUT_SECONDS = 60.0


def _wait_ready(podman: Podman, container: str, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        state = podman.run("inspect", "--format", "{{.State.Running}}", container).stdout.strip()
        if state != "true":
            logs = podman.run("logs", container, check=False)
            pytest.fail(f"the container stopped:\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} was not ready within {START_TIMEOUT_SECONDS} s")


@pytest.fixture
def fresh_volume(podman: Podman) -> Iterator[str]:
    name = f"authyard-test-{os.getpid()}-{time.monotonic_ns()}"
    podman.run("volume", "create", name)
    try:
        yield name
    finally:
        podman.run("volume", "rm", "--force", name, check=False)


def _process_uid(podman: Podman, container: str) -> int:
    pid = podman.run("inspect", "--format", "{{.State.Pid}}", container).stdout.strip()
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1))


def test_authserver_image_serves_a_token_as_non_root_on_a_read_only_root_and_a_fresh_volume(
    podman: Podman, container_images: dict[str, str], fresh_volume: str
) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    container = podman.run(
        "run",
        "--detach",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--volume",
        f"{fresh_volume}:/var/lib/authserver",
        "--publish",
        f"127.0.0.1:{port}:8080",
        "--env",
        f"AUTHSERVER_ADMIN_TOKEN={ADMIN_TOKEN}",
        "--env",
        f"AUTHSERVER_ISSUER={issuer}",
        container_images["authserver"],
    ).stdout.strip()
    try:
        _wait_ready(podman, container, f"{issuer}/readyz")
        assert _process_uid(podman, container) == SERVER_UID
        with httpx.Client(base_url=issuer, timeout=10) as http:
            registered = http.put(
                "/admin/clients/orders-api",
                json={"name": "orders-api", "grant_types": ["client_credentials"], "scopes": ["orders.read"]},
                headers=admin_headers(),
            )
            assert registered.status_code in (200, 201), registered.text
            issued = http.post(
                "/token",
                data={"grant_type": "client_credentials", "scope": "orders.read"},
                headers=basic("orders-api", registered.json()["client_secret"]),
            )
            assert issued.status_code == 200, issued.text
            token = issued.json()["access_token"]
            keys = jwt.PyJWKSet.from_dict(http.get("/.well-known/jwks.json").json())
        claims = jwt.decode(
            token,
            keys[jwt.get_unverified_header(token)["kid"]],
            algorithms=["ES256"],
            issuer=issuer,
            audience=issuer,
        )
        assert claims["client_id"] == "orders-api"
        # The SQLite database and the key file landed on the volume, owned by the server's user.
        listing = podman.run("exec", container, "ls", "-ln", "/var/lib/authserver").stdout
        assert re.search(rf"^-\S+\s+\d+\s+{SERVER_UID}\s+{SERVER_UID}\s+.*authserver\.db$", listing, re.M), (
            listing
        )
    finally:
        podman.run("rm", "--force", "--time", "5", container, check=False)


def test_authserver_image_ships_no_operator(podman: Podman, container_images: dict[str, str]) -> None:
    probe = podman.run(
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        container_images["authserver"],
        "-c",
        "command -v authyard-operator; python -c 'import authyard_operator' 2>/dev/null && echo importable;"
        " true",
    )
    assert probe.stdout.strip() == ""


def _image_packages(podman: Podman, image: str) -> dict[str, str]:
    script = (
        "import importlib.metadata as m, json, re; print(json.dumps({re.sub(r'[-_.]+', '-', "
        "d.metadata['Name']).lower(): d.version for d in m.distributions()}))"
    )
    listed = podman.run("run", "--rm", "--entrypoint", "python", image, "-c", script)
    return json.loads(listed.stdout)


def _locked_packages(*extras: str) -> dict[str, str]:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not installed (scripts/setup.sh installs it)")
    exported = subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "--no-header"]
        + [argument for extra in extras for argument in ("--extra", extra)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    packages = {}
    # The image's interpreter is CPython 3.11 on Linux, as is the one running this test.
    for line in exported.stdout.splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==([^\s;]+)\s*(?:;(.*))?$", line)
        if match and (match.group(3) is None or Marker(match.group(3)).evaluate()):
            packages[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return packages


@pytest.mark.parametrize(("target", "extras"), [("authserver", ()), ("operator", ("operator",))])
def test_image_python_packages_equal_the_lock_file(
    podman: Podman, container_images: dict[str, str], target: str, extras: tuple[str, ...]
) -> None:
    installed = _image_packages(podman, container_images[target])
    assert installed.pop("authyard") is not None  # the project itself
    assert installed == _locked_packages(*extras)


@pytest.mark.parametrize(
    ("target", "command"), [("authserver", "authserver"), ("operator", "authyard-operator")]
)
def test_image_commands_answer_help_and_version(
    podman: Podman, container_images: dict[str, str], target: str, command: str
) -> None:
    version = podman.run("run", "--rm", "--read-only", container_images[target], "--version")
    assert version.stdout.strip() == f"{command} {metadata.version('authyard')}", version.stderr
    shown = podman.run("run", "--rm", "--read-only", container_images[target], "--help")
    assert shown.stdout.startswith("usage:"), shown.stdout[:300]
