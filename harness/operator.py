"""``authyard-operator`` as a child process against the emulated API, and an AuthServer it reconciled
served for real: ``authserver serve`` on loopback and PostgreSQL, with the admin token the operator
generated (what the Deployment's pods would run).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from harness.authserver import AuthServer, server_environment
from harness.kube import AUTHSERVERS, custom_resource
from harness.kube_emulator import AuthyardEmulator
from harness.polling import wait_for
from harness.ports import free_port
from harness.postgres import PostgresCluster

OPERATOR_SCRIPT = [str(Path(sys.executable).parent / "authyard-operator")]
PLATFORM, TEAM = "platform", "team-a"
# Settings a child operator must not inherit from the shell that started a benchmark.
OPERATOR_ENV_PREFIXES = ("AUTHYARD_", "KUBERNETES_")

Operator = TypeVar("Operator")


def operator_process_env(issuer: str, *, log_level: str = "debug", **extra: str) -> dict[str, str]:
    """``authyard-operator`` as one replica without leader election, reaching the admin API at ``issuer``,
    its health and metrics on free ports. ``debug``: the most output for a secrets scan to read."""
    return {
        "AUTHYARD_LEADER_ELECTION": "false",
        "AUTHYARD_ADMIN_URL_TEMPLATE": issuer,
        "AUTHYARD_HEALTH_PORT": str(free_port()),
        "AUTHYARD_METRICS_PORT": str(free_port()),
        "AUTHYARD_LOG_LEVEL": log_level,
        **extra,
    }


async def scrape_reconciles(metrics_port: int) -> dict[tuple[str, str], float]:
    """``authyard_operator_reconciles_total`` of an operator process, by (kind, result)."""
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "authyard_operator_reconciles":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[(sample.labels["kind"], sample.labels["result"])] = sample.value
    return counts


def oauthclient(name: str, namespace: str = TEAM, **spec: Any) -> dict[str, Any]:
    """An OAuthClient of ``platform/auth``: client_credentials, scope ``orders.read``, its credentials in
    the Secret ``<name>-oauth``; ``spec`` adds or overrides fields."""
    defaults = {
        "authServerRef": {"name": "auth", "namespace": PLATFORM},
        "grantTypes": ["client_credentials"],
        "scopes": ["orders.read"],
        "secret": {"name": f"{name}-oauth"},
    }
    return custom_resource("OAuthClient", name, namespace, {**defaults, **spec})


def ready_condition(obj: dict[str, Any] | None) -> dict[str, Any]:
    """The ``Ready`` condition of a custom resource's status (empty when it has none)."""
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Ready"), {})


async def registered_client_ids(base_url: str, admin_token: str) -> list[str]:
    """Every client_id the auth server has (all pages of the admin API's list)."""
    ids: list[str] = []
    after: str | None = None
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for _ in range(1000):  # bounded: 1000 pages of 1000
            params: dict[str, Any] = {"limit": 1000, **({"after": after} if after else {})}
            response = await http.get(
                "/admin/clients", params=params, headers={"Authorization": f"Bearer {admin_token}"}
            )
            assert response.status_code == 200, response.text
            page = [client["client_id"] for client in response.json()]
            ids += page
            if len(page) < 1000:
                return ids
            after = page[-1]
    raise AssertionError("the admin API's client list did not end")


