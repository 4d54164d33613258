"""The one place that reaches into aiosqlite (``storage.sqlite.driver.private_access``) holds for the
aiosqlite the project locks, and is checked again when that changes."""

from __future__ import annotations

import sqlite3
import threading
import tomllib
from importlib import metadata
from pathlib import Path

import aiosqlite

from authserver.storage.sqlite.driver import AIOSQLITE_VERSION, private_access

LOCK_FILE = Path(__file__).resolve().parents[2] / "uv.lock"


def _locked_version(package: str) -> str:
    lock = tomllib.loads(LOCK_FILE.read_text())
    versions = [entry["version"] for entry in lock["package"] if entry["name"] == package]
    assert len(versions) == 1, f"uv.lock should hold exactly one {package}, it holds {versions}"
    return str(versions[0])


def test_the_locked_aiosqlite_is_the_one_private_access_was_written_for() -> None:
    locked = _locked_version("aiosqlite")
    assert locked == AIOSQLITE_VERSION, (
        f"uv.lock now locks aiosqlite {locked}, but authserver/storage/sqlite/driver.py reads private"
        f" attributes (Connection._conn, Connection._execute) of aiosqlite {AIOSQLITE_VERSION}: check that"
        " they still exist and mean the same in the new version, then update AIOSQLITE_VERSION"
    )
    assert metadata.version("aiosqlite") == locked, "the installed aiosqlite is not uv.lock's: run uv sync"


async def test_private_access_gives_the_connection_and_runs_on_its_thread() -> None:
    async with aiosqlite.connect(":memory:") as driver:
        connection, on_thread = private_access(driver)
        assert isinstance(connection, sqlite3.Connection)

        def where(conn: sqlite3.Connection) -> tuple[int, int]:
            return threading.get_ident(), conn.execute("SELECT 41 + 1").fetchone()[0]

        thread, answer = await on_thread(where, connection)
        assert answer == 42
        assert thread != threading.get_ident()  # aiosqlite's own thread, not the event loop's
