"""The PgBouncer configuration the operator renders, run by a real PgBouncer (Debian's), with a real auth
server pointed through it exactly as the rendered Deployment points its pods, and a token issued end to end.

The files are written as the pod mounts them; only what a loopback test host cannot reproduce is changed
(the mount directories, the listen address and port), each replacement checked to have happened once. The
database name holds a space and the password quotes, so the rendered quoting is exercised, and PostgreSQL
demands the user's password (SCRAM), as a real server does.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
import psycopg
import pytest
from authyard_operator.resources.bundle import Observed
from authyard_operator.resources.pgbouncer import CONFIG_DIR, DATABASES_KEY, INI_KEY, SECRET_DIR, USERLIST_KEY
from psycopg import sql

from harness.authserver import authserver_command, running_server, server_environment
from harness.ports import free_port
from harness.postgres import PostgresCluster, postgres_available
from tests.operator.support import CLUSTER_ISSUER, by_kind, render
from tests.support.oauth import admin_headers, basic
from tests.support.programs import require_program

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not postgres_available(), reason="PostgreSQL server binaries not found"),
]

APP_USER = "app user"
APP_PASSWORD = "p@ss'w\"rd 1"
DATABASE = "authyard prod"  # not a valid PgBouncer key: the rendered alias must carry it
START_TIMEOUT_SECONDS = 15.0


@pytest.fixture(scope="module")
def pgbouncer_binary() -> str:
    return require_program("pgbouncer", "AUTHYARD_REQUIRE_PGBOUNCER")


@pytest.fixture(scope="module")
def scram_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster(max_connections=60)
    cluster.start()
    try:
        with psycopg.connect(
            host="127.0.0.1", port=cluster.port, user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(APP_USER), sql.Literal(APP_PASSWORD)
                )
            )
            connection.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(DATABASE), sql.Identifier(APP_USER)
                )
            )
            # Everyone but the test's own superuser proves a password, as against a production server.
            (cluster.data / "pg_hba.conf").write_text(
                "local all postgres trust\n"
                "host all postgres 127.0.0.1/32 trust\n"
                "host all all 127.0.0.1/32 scram-sha-256\n"
            )
            connection.execute("SELECT pg_reload_conf()")
        yield cluster
    finally:
        cluster.destroy()


def _database_url(cluster: PostgresCluster) -> str:
    return (
        f"postgresql+asyncpg://{quote(APP_USER, safe='')}:{quote(APP_PASSWORD, safe='')}"
        f"@127.0.0.1:{cluster.port}/{quote(DATABASE, safe='')}"
    )


def _replace_once(pattern: str, replacement: str, text: str) -> str:
    result, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert count == 1, f"expected one match of {pattern!r} in the rendered pgbouncer.ini"
    return result


def _write_pod_files(children: dict[tuple[str, str], dict[str, Any]], root: Path, port: int) -> Path:
    """The ConfigMap and Secret as the pod mounts them (under ``root``); returns the ini's path."""
    config_dir, secret_dir = root / "config", root / "secret"
    config_dir.mkdir(parents=True)
    secret_dir.mkdir()
    ini = children[("ConfigMap", "auth-pgbouncer")]["data"][INI_KEY]
    ini = ini.replace(CONFIG_DIR, str(config_dir)).replace(SECRET_DIR, str(secret_dir))
    ini = _replace_once(r"^listen_addr = .*$", "listen_addr = 127.0.0.1", ini)
    ini = _replace_once(r"^listen_port = .*$", f"listen_port = {port}", ini)
    (config_dir / INI_KEY).write_text(ini)
    for key in (DATABASES_KEY, USERLIST_KEY):
        encoded = children[("Secret", "auth-pgbouncer")]["data"][key]
        (secret_dir / key).write_bytes(base64.b64decode(encoded))
    if os.geteuid() == 0:  # PgBouncer refuses to run as root: it runs as the cluster's owner
        for path in (root, config_dir, secret_dir, *config_dir.iterdir(), *secret_dir.iterdir()):
            shutil.chown(path, "postgres", "postgres")
    return config_dir / INI_KEY


@pytest.fixture(scope="module")
def rendered(scram_cluster: PostgresCluster) -> dict[tuple[str, str], dict[str, Any]]:
    spec = {
        "replicas": 2,
        "database": {
            "urlSecretRef": {"name": "auth-db", "key": "url"},
            "maxConnections": 40,
            "pooler": {"type": "pgbouncer", "instances": 1},
        },
    }
    return by_kind(
        render(spec, Observed(cluster_issuer=CLUSTER_ISSUER, database_url=_database_url(scram_cluster)))
    )


