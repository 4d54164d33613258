"""Headless Chromium (Debian's ``chromium``) through Playwright, for the tests that need a real browser."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("AUTHYARD_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _browser_required() -> bool:
    return bool(os.environ.get("CI")) or bool(os.environ.get("AUTHYARD_REQUIRE_BROWSER"))


@contextlib.contextmanager
def launched_chromium() -> Iterator[Any]:
    """A headless Chromium; skips without one, and fails instead where the suite requires the browser."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`"
        if _browser_required():
            pytest.fail(f"browser tests are required here (CI / AUTHYARD_REQUIRE_BROWSER): {message}")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()
