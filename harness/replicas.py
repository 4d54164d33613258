"""Several auth server replicas deployed the way the operator deploys them, on loopback.

One PostgreSQL cluster, reached through a real PgBouncer in transaction pooling mode (Debian's
``pgbouncer``), configured by the operator's own renderer (``authyard_operator.resources.pgbouncer``) from
the pool sizes the operator computes for an AuthServer spec (``authyard_operator.sizing``). N ``authserver
serve --workers 2`` processes, each with the configuration the operator renders for that spec (its ConfigMap
and the PgBouncer overrides of its Deployment), the signing keys in one file they all read (one Secret
mounted into every pod). In front, a real HAProxy on loopback balancing requests round robin and
health-checking ``/readyz`` as a Service's readiness probe does, with no retries and no redispatch (kube-proxy
has neither).

:meth:`Replicas.add_replica` starts one more replica and puts it in HAProxy's rotation once it is ready;
:meth:`Replicas.remove_replica` takes one out gracefully: drained in HAProxy (no new requests), then SIGTERM
(the server's own drain and shutdown). HAProxy holds a fixed number of server slots (``max_replicas``); a slot
without a replica is in maintenance.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from authyard_operator.constants import PGBOUNCER_DATABASE_ALIAS
from authyard_operator.dburl import DatabaseUrl, parse_database_url
from authyard_operator.resources.configmap import render_configmap
from authyard_operator.resources.pgbouncer import databases_ini, pgbouncer_ini, userlist
from authyard_operator.sizing import PoolSizing, size_pools
from authyard_operator.spec.authserver import AuthServerSpec

from harness.authserver import AuthServer, run_cli, server_environment
from harness.ports import free_port
from harness.postgres import PostgresCluster

WORKERS = 2
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0
# The operator's readiness probe (/readyz, a 2 s timeout, 3 failures before a pod leaves the Service), at a
# period of 200 ms instead of 5 s so that replicas enter and leave the rotation quickly. One slow answer on
# a busy machine must not take a replica out: with every replica out at once, HAProxy answers 503 itself.
HEALTH_CHECK = "inter 200ms fall 3 rise 2"
CHECK_TIMEOUT = "2s"
# The database user's password: PostgreSQL here trusts loopback, but PgBouncer authenticates its clients
# with it (SCRAM against the plaintext auth file, as the operator's Secret holds it).
DATABASE_PASSWORD = "harness-database-password"


class HarnessError(RuntimeError):
    """A program of the harness did not start or did not reach the state asked for (its log says why)."""


def _wait_until(condition: Any, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
            raise HarnessError(f"{what} not within {timeout:.0f} s\n{tail}")
        time.sleep(0.05)


def _accepts(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class PgBouncer:
    """Debian's ``pgbouncer`` with the operator's configuration, on a loopback port of its own.

    Runs as the ``postgres`` user when this process is root (PgBouncer refuses root), from a directory of
    its own that user can reach (a test's directory is private to root); :meth:`stop` removes it."""

    def __init__(self, sizing: PoolSizing, database: DatabaseUrl) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="authyard-pgbouncer-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        (self.directory / "databases.ini").write_text(databases_ini(database))
        (self.directory / "userlist.txt").write_text(userlist(database))
        (self.directory / "pgbouncer.ini").write_text(self._local(pgbouncer_ini(sizing, database)))
        for path in self.directory.iterdir():
            path.chmod(0o600)
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            for path in (self.directory, *self.directory.iterdir()):
                shutil.chown(path, "postgres", "postgres")

    def _local(self, rendered: str) -> str:
        """The rendered file with this machine's paths and port: the pool settings stay as rendered."""
        local = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "auth_file": str(self.directory / "userlist.txt"),
        }
        lines = []
        for line in rendered.splitlines():
            key = line.split("=", 1)[0].strip()
            if key in local:
                line = f"{key} = {local[key]}"
            elif line.startswith("%include"):
                line = f"%include {self.directory / 'databases.ini'}"
            lines.append(line)
        return "\n".join(lines) + "\n"

    @property
    def log_path(self) -> Path:
        return self.directory / "pgbouncer.log"

    def start(self) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*prefix, "pgbouncer", str(self.directory / "pgbouncer.ini")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # runuser and pgbouncer go down together
            )
        process = self.process

        def listening() -> bool:
            if process.poll() is not None:
                raise HarnessError(f"pgbouncer exited:\n{self.log_path.read_text(errors='replace')}")
            return _accepts(self.port)

        _wait_until(listening, START_TIMEOUT_SECONDS, "pgbouncer listening", self.log_path)

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT_SECONDS)
            self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)