@dataclass
class PgBouncer:
    port: int
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def pgbouncer(
    pgbouncer_binary: str, scram_cluster: PostgresCluster, rendered: dict[tuple[str, str], dict[str, Any]]
) -> Iterator[PgBouncer]:
    port = free_port()
    ini = _write_pod_files(rendered, scram_cluster.root / "pgbouncer", port)
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    log = ini.parent.parent / "pgbouncer.log"
    with log.open("wb") as output:
        process = subprocess.Popen([*prefix, pgbouncer_binary, str(ini)], stdout=output, stderr=output)
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"PgBouncer exited {process.returncode} on the rendered config:\n{log.read_text()}"
                )
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"PgBouncer did not listen within {START_TIMEOUT_SECONDS} s:\n{log.read_text()}"
                    )
                time.sleep(0.05)
        yield PgBouncer(port, process)
    finally:
        PgBouncer(port, process).stop()


def _server_settings(children: dict[tuple[str, str], dict[str, Any]], pgbouncer_port: int) -> dict[str, str]:
    """What the rendered Deployment gives the server container, but the test's own issuer and key file;
    the PgBouncer Service's address becomes the loopback PgBouncer's."""
    settings = dict(children[("ConfigMap", "auth-config")]["data"])
    for key in ("AUTHSERVER_ISSUER", "AUTHSERVER_SIGNING_KEYS_FILE", "AUTHSERVER_GENERATE_SIGNING_KEYS"):
        settings.pop(key)
    # The cluster's issuer is reached with the pod's own token and CA, which only a pod has
    # (test_trusted_issuers.py checks that file).
    settings.pop("AUTHSERVER_TRUSTED_ISSUERS_FILE")
    container = children[("Deployment", "auth")]["spec"]["template"]["spec"]["containers"][0]
    literal = {entry["name"]: entry["value"] for entry in container["env"] if "value" in entry}
    assert literal["AUTHSERVER_DATABASE_HOST_OVERRIDE"] == "auth-pgbouncer.platform.svc"
    literal["AUTHSERVER_DATABASE_HOST_OVERRIDE"] = "127.0.0.1"
    literal["AUTHSERVER_DATABASE_PORT_OVERRIDE"] = str(pgbouncer_port)
    return {**settings, **literal}


def _app_connections(cluster: PostgresCluster) -> list[str]:
    """The databases of the app user's open connections."""
    with psycopg.connect(
        host="127.0.0.1", port=cluster.port, user="postgres", dbname="postgres", autocommit=True
    ) as connection:
        rows = connection.execute("SELECT datname FROM pg_stat_activity WHERE usename = %s", (APP_USER,))
        return [str(database) for (database,) in rows.fetchall()]


def test_pgbouncer_loads_the_rendered_config_and_serves_tokens_end_to_end(
    scram_cluster: PostgresCluster,
    rendered: dict[tuple[str, str], dict[str, Any]],
    pgbouncer: PgBouncer,
    tmp_path: Path,
) -> None:
    url = _database_url(scram_cluster)
    # The init container migrates against PostgreSQL itself (DDL and advisory locks need a session).
    migrate_env = server_environment(tmp_path, url, "http://127.0.0.1")
    migration = subprocess.run(
        [*authserver_command(), "migrate"], env=migrate_env, capture_output=True, text=True, timeout=120
    )
    assert migration.returncode == 0, migration.stderr

    with running_server(
        tmp_path / "server", url, workers=2, migrate=False, **_server_settings(rendered, pgbouncer.port)
    ) as server:
        with httpx.Client(base_url=server.base_url, timeout=10) as http:
            registered = http.put(
                "/admin/clients/orders-api",
                json={"name": "orders-api", "grant_types": ["client_credentials"], "scopes": ["orders.read"]},
                headers=admin_headers(),
            )
            assert registered.status_code in (200, 201), registered.text
            secret = registered.json()["client_secret"]
            server.seen_secrets.add(secret)
            for _ in range(20):  # several transactions through the pool, on both workers' connections
                issued = http.post(
                    "/token",
                    data={"grant_type": "client_credentials", "scope": "orders.read"},
                    headers=basic("orders-api", secret),
                )
                assert issued.status_code == 200, issued.text
            jwks = jwt.PyJWKSet.from_dict(http.get("/.well-known/jwks.json").json())
            token = issued.json()["access_token"]
            key = jwks[jwt.get_unverified_header(token)["kid"]]
            claims = jwt.decode(
                token, key, algorithms=["ES256"], audience=None, options={"verify_aud": False}
            )
            assert claims["client_id"] == "orders-api"
            assert claims["scope"] == "orders.read"

        # The database sees no more connections than the pooler's pool, however many the workers hold.
        databases = _app_connections(scram_cluster)
        ini = rendered[("ConfigMap", "auth-pgbouncer")]["data"][INI_KEY]
        pool_size = re.search(r"^default_pool_size = (\d+)$", ini, re.MULTILINE)
        assert pool_size is not None
        assert databases and set(databases) == {DATABASE}
        assert len(databases) <= int(pool_size.group(1))

        # And the server really goes through PgBouncer: without it, a registration cannot be stored.
        pgbouncer.stop()
        with httpx.Client(base_url=server.base_url, timeout=30) as http:
            refused = http.put(
                "/admin/clients/billing-api",
                json={"name": "billing-api", "grant_types": ["client_credentials"]},
                headers=admin_headers(),
            )
            assert refused.status_code == 503, refused.text
