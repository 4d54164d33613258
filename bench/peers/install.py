"""The peers' software, pinned, installed outside the repository and never into the project venv.

Everything goes into a cache directory outside the repository (``$AUTHYARD_PEERS_DIR``, default
``~/.cache/authyard-bench-peers``): Authly keeps an encrypted secrets store in ``.authly/`` beside the first
``pyproject.toml`` above its installed package, which inside this repository would be the repository root.
Authly gets its own venv there, made with ``uv`` when there is one, else ``python -m venv`` and pip, with
uvloop and httptools at the project venv's versions: both Python servers run the same event loop and HTTP
parser. Authly's wheel has no database schema: its sdist does
(``docker-postgres/init-db-and-user.sql``, what its Docker Compose setup runs), so the sdist of the same
version is downloaded once and that one file kept. oidc-provider is installed with npm from the pinned
``bench/peers/oidc_provider/package.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from importlib import metadata
from pathlib import Path

from bench.processes import REPO

AUTHLY_VERSION = "0.5.7"
PEERS_DIR = Path(
    os.environ.get("AUTHYARD_PEERS_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "authyard-bench-peers"
)
OIDC_PROVIDER_SOURCE = Path(__file__).resolve().parent / "oidc_provider"
INSTALL_TIMEOUT_SECONDS = 600.0
SCHEMA_MEMBER = "docker-postgres/init-db-and-user.sql"


def _run(command: list[str], cwd: Path | None = None) -> None:
    result = subprocess.run(  # noqa: S603 - installers with arguments built here
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-2000:]}")


def _uv() -> str | None:
    local = REPO / ".venv" / "bin" / "uv"
    return str(local) if local.exists() else shutil.which("uv")


def _same_as_project(package: str) -> str:
    """``package==<the project venv's version>``, or just ``package`` if the project has none."""
    try:
        return f"{package}=={metadata.version(package)}"
    except metadata.PackageNotFoundError:
        return package


def authly_requirements() -> list[str]:
    return [f"authly=={AUTHLY_VERSION}", _same_as_project("uvloop"), _same_as_project("httptools")]


def authly_venv() -> Path:
    """The Python of a venv holding Authly (pinned) and pip, on the project's own interpreter (both Python
    servers run on the same CPython build); made once, remade when the pins or that interpreter change."""
    if PEERS_DIR.resolve().is_relative_to(REPO):
        raise RuntimeError(f"{PEERS_DIR} is inside the repository: Authly would write .authly/ at its root")
    venv = PEERS_DIR / f"authly-{AUTHLY_VERSION}-venv"
    python = venv / "bin" / "python"
    marker = venv / ".bench-requirements"
    base_python = os.path.realpath(sys.executable)  # the project's interpreter, not its venv
    wanted = "\n".join([f"# {base_python}", *authly_requirements()])
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    shutil.rmtree(venv, ignore_errors=True)
    PEERS_DIR.mkdir(parents=True, exist_ok=True)
    uv = _uv()
    if uv is not None:
        _run([uv, "venv", "--quiet", "--seed", "--python", base_python, str(venv)])
        _run([uv, "pip", "install", "--quiet", "--python", str(python), *authly_requirements()])
    else:
        _run([base_python, "-m", "venv", str(venv)])
        _run([str(python), "-m", "pip", "install", "--quiet", *authly_requirements()])
    marker.write_text(wanted)
    return python


def authly_schema(python: Path) -> Path:
    """Authly's own schema file for the pinned version, from its sdist (downloaded once)."""
    schema = PEERS_DIR / f"authly-{AUTHLY_VERSION}-schema.sql"
    if schema.exists():
        return schema
    download = PEERS_DIR / "sdist"
    download.mkdir(parents=True, exist_ok=True)
    sdist = download / f"authly-{AUTHLY_VERSION}.tar.gz"
    if not sdist.exists():
        _run(
            [
                str(python),
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--dest",
                str(download),
                f"authly=={AUTHLY_VERSION}",
            ]
        )
    member = f"authly-{AUTHLY_VERSION}/{SCHEMA_MEMBER}"
    with tarfile.open(sdist) as archive:
        extracted = archive.extractfile(member)
        if extracted is None:
            raise RuntimeError(f"{sdist} has no {member}")
        schema.write_bytes(extracted.read())
    return schema


def oidc_provider_dir() -> Path | None:
    """A directory with server.mjs and its node_modules (npm, pinned), or None without node and npm."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return None
    target = PEERS_DIR / "oidc-provider"
    target.mkdir(parents=True, exist_ok=True)
    package = (OIDC_PROVIDER_SOURCE / "package.json").read_bytes()
    digest = hashlib.sha256(package).hexdigest()
    marker = target / ".bench-package-sha256"
    if not (marker.exists() and marker.read_text() == digest and (target / "node_modules").is_dir()):
        (target / "package.json").write_bytes(package)
        _run([npm, "install", "--omit=dev", "--no-audit", "--no-fund", "--loglevel=error"], cwd=target)
        marker.write_text(digest)
    # The server script next to its node_modules: ES module imports resolve from the script's directory.
    shutil.copyfile(OIDC_PROVIDER_SOURCE / "server.mjs", target / "server.mjs")
    return target


def versions(python: Path, packages: tuple[str, ...]) -> dict[str, str]:
    """The installed versions of ``packages`` in the venv of ``python`` (for the results file)."""
    code = (
        "import json, sys\nfrom importlib import metadata\n"
        "print(json.dumps({p: metadata.version(p) for p in sys.argv[1:]}))"
    )
    result = subprocess.run(  # noqa: S603 - the peer venv's python with a fixed script
        [str(python), "-c", code, *packages], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        return {}
    return dict(json.loads(result.stdout))