class OperatorProcess:
    """An operator in a child process: real SIGTERM (``stop``) and SIGKILL (``kill``), its own
    environment (e.g. a distinct identity per replica), and its output in ``log_path``.

    ``command`` is the full command line (the console script, or ``python -m kopf ...``). The child gets
    ``os.environ`` (including a test's KUBECONFIG and timer settings) plus ``env``; with ``isolated``,
    without any AUTHYARD_*/KUBERNETES_* variable of this process (a benchmark's production settings)."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        isolated: bool = False,
    ) -> None:
        self.command = list(command)
        self.env = dict(env or {})
        self.log_path = log_path
        self.timeout = timeout
        self.isolated = isolated
        self.starts = 0
        self.process: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _environment(self) -> dict[str, str]:
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not (self.isolated and key.startswith(OPERATOR_ENV_PREFIXES))
        }
        return {**inherited, **self.env}

    async def start(
        self, *, ready: Callable[[], Any] | None = None, ready_timeout: float | None = None
    ) -> OperatorProcess:
        if self.running:
            raise RuntimeError("the operator is already running")
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=self._environment(),
            )
        self.starts += 1
        if ready is not None:
            process = self.process
            try:
                await wait_for(
                    lambda: process.returncode is not None or ready(),
                    ready_timeout or self.timeout,
                    message=lambda: f"the operator did not become ready:\n{self.output[-3000:]}",
                )
            except BaseException:
                await self.kill()
                raise
            if process.returncode is not None:
                raise RuntimeError(
                    f"the operator exited ({process.returncode}) during start-up:\n{self.output}"
                )
        return self

    async def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Signal the process (SIGTERM: graceful) and wait; SIGKILL if it outlives the timeout."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.returncode is None:
            process.send_signal(sig)
            try:
                await asyncio.wait_for(process.wait(), self.timeout)
            except TimeoutError:
                process.kill()
                await process.wait()
        return process.returncode

    async def kill(self) -> int | None:
        """SIGKILL: no shutdown handlers run (a crashed or evicted pod)."""
        return await self.stop(signal.SIGKILL)

    async def restart(self, **start_kwargs: Any) -> OperatorProcess:
        await self.stop()
        return await self.start(**start_kwargs)


@dataclass
class ServedAuthServer(Generic[Operator]):
    operator: Operator
    server: AuthServer
    admin_token: str


@contextlib.asynccontextmanager
async def served_authserver(
    emulator: AuthyardEmulator,
    cluster: PostgresCluster,
    directory: Path,
    start_operator: Callable[[str], Awaitable[Operator]],
    *,
    timeout: float = 20.0,  # noqa: ASYNC109 -- the deadline of each step
    workers: int = 1,
    **server_env: str,
) -> AsyncIterator[ServedAuthServer[Operator]]:
    """The AuthServer ``platform/auth`` Ready and served for real; its server stopped on exit.

    ``start_operator(issuer)`` starts the operator with the admin API at ``issuer``; then the AuthServer is
    applied through the API, and once the operator generated its admin token, ``authserver serve`` runs on
    a new database of ``cluster`` with that token (``server_env`` adds settings) and the Deployment is
    marked ready. The caller stops the operator."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    operator = await start_operator(issuer)
    async with httpx.AsyncClient(base_url=str(emulator.url), timeout=30) as http:
        response = await http.post(
            f"/apis/authyard.dev/v1alpha1/namespaces/{PLATFORM}/authservers",
            json=custom_resource(
                "AuthServer",
                "auth",
                PLATFORM,
                {"issuer": issuer, "clientPolicy": {"allowedNamespaces": [PLATFORM, TEAM]}},
            ),
        )
        response.raise_for_status()
    admin_secret = await wait_for(
        lambda: emulator.get("v1/secrets", PLATFORM, "auth-admin"), timeout, message="no admin Secret"
    )
    admin_token = base64.b64decode(admin_secret["data"]["token"]).decode()

    database = cluster.create_database(f"authserver_{port}")
    server_dir = directory / "server"
    server_dir.mkdir(parents=True)
    env = server_environment(server_dir, database, issuer, AUTHSERVER_ADMIN_TOKEN=admin_token, **server_env)
    server = AuthServer(server_dir, port, env, workers=workers)
    await asyncio.to_thread(server.cli, "migrate")
    await asyncio.to_thread(server.start)
    try:
        await wait_for(lambda: emulator.get("apps/v1/deployments", PLATFORM, "auth"), timeout)
        emulator.mark_deployment_ready(PLATFORM, "auth")
        await wait_for(
            lambda: ready_condition(emulator.get(AUTHSERVERS, PLATFORM, "auth")).get("status") == "True",
            timeout,
            message="AuthServer not Ready",
        )
        yield ServedAuthServer(operator, server, admin_token)
    finally:
        await asyncio.to_thread(server.stop)
