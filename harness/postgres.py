"""A throwaway PostgreSQL cluster from the server binaries on this machine (no mocks).

initdb and postgres refuse to run as root, and CI runs as root: then they run as the `postgres` user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from harness.ports import free_port

PG_BIN = Path(os.environ.get("AUTHYARD_PG_BIN", "/usr/lib/postgresql/15/bin"))


def postgres_available() -> bool:
    return (PG_BIN / "postgres").exists() and (os.geteuid() != 0 or shutil.which("runuser") is not None)


class PostgresCluster:
    def __init__(self, max_connections: int = 200, *, durable: bool = False) -> None:
        """``durable``: PostgreSQL's own defaults, every commit flushed to disk (what a benchmark must
        measure); otherwise fsync is off, which tests can afford and which hides the cost of a commit."""
        self.root = Path(tempfile.mkdtemp(prefix="authyard-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.max_connections = max_connections
        self.durable = durable
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            self.root.chmod(0o755)
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        return subprocess.run([*prefix, *command], check=check, capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        if not self.data.exists():
            self._run(
                str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8"
            )
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "30",
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            f"-c max_connections={self.max_connections}"
            # A durable cluster also times its WAL flushes (pg_stat_wal), so a benchmark can tell the disk's
            # share of a commit.
            + (" -c track_wal_io_timing=on" if self.durable else " -c fsync=off -c full_page_writes=off"),
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def create_database(self, name: str) -> str:
        self._run(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def url(self, database: str) -> str:
        """The SQLAlchemy URL the auth server takes."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        """The libpq URL other clients take (psycopg, node-postgres)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def run_sql_file(self, database: str, path: Path, timeout: float = 120) -> None:
        """``psql -f path`` against ``database``, stopping at the first error (raised with psql's stderr)."""
        result = subprocess.run(
            [
                str(PG_BIN / "psql"),
                "--no-psqlrc",
                "--quiet",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-f",
                str(path),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{path.name} failed to load into {database}:\n{result.stderr[-2000:]}")

    def wait_until_accepting(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            probe = self._run(
                str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), check=False
            )
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError("PostgreSQL did not start accepting connections")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
