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
from harness.authserver import run_cli
from harness.ports import free_port
from harness.processes import ServerProcess

TOKEN_PATH = "/token"  # noqa: S105 - a URL path


@dataclass
class Authyard:
    server: ServerProcess
    database_url: str
    credentials: seed.Credentials
    user_id: str
    directory: Path
    label: str = "Authyard"
    _token: str | None = None

    @staticmethod
    def start(
        launch: Callable[[ServerProcess], ServerProcess],
        directory: Path,
        database_url: str,
        workers: int,
        db_pool: int,
    ) -> Authyard:
        directory.mkdir(parents=True, exist_ok=True)
        credentials = seed.Credentials.generate()
        env = processes.authserver_environment(database_url, credentials.admin_token, db_pool)
        run_cli(["migrate"], env, directory)
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
