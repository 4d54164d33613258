"""A real ``authserver serve`` process on loopback, and the ``authserver`` CLI run against the same
configuration.

The process runs in its own working directory with its own environment (database, issuer, admin token,
key file, metrics directory: :func:`server_environment`, or whatever the caller builds on
:func:`harness.processes.clean_environment`); its output goes to ``<name>.log`` there.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.ports import free_port
from harness.processes import START_TIMEOUT_SECONDS, ServerProcess, clean_environment, listen_args

CLI_TIMEOUT_SECONDS = 120.0
# The admin token of servers started with :func:`server_environment` unless the caller gives another.
ADMIN_TOKEN = "test-admin-token-with-enough-entropy-0123456789"


class CliFailed(RuntimeError):
    """``authserver <args>`` exited non-zero; the message carries its stdout and stderr."""


def authserver_command() -> list[str]:
    """The console script next to this interpreter, or the module when it is not installed as one."""
    script = Path(sys.executable).parent / "authserver"
    return [str(script)] if script.exists() else [sys.executable, "-m", "authserver"]


def run_cli(
    args: Sequence[str], env: dict[str, str], cwd: Path, *, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``authserver <args>`` with the server's configuration; with ``check``, a non-zero exit raises."""
    result = subprocess.run(
        [*authserver_command(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )
    if check and result.returncode != 0:
        raise CliFailed(
            f"authserver {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def server_environment(directory: Path, database_url: str, issuer: str, **extra: str) -> dict[str, str]:
    """A test server's configuration: its database and issuer, :data:`ADMIN_TOKEN`, a key file and a
    metrics directory in ``directory``, the key file reloaded quickly; ``extra`` adds or overrides."""
    metrics_dir = directory / "metrics"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        "AUTHSERVER_DATABASE_URL": database_url,
        "AUTHSERVER_ADMIN_TOKEN": ADMIN_TOKEN,
        "AUTHSERVER_ISSUER": issuer,
        "AUTHSERVER_SIGNING_KEYS_FILE": str(directory / "keys.json"),
        "AUTHSERVER_KEYS_RELOAD_INTERVAL": "200ms",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    return clean_environment(**{**settings, **extra})


class AuthServer(ServerProcess):
    """``authserver serve --workers N`` on 127.0.0.1:``port``, ready when ``/readyz`` answers 200.

    ``access_log``: the tests read it (and scan it for secrets); the benchmarks measure without it."""

    def __init__(
        self,
        directory: Path,
        port: int,
        env: dict[str, str],
        *,
        workers: int = 1,
        access_log: bool = True,
        name: str = "server",
    ) -> None:
        command = [
            *authserver_command(),
            "serve",
            *listen_args(port, workers),
            *(["--access-log"] if access_log else []),
        ]
        super().__init__(name, command, directory, port, env, "/readyz")
        self.workers = workers
        # Every secret a test handled while talking to this server; a log scan looks for each of them.
        self.seen_secrets: set[str] = set()

    @property
    def issuer(self) -> str:
        return self.env["AUTHSERVER_ISSUER"]

    @property
    def keys_file(self) -> Path | None:
        path = self.env.get("AUTHSERVER_SIGNING_KEYS_FILE")
        return Path(path) if path else None

    @property
    def metrics_dir(self) -> Path:
        return Path(self.env["PROMETHEUS_MULTIPROC_DIR"])

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        super().start(timeout)
        self.remember_private_keys()

    # The CLI, against the same configuration -------------------------------------------------------------

    def cli(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(args, self.env, self.directory, stdin=stdin, check=check)

    def create_client(
        self,
        name: str,
        grant_types: Sequence[str],
        scopes: Sequence[str] = (),
        redirect_uris: Sequence[str] = (),
        audiences: Sequence[str] = (),
        public: bool = False,
        *,
        client_id: str | None = None,
        pkce_optional: bool = False,
        post_logout_redirect_uris: Sequence[str] = (),
        backchannel_logout_uri: str | None = None,
        backchannel_logout_session_required: bool = False,
    ) -> dict[str, Any]:
        """``authserver clients create``; its JSON output (client_id, client_secret once)."""
        args = ["clients", "create", "--name", name]
        if client_id:
            args += ["--client-id", client_id]
        for grant in grant_types:
            args += ["--grant-type", grant]
        for scope in scopes:
            args += ["--scope", scope]
        for uri in redirect_uris:
            args += ["--redirect-uri", uri]
        for audience in audiences:
            args += ["--audience", audience]
        for uri in post_logout_redirect_uris:
            args += ["--post-logout-redirect-uri", uri]
        if backchannel_logout_uri:
            args += ["--backchannel-logout-uri", backchannel_logout_uri]
        if backchannel_logout_session_required:
            args.append("--backchannel-logout-session-required")
        if public:
            args.append("--public")
        if pkce_optional:
            args.append("--pkce-optional")
        created: dict[str, Any] = json.loads(self.cli(*args).stdout)
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
        created: dict[str, Any] = json.loads(self.cli(*args, stdin=password + "\n").stdout)
        return created

    def rotate_keys(self) -> dict[str, Any]:
        """``authserver keys rotate``: the next key becomes active; the server reloads the file."""
        self.remember_private_keys()
        rotated: dict[str, Any] = json.loads(self.cli("keys", "rotate").stdout)
        self.remember_private_keys()
        return rotated

    def remember_private_keys(self) -> None:
        if self.keys_file is not None and self.keys_file.exists():
            for key in json.loads(self.keys_file.read_text())["keys"]:
                self.seen_secrets.add(key["d"])

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
) -> Iterator[AuthServer]:
    """A started server (ready), stopped on exit. ``env`` adds AUTHSERVER_* or other variables.

    ``database_url`` defaults to a SQLite file in ``directory``. A PostgreSQL database is migrated first with
    ``authserver migrate``, as the operator does before a rollout (``serve`` migrates only SQLite itself).
    """
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = database_url or f"sqlite+aiosqlite:///{directory / 'authserver.db'}"
    server = AuthServer(
        directory,
        port,
        server_environment(directory, url, f"http://127.0.0.1:{port}", **env),
        workers=workers,
    )
    if migrate if migrate is not None else not url.startswith("sqlite"):
        server.cli("migrate")
    server.start()
    try:
        yield server
    finally:
        server.stop()
