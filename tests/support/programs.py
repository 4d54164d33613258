"""Real programs from the distribution that some tests run (PgBouncer, promtool, HAProxy, ...).

Where one is missing a test skips with the reason, and fails instead when the variable that the test
suite's script sets says the program must be here: CI must never pass by skipping what it was meant to run.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_program(name: str, required_by: str, package: str | None = None) -> str:
    """The program's path; skip (or fail when ``required_by`` is set in the environment) without it."""
    path = shutil.which(name) or next(
        (
            str(candidate)
            for candidate in (f"/usr/sbin/{name}", f"/usr/bin/{name}")
            if os.path.exists(candidate)
        ),
        None,
    )
    if path:
        return path
    message = (
        f"{name} is not installed (Debian package {package or name}; scripts/setup.sh --test installs it)"
    )
    if os.environ.get(required_by):
        pytest.fail(f"{message}; {required_by} is set")
    pytest.skip(message)