class HAProxy:
    """Debian's ``haproxy`` balancing HTTP requests round robin over ``slots`` server slots, health-checked
    on ``/readyz``; its runtime API on a Unix socket.

    ``in_maintenance``: every slot starts in maintenance until put in rotation (``set server ... state
    ready``); otherwise every slot is in rotation once its health checks pass. ``health_check`` and
    ``check_timeout`` (None: the check interval) say how often, how patiently and after how many answers.
    ``close_server_connections``: a new connection to the backend for each request, so that a replica's
    connection balancing spreads the requests over its workers as many clients on their own connections do
    (reused connections carry a light load to one worker of each replica, which then admits only its own
    share of a rate limit)."""

    def __init__(
        self,
        directory: Path,
        slots: list[int],
        *,
        in_maintenance: bool = True,
        close_server_connections: bool = True,
        health_check: str = HEALTH_CHECK,
        check_timeout: str | None = CHECK_TIMEOUT,
        binary: str = "haproxy",
    ) -> None:
        self.directory = directory
        self.port = free_port()
        self.slots = slots  # the backend port of each slot
        self.binary = binary
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        state = " disabled" if in_maintenance else ""
        servers = "\n".join(
            f"    server s{index} 127.0.0.1:{port} check{state}" for index, port in enumerate(slots)
        )
        # No retries and no redispatch, as kube-proxy has none: a refused connection or one closed under a
        # request is a failed request, not one quietly retried on another backend.
        (directory / "haproxy.cfg").write_text(
            f"""
global
    stats socket {directory}/admin.sock mode 600 level admin
    maxconn 4000

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 0
    no option redispatch
{"    option http-server-close" if close_server_connections else ""}
{f"    timeout check {check_timeout}" if check_timeout else ""}

frontend authserver
    bind 127.0.0.1:{self.port}
    default_backend authservers

backend authservers
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server {health_check}
{servers}
"""
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "haproxy.log"

    def start(self) -> None:
        config = self.directory / "haproxy.cfg"
        checked = subprocess.run(
            [self.binary, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30, check=False
        )
        if checked.returncode != 0:
            raise HarnessError(f"haproxy refused its configuration:\n{checked.stdout}{checked.stderr}")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-db", "-f", str(config)], stdout=log, stderr=log, start_new_session=True
            )
        process = self.process

        def serving() -> bool:
            if process.poll() is not None:
                raise HarnessError(f"haproxy exited:\n{self.log_path.read_text(errors='replace')}")
            return (self.directory / "admin.sock").exists() and _accepts(self.port)

        _wait_until(serving, START_TIMEOUT_SECONDS, "haproxy serving", self.log_path)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def command(self, line: str) -> str:
        """One command of HAProxy's runtime API; its answer."""
        with socket.socket(socket.AF_UNIX) as admin:
            admin.settimeout(5)
            admin.connect(str(self.directory / "admin.sock"))
            admin.sendall(line.encode() + b"\n")
            data = b""
            while chunk := admin.recv(65536):
                data += chunk
        return data.decode()

    def servers(self) -> dict[str, dict[str, str]]:
        """Each slot's row of ``show stat`` (status, scur: requests in progress, ...), by slot name."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "authservers" and row.get("svname", "").startswith("s"):
                rows[row["svname"]] = row
        return rows

    def wait_for_status(self, slot: str, status: str, timeout: float = START_TIMEOUT_SECONDS) -> None:
        _wait_until(
            lambda: self.servers()[slot]["status"].startswith(status),
            timeout,
            f"HAProxy seeing {slot} {status}",
        )


@dataclass
class Replica:
    slot: int
    server: AuthServer


class Replicas:
    """The whole deployment (see the module's docstring); :meth:`start` with ``replicas`` of them, then add
    and remove. ``spec`` is the AuthServer spec the operator would render (without ``database``,
    ``replicas`` or ``workers``: those follow from the harness); ``max_replicas`` is the most at once (its
    connection budget is computed for that many, as an HPA's maxReplicas)."""

    def __init__(
        self,
        directory: Path,
        cluster: PostgresCluster,
        *,
        max_replicas: int,
        max_connections: int,
        spec: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.cluster = cluster
        self.database_name = "replicas"
        self.spec = AuthServerSpec.model_validate(
            {
                **(spec or {}),
                "replicas": max_replicas,
                "workers": WORKERS,
                "database": {
                    "urlSecretRef": {"name": "db", "key": "url"},
                    "maxConnections": max_connections,
                    "pooler": {"type": "pgbouncer", "instances": 1},
                },
            }
        )
        self.sizing = size_pools(self.spec)
        if not self.sizing.fits:
            raise HarnessError(self.sizing.message)
        self.extra_env = env or {}
        self.url = (
            f"postgresql+asyncpg://postgres:{DATABASE_PASSWORD}@127.0.0.1:{cluster.port}/{self.database_name}"
        )
        self.pgbouncer = PgBouncer(self.sizing, parse_database_url(self.url))
        self.haproxy = HAProxy(directory / "haproxy", [free_port() for _ in range(max_replicas)])
        self.keys_file = directory / "signing-keys.json"
        self.replicas: list[Replica] = []
        self._started = 0

    @property
    def base_url(self) -> str:
        return self.haproxy.base_url

    @property
    def issuer(self) -> str:
        # What clients see: the load balancer's name, never a replica's.
        return "http://auth.replicas.test"

    def environment(self, directory: Path) -> dict[str, str]:
        """What the operator gives a pod (its ConfigMap, the URL Secret, the PgBouncer overrides), with this
        machine's paths, the load balancer's issuer and a short drain."""
        rendered = render_configmap("auth", "harness", self.spec, self.sizing)["data"]
        # Paths and addresses only a pod has (its Secret's key file, the cluster's issuer with the pod's own
        # token): the harness gives its own or none.
        pod_only = ("AUTHSERVER_ISSUER", "AUTHSERVER_SIGNING_KEYS_FILE", "AUTHSERVER_TRUSTED_ISSUERS_FILE")
        for in_cluster in pod_only:
            rendered.pop(in_cluster, None)
        settings = {
            **rendered,
            "AUTHSERVER_DATABASE_URL": self.url,
            "AUTHSERVER_DATABASE_HOST_OVERRIDE": "127.0.0.1",
            "AUTHSERVER_DATABASE_PORT_OVERRIDE": str(self.pgbouncer.port),
            "AUTHSERVER_DATABASE_NAME_OVERRIDE": PGBOUNCER_DATABASE_ALIAS,
            "AUTHSERVER_DATABASE_SSL_OVERRIDE": "disable",
            "AUTHSERVER_GENERATE_SIGNING_KEYS": "true",  # the first replica writes the shared file
            "AUTHSERVER_SHUTDOWN_DRAIN": "1s",
            "AUTHSERVER_SHUTDOWN_TIMEOUT": "10s",
            "AUTHSERVER_LOG_LEVEL": "warning",
            **self.extra_env,
        }
        return server_environment(
            directory, self.url, self.issuer, AUTHSERVER_SIGNING_KEYS_FILE=str(self.keys_file), **settings
        )

    def start(self, replicas: int) -> None:
        self.cluster.create_database(self.database_name)
        # `authserver migrate` straight to PostgreSQL, as the operator's init container does (it needs a
        # session: advisory locks, DDL), before anything goes through PgBouncer.
        migration = self.directory / "migrate"
        migration.mkdir(parents=True, exist_ok=True)
        env = self.environment(migration)
        for key in ("HOST", "PORT", "NAME", "SSL"):
            env.pop(f"AUTHSERVER_DATABASE_{key}_OVERRIDE")
        run_cli(["migrate"], env, migration)
        self.pgbouncer.start()
        self.haproxy.start()
        self.add_replicas(replicas)

    def add_replica(self) -> Replica:
        """Start a replica in a free slot; once it is ready, HAProxy puts it in rotation."""
        return self.add_replicas(1)[0]

    def add_replicas(self, count: int) -> list[Replica]:
        """Start ``count`` replicas side by side (as a Deployment scaling up does), each in a free slot and
        put in rotation once ready."""
        used = {replica.slot for replica in self.replicas}
        slots = [index for index in range(len(self.haproxy.slots)) if index not in used][:count]
        if len(slots) < count:
            raise HarnessError(f"no free slot for {count} more replicas ({len(self.haproxy.slots)} slots)")
        servers = []
        for slot in slots:
            self._started += 1
            directory = self.directory / f"replica-{self._started}"
            directory.mkdir()
            port = self.haproxy.slots[slot]
            environment = self.environment(directory)
            servers.append(AuthServer(directory, port, environment, workers=WORKERS, access_log=False))
        if not self.keys_file.exists():
            servers[0].start(START_TIMEOUT_SECONDS)  # it writes the key file the others read
        with ThreadPoolExecutor(len(servers)) as starting:
            list(starting.map(lambda server: server.running or server.start(START_TIMEOUT_SECONDS), servers))
        added = []
        for slot, server in zip(slots, servers, strict=True):
            self.haproxy.command(f"set server authservers/s{slot} state ready")
            self.haproxy.wait_for_status(f"s{slot}", "UP")
            added.append(Replica(slot, server))
        self.replicas.extend(added)
        return added

    def remove_replica(self, replica: Replica | None = None) -> int | None:
        """Take a replica (the newest by default) out gracefully: HAProxy drains it (no new requests; those
        under way finish), then SIGTERM. Its exit status."""
        replica = replica or self.replicas[-1]
        name = f"s{replica.slot}"
        self.haproxy.command(f"set server authservers/{name} state drain")
        _wait_until(
            lambda: self.haproxy.servers()[name]["scur"] == "0",
            STOP_TIMEOUT_SECONDS,
            f"HAProxy draining {name}",
        )
        status = replica.server.stop(STOP_TIMEOUT_SECONDS)
        self.haproxy.command(f"set server authservers/{name} state maint")
        self.replicas.remove(replica)
        return status

    def stop(self) -> None:
        if self.replicas:
            with ThreadPoolExecutor(len(self.replicas)) as stopping:  # each drains: side by side, not in turn
                list(stopping.map(lambda replica: replica.server.stop(), self.replicas))
        self.replicas.clear()
        self.haproxy.stop()
        self.pgbouncer.stop()


@contextlib.contextmanager
def running_replicas(
    directory: Path,
    cluster: PostgresCluster,
    replicas: int,
    *,
    max_replicas: int,
    max_connections: int,
    spec: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Replicas]:
    """:class:`Replicas` started with ``replicas`` replicas, everything stopped on exit."""
    deployment = Replicas(
        directory, cluster, max_replicas=max_replicas, max_connections=max_connections, spec=spec, env=env
    )
    try:
        deployment.start(replicas)
        yield deployment
    finally:
        deployment.stop()
