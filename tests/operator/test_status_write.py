"""Status reaches the API server from one module: what the handlers stage on kopf's patch, and the status
subresource patch of a readiness update."""

from __future__ import annotations

import re
from pathlib import Path

import authyard_operator

PACKAGE = Path(authyard_operator.__file__).parent
# Staging on kopf's patch, or patching the status subresource through the client.
STATUS_WRITE = re.compile(r"\.status\.update\(|\.patch_status\(")


def test_every_status_write_goes_through_the_status_module() -> None:
    writers = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if STATUS_WRITE.search(path.read_text())
    }
    assert writers == {"status/write.py"}
