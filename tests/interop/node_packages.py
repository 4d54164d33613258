"""npm packages the interop tests run (relying parties nobody here wrote), installed outside the repository.

Each package directory here holds a ``package.json`` with exact versions, its ``package-lock.json`` (integrity
hashes) and the test's script. ``npm ci`` installs it into ``$AUTHYARD_INTEROP_DIR`` (default
``~/.cache/authyard-interop``), once per lock file: node resolves imports next to the script, so the script is
copied there too.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from tests.support.programs import require_program

HERE = Path(__file__).resolve().parent
INTEROP_DIR = Path(
    os.environ.get("AUTHYARD_INTEROP_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "authyard-interop"
)
INSTALL_TIMEOUT_SECONDS = 600.0


def installed(package: str) -> Path:
    """The directory where ``package`` (a folder beside this module) is installed with its dependencies."""
    require_program("node", "AUTHYARD_REQUIRE_NODE", "nodejs")
    npm = require_program("npm", "AUTHYARD_REQUIRE_NODE", "npm")
    source = HERE / package
    target = INTEROP_DIR / package
    target.mkdir(parents=True, exist_ok=True)
    lock = (source / "package-lock.json").read_bytes()
    marker = target / ".installed-lock-sha256"
    fingerprint = hashlib.sha256(lock).hexdigest()
    for path in source.iterdir():
        if path.is_file():
            shutil.copyfile(path, target / path.name)
    if not marker.exists() or marker.read_text() != fingerprint or not (target / "node_modules").is_dir():
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
            cwd=target,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_SECONDS,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"npm ci for {package} exited {result.returncode}:\n{result.stderr[-3000:]}")
        marker.write_text(fingerprint)
    return target
