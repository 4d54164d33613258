"""A real ``authserver serve`` process on loopback, and the CLI run against the same configuration.

The process runs in its own working directory with its own environment (database, issuer, admin token,
key file, metrics directory); its stdout and stderr go to ``server.log`` there so that tests can scan it.
Readiness is a poll of ``/readyz`` with a bounded deadline; shutdown is SIGTERM, then SIGKILL after a bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.oauth import ADMIN_TOKEN
from tests.support.postgres import free_port

_VENV_SCRIPT = Path(sys.executable).parent / "authserver"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
CLI_TIMEOUT_SECONDS = 60.0


def authserver_command() -> list[str]:
    """The console script next to this interpreter, or the module when it is not installed as one."""
    if _VENV_SCRIPT.exists():
        return [str(_VENV_SCRIPT)]
    return [sys.executable, "-m", "authserver"]


def server_environment(directory: Path, database_url: str, issuer: str, **extra: str) -> dict[str, str]:
    """The parent's environment without any AUTHSERVER_* leaking in, plus this server's configuration."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AUTHSERVER_") and key != "PROMETHEUS_MULTIPROC_DIR"
    }
    metrics_dir = directory / "metrics"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    env.update(
        PYTHONUNBUFFERED="1",
        AUTHSERVER_DATABASE_URL=database_url,
        AUTHSERVER_ADMIN_TOKEN=ADMIN_TOKEN,
        AUTHSERVER_ISSUER=issuer,
        AUTHSERVER_SIGNING_KEYS_FILE=str(directory / "keys.json"),
        AUTHSERVER_KEYS_RELOAD_INTERVAL="200ms",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    env.update(extra)
    return env


@dataclass
class ServerProcess:
    directory: Path
    port: int
    env: dict[str, str]
    workers: int = 1
    process: subprocess.Popen[bytes] | None = None
    # Every secret a test handled while talking to this server; the log scan looks for each of them.
    seen_secrets: set[str] = field(default_factory=set)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return self.env["AUTHSERVER_ISSUER"]

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    @property
    def keys_file(self) -> Path:
        return Path(self.env["AUTHSERVER_SIGNING_KEYS_FILE"])

    @property
    def metrics_dir(self) -> Path:
        return Path(self.env["PROMETHEUS_MULTIPROC_DIR"])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # The CLI, against the same configuration -------------------------------------------------------------

    def cli(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*authserver_command(), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.directory,
            timeout=CLI_TIMEOUT_SECONDS,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"authserver {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def create_client(
        self,
        name: str,
        grant_types: list[str],
        scopes: list[str] = (),  # type: ignore[assignment]
        redirect_uris: list[str] = (),  # type: ignore[assignment]
        audiences: list[str] = (),  # type: ignore[assignment]
        public: bool = False,
    ) -> dict[str, Any]:
        """``authserver clients create``; its JSON output (client_id, client_secret once)."""
        args = ["clients", "create", "--name", name]
        for grant in grant_types:
            args += ["--grant-type", grant]
        for scope in scopes:
            args += ["--scope", scope]
        for uri in redirect_uris:
            args += ["--redirect-uri", uri]
        for audience in audiences:
            args += ["--audience", audience]
        if public:
            args.append("--public")
        created = json.loads(self.cli(*args).stdout)
        if created.get("client_secret"):
            self.seen_secrets.add(created["client_secret"])
        return created

    def create_user(
        self, username: str, password: str, email: str | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """``authserver users create --password-stdin``."""
        args = ["users", "create", "--username", username, "--password-stdin"]
        if email:
            args += ["--email", email]
        if name:
            args += ["--name", name]
        self.seen_secrets.add(password)
        return json.loads(self.cli(*args, stdin=password + "\n").stdout)

    def rotate_keys(self) -> dict[str, Any]:
        """``authserver keys rotate``: the next key becomes active; the server reloads the file."""
        self.remember_private_keys()
        rotated = json.loads(self.cli("keys", "rotate").stdout)
        self.remember_private_keys()
        return rotated

    def remember_private_keys(self) -> None:
        if self.keys_file.exists():
            for key in json.loads(self.keys_file.read_text())["keys"]:
                self.seen_secrets.add(key["d"])

    # The process -----------------------------------------------------------------------------------------

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        command = [
            *authserver_command(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
            "--access-log",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.directory,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the workers go down with it
            )
        self.wait_ready(timeout)
        self.remember_private_keys()

    def wait_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Poll /readyz until 200 or the deadline; fail early (with the log) if the process exits."""
        deadline = time.monotonic() + timeout
        last: str = "no answer yet"
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"authserver exited with {self.process.returncode} before it was ready:\n"
                        f"{self.log_tail()}"
                    )
                try:
                    response = http.get(f"{self.base_url}/readyz")
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text}"
                except httpx.TransportError as error:
                    last = repr(error)
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"authserver not ready within {timeout}s (last: {last}):\n{self.log_tail()}")

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM, then SIGKILL to the process group after ``timeout`` seconds. Idempotent."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        # Workers that outlived their parent (they should not) go too; the group is ours.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.returncode

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # Observing workers ------------------------------------------------------------------------------------

    def requests_by_worker(self, route: str) -> dict[int, float]:
        """Requests each worker pid has counted for ``route`` (from the multiprocess metrics files)."""
        from prometheus_client.mmap_dict import MmapedDict

        counts: dict[int, float] = {}
        for path in self.metrics_dir.glob("counter_*.db"):
            pid = int(path.stem.split("_")[-1])
            total = 0.0
            for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(str(path)):
                # (metric, sample, {labels}, help); older clients: (metric, sample, names, values, help)
                parts = json.loads(key)
                sample, labels = parts[1], parts[2]
                if not isinstance(labels, dict):
                    labels = dict(zip(parts[2], parts[3], strict=False))
                if sample == "authserver_http_requests_total" and labels.get("route") == route:
                    total += value
            if total:
                counts[pid] = total
        return counts


@contextlib.contextmanager
def running_server(
    directory: Path,
    database_url: str | None = None,
    workers: int = 1,
    migrate: bool | None = None,
    **env: str,
) -> Iterator[ServerProcess]:
    """A started server (ready), stopped on exit. ``env`` adds AUTHSERVER_* or other variables.

    ``database_url`` defaults to a SQLite file in ``directory``. A PostgreSQL database is migrated first with
    ``authserver migrate``, as the operator does before a rollout (``serve`` migrates only SQLite itself).
    """
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = database_url or f"sqlite+aiosqlite:///{directory / 'authserver.db'}"
    server = ServerProcess(
        directory=directory,
        port=port,
        env=server_environment(directory, url, f"http://127.0.0.1:{port}", **env),
        workers=workers,
    )
    if migrate if migrate is not None else not url.startswith("sqlite"):
        server.cli("migrate")
    server.start()
    try:
        yield server
    finally:
        server.stop()
