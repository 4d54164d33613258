"""oidc-provider (Node.js, npm, pinned in ``oidc_provider/package.json``): the peer for the endpoints Authly
lacks, client_credentials and introspection (RFC 7662), plus JWKS and its discovery document.

``oidc_provider/server.mjs`` runs it on node:cluster with W workers, one confidential client (the same
client_id, secret and scope Authyard gets) and its tokens in a database of the shared PostgreSQL cluster
through a minimal adapter. Its client_credentials tokens are opaque (its default): each is a row written at
issuance and read at introspection, where Authyard signs an ES256 JWT and verifies it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import processes, seed
from bench.peers.workload import Workload, bench_script
from harness.ports import free_port
from harness.postgres import PostgresCluster
from harness.processes import ServerProcess

DATABASE = "oidc_provider"
DISCOVERY_PATH = "/.well-known/openid-configuration"


@dataclass
class OidcProvider:
    server: ServerProcess
    credentials: seed.Credentials
    label: str = "oidc-provider"
    _token: str | None = None

    @staticmethod
    def start(
        launch: Callable[[ServerProcess], ServerProcess],
        installed: Path,
        cluster: PostgresCluster,
        directory: Path,
        workers: int,
        db_pool: int,
    ) -> OidcProvider:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed")
        directory.mkdir(parents=True, exist_ok=True)
        cluster.create_database(DATABASE)
        credentials = seed.Credentials.generate()
        port = free_port()
        env = processes.clean_environment(
            NODE_ENV="production",
            PORT=str(port),
            WORKERS=str(workers),
            DATABASE_URL=cluster.dsn(DATABASE),
            DB_POOL=str(db_pool),
            CLIENT_ID=seed.SERVICE_CLIENT_ID,
            CLIENT_SECRET=credentials.service_secret,
            SCOPE=seed.SERVICE_SCOPE,
        )
        command = [node, str(installed / "server.mjs")]
        server = launch(
            ServerProcess(f"oidc-provider-w{workers}", command, directory, port, env, DISCOVERY_PATH)
        )
        return OidcProvider(server, credentials)

    def scenarios(self) -> frozenset[str]:
        return frozenset({"metadata", "jwks", "client_credentials", "introspection"})

    def workload(self, scenario: str, count: int) -> Workload:
        base = self.server.base_url
        if scenario == "metadata":
            return Workload(bench_script("get.lua"), base + DISCOVERY_PATH)
        if scenario == "jwks":
            return Workload(bench_script("get.lua"), base + "/.well-known/jwks.json")
        if scenario == "client_credentials":
            env = {"BENCH_BASIC": self.credentials.service_basic, "BENCH_SCOPE": seed.SERVICE_SCOPE}
            return Workload(bench_script("client_credentials.lua"), base, env)
        if scenario == "introspection":
            if self._token is None:
                self._token = seed.access_token(base, self.credentials)
            env = {"BENCH_BASIC": self.credentials.service_basic, "BENCH_TOKEN": self._token}
            return Workload(bench_script("introspection.lua"), base, env)
        raise ValueError(f"oidc-provider has no {scenario} scenario")
