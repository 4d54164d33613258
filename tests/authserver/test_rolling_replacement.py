"""A rolling update under steady token traffic loses no request: real servers behind a real HAProxy.

Three `authserver serve --workers 2` processes on one PostgreSQL sit behind HAProxy (Debian's), which
health-checks `/readyz` as a Service's readiness does. Each is replaced in turn the way a Deployment with
maxSurge 1 / maxUnavailable 0 does it: a new backend starts and becomes ready, then the old one gets SIGTERM.
Meanwhile four clients with kept-alive connections ask for tokens at a steady rate. HAProxy is configured
with no retries and no redispatch, as kube-proxy has none: a refused connection or a connection closed
under a request is a failed request here, not one quietly retried on another backend.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from harness.authserver import AuthServer, running_server, server_environment
from harness.ports import free_port
from harness.postgres import PostgresCluster, postgres_available
from harness.replicas import HAProxy
from tests.support.oauth import admin_headers, basic
from tests.support.programs import require_program

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not postgres_available(), reason="PostgreSQL server binaries not found"),
]

BACKENDS = 3
CLIENTS = 4
REQUESTS_PER_SECOND_PER_CLIENT = 25
DRAIN = "1s"
SHUTDOWN_TIMEOUT_SECONDS = 10


@pytest.fixture
def haproxy_binary() -> str:
    return require_program("haproxy", "AUTHYARD_REQUIRE_HAPROXY")


@contextlib.contextmanager
def running_haproxy(binary: str, directory: Path, backend_ports: list[int]) -> Iterator[HAProxy]:
    """Every backend in rotation once healthy, connections to them kept alive and reused (a connection a
    stopping server closes under a request would fail it)."""
    haproxy = HAProxy(
        directory,
        backend_ports,
        in_maintenance=False,
        close_server_connections=False,
        # One failed check takes a draining backend out well within its 1 s drain.
        health_check="inter 200ms fall 1 rise 2",
        check_timeout=None,
        binary=binary,
    )
    haproxy.start()
    try:
        yield haproxy
    finally:
        haproxy.stop()


@dataclass
class SteadyTraffic:
    """Clients asking for tokens at a steady pace until stopped; every outcome is recorded."""

    url: str
    client_id: str
    secret: str
    stop: threading.Event = field(default_factory=threading.Event)
    successes: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def _client(self) -> None:
        interval = 1 / REQUESTS_PER_SECOND_PER_CLIENT
        headers = basic(self.client_id, self.secret)
        with httpx.Client(base_url=self.url, timeout=10) as http:
            next_at = time.monotonic()
            while not self.stop.is_set():
                try:
                    response = http.post("/token", data={"grant_type": "client_credentials"}, headers=headers)
                    if response.status_code == 200 and "access_token" in response.json():
                        self.successes.append(time.monotonic())
                    else:
                        self.failures.append(f"{response.status_code} {response.text[:200]}")
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                next_at += interval
                # Pacing, not synchronisation: a steady rate rather than as fast as the machine allows.
                self.stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> SteadyTraffic:
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(CLIENTS)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def longest_gap(self, since: float) -> float:
        times = sorted(moment for moment in self.successes if moment >= since)
        return max((later - earlier for earlier, later in itertools.pairwise(times)), default=0.0)


def test_replacing_every_backend_under_load_fails_no_request(
    haproxy_binary: str, postgres_cluster: PostgresCluster, tmp_path: Path
) -> None:
    database = postgres_cluster.create_database("rolling_replacement")
    keys_file = str(tmp_path / "shared-signing-keys.json")  # one Secret mounted into every pod
    settings = {
        "AUTHSERVER_SIGNING_KEYS_FILE": keys_file,
        "AUTHSERVER_SHUTDOWN_DRAIN": DRAIN,
        "AUTHSERVER_SHUTDOWN_TIMEOUT": f"{SHUTDOWN_TIMEOUT_SECONDS}s",
    }
    old_ports = [free_port() for _ in range(BACKENDS)]
    new_ports = [free_port() for _ in range(BACKENDS)]

    def backend(index: int, port: int) -> AuthServer:
        directory = tmp_path / f"backend-{index}-{port}"
        directory.mkdir()
        issuer = "http://auth.example.test"  # what clients see: the load balancer's name, not a backend's
        server = AuthServer(
            directory, port, server_environment(directory, database, issuer, **settings), workers=2
        )
        server.start()
        return server

    with running_server(tmp_path / "migrate", database, **settings) as first:
        first.stop()  # it migrated the database and made the shared keys; the backends start from there
    old = [backend(index, port) for index, port in enumerate(old_ports)]
    new: list[AuthServer] = []
    try:
        with running_haproxy(haproxy_binary, tmp_path / "haproxy", old_ports + new_ports) as haproxy:
            for index in range(BACKENDS):
                haproxy.wait_for_status(f"s{index}", "UP")
                haproxy.wait_for_status(f"s{BACKENDS + index}", "DOWN")  # HAProxy starts every server as UP
            url = f"http://127.0.0.1:{haproxy.port}"
            registered = httpx.put(
                f"{url}/admin/clients/steady",
                json={"name": "steady", "grant_types": ["client_credentials"]},
                headers=admin_headers(),
                timeout=10,
            )
            assert registered.status_code in (200, 201), registered.text
            secret = registered.json()["client_secret"]

            with SteadyTraffic(url, "steady", secret) as traffic:
                deadline = time.monotonic() + 10
                while len(traffic.successes) < 50 and time.monotonic() < deadline:
                    time.sleep(0.05)
                rollout_started = time.monotonic()
                stop_seconds = []
                for index in range(BACKENDS):
                    new.append(backend(BACKENDS + index, new_ports[index]))
                    haproxy.wait_for_status(f"s{BACKENDS + index}", "UP")
                    signalled = time.monotonic()
                    exit_code = old[index].stop(timeout=SHUTDOWN_TIMEOUT_SECONDS + 10)
                    stop_seconds.append(time.monotonic() - signalled)
                    assert exit_code == 0, old[index].log_tail()
                    haproxy.wait_for_status(f"s{index}", "DOWN")
                rollout_seconds = time.monotonic() - rollout_started

        assert traffic.failures == [], f"{len(traffic.failures)} failed requests, e.g. {traffic.failures[:5]}"
        # The traffic was steady through the whole rollout: no pause longer than a health-check round.
        assert traffic.longest_gap(since=rollout_started) < 1.0
        assert len(traffic.successes) > rollout_seconds * CLIENTS * REQUESTS_PER_SECOND_PER_CLIENT * 0.5
        # Each old backend drained and stopped within its bound, and the new ones carry the traffic.
        assert all(seconds < 1 + SHUTDOWN_TIMEOUT_SECONDS for seconds in stop_seconds), stop_seconds
        for server in new:
            assert sum(server.requests_by_worker("/token").values()) > 0
    finally:
        for server in old + new:
            server.stop()


def test_sigterm_drains_then_stops(tmp_path: Path) -> None:
    """While it drains: readiness 503, requests still served, with ``Connection: close``; then exit 0."""
    with running_server(tmp_path, workers=2, AUTHSERVER_SHUTDOWN_DRAIN="3s") as server:
        client = server.create_client("drain", ["client_credentials"])
        assert server.process is not None
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        with httpx.Client(base_url=server.base_url, timeout=5) as http:
            deadline = signalled + 2
            while (ready := http.get("/readyz")).status_code == 200 and time.monotonic() < deadline:
                time.sleep(0.02)  # the master forwards the signal to both workers
            assert ready.status_code == 503 and ready.json() == {"status": "draining"}
            issued = http.post(
                "/token",
                data={"grant_type": "client_credentials"},
                headers=basic(client["client_id"], client["client_secret"]),
            )
            assert issued.status_code == 200
            assert issued.headers["connection"] == "close"
            assert server.running  # all of that while draining, before the shutdown
        assert server.process.wait(3 + SHUTDOWN_TIMEOUT_SECONDS) == 0
        assert time.monotonic() - signalled >= 3
