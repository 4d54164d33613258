"""Authyard as the main benchmark runs it: ``authserver serve --workers W`` on PostgreSQL, migrated with
``authserver migrate``, clients through the admin API and credentials seeded through its own storage layer
(``bench/seed.py``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from bench import processes, seed
from bench.peers.workload import Workload, bench_script
from bench.processes import Server
from tests.support.postgres import free_port

TOKEN_PATH = "/token"  # noqa: S105 - a URL path


def environment(database_url: str, credentials: seed.Credentials, db_pool: int) -> dict[str, str]:
    """The settings ``python -m bench`` gives the server (rate limits off, room for c=50, warning logs)."""
    return processes.clean_environment(
        AUTHSERVER_DATABASE_URL=database_url,
        AUTHSERVER_ADMIN_TOKEN=credentials.admin_token,
        AUTHSERVER_TOKEN_RATE_PER_CLIENT="0",  # noqa: S106 - a rate, not a secret
        AUTHSERVER_TOKEN_RATE_PER_IP="0",  # noqa: S106
        AUTHSERVER_MAX_IN_FLIGHT="1024",
        AUTHSERVER_DB_POOL_MIN_SIZE=str(db_pool),
        AUTHSERVER_DB_POOL_MAX_SIZE=str(db_pool),
        AUTHSERVER_LOG_LEVEL="warning",
    )


@dataclass
class Authyard:
    server: Server
    database_url: str
    credentials: seed.Credentials
    user_id: str
    directory: Path
    label: str = "Authyard"
    _token: str | None = None

    @staticmethod
    def start(
        launch: Callable[[Server], Server], directory: Path, database_url: str, workers: int, db_pool: int
    ) -> Authyard:
        directory.mkdir(parents=True, exist_ok=True)
        credentials = seed.Credentials.generate()
        env = environment(database_url, credentials, db_pool)
        processes.run_cli(["migrate"], env, directory)
        server = launch(processes.authserver(directory, free_port(), workers, env))
        seed.register_clients(server.base_url, credentials)
        user_id = asyncio.run(seed.ensure_user(database_url, credentials.password))
        return Authyard(server, database_url, credentials, user_id, directory)

    def scenarios(self) -> frozenset[str]:
        return frozenset(
            {"metadata", "jwks", "client_credentials", "introspection", "refresh_token", "authorization_code"}
        )

    def workload(self, scenario: str, count: int) -> Workload:
        base = self.server.base_url
        credentials = self.credentials
        if scenario == "metadata":
            return Workload(bench_script("get.lua"), base + "/.well-known/oauth-authorization-server")
        if scenario == "jwks":
            return Workload(bench_script("get.lua"), base + "/.well-known/jwks.json")
        if scenario == "client_credentials":
            env = {"BENCH_BASIC": credentials.service_basic, "BENCH_SCOPE": seed.SERVICE_SCOPE}
            return Workload(bench_script("client_credentials.lua"), base, env)
        if scenario == "introspection":
            if self._token is None:
                self._token = seed.access_token(base, credentials)
            env = {"BENCH_BASIC": credentials.service_basic, "BENCH_TOKEN": self._token}
            return Workload(bench_script("introspection.lua"), base, env)
        if scenario in ("refresh_token", "authorization_code"):
            return self._consuming(scenario, count)
        raise ValueError(f"Authyard has no {scenario} scenario")

    def _consuming(self, scenario: str, count: int) -> Workload:
        path = self.directory / f"{scenario}-{time.monotonic_ns()}.txt"
        seeder = seed.seed_refresh_tokens if scenario == "refresh_token" else seed.seed_authorization_codes
        seeder(self.database_url, count, self.user_id, self.server.base_url, path)
        env = {
            "BENCH_BASIC": self.credentials.web_basic,
            "BENCH_CLIENT_ID": seed.WEB_CLIENT_ID,
            "BENCH_TOKEN_PATH": TOKEN_PATH,
            "BENCH_IDLE_PATH": "/",
            "BENCH_TOKEN_FILE": str(path),
            "BENCH_REDIRECT_URI": quote(seed.REDIRECT_URI, safe=""),
        }
        return Workload(bench_script(f"{scenario}.lua"), self.server.base_url, env, path)
