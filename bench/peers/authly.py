"""Authly (``authly`` on PyPI, pinned in ``install.py``) set up the way its own files describe.

- Database: a database of the shared throwaway PostgreSQL cluster, with Authly's schema file (the one its
  Docker Compose setup runs at initdb). No Redis: Authly falls back to its memory backends without one.
- Server: ``uvicorn authly.main:app --workers W --loop uvloop --http httptools`` with Authly's production
  mode and its documented environment (``DATABASE_URL``, ``JWT_SECRET_KEY``, ``JWT_REFRESH_SECRET_KEY``,
  HS256 as its default, ``AUTHLY_ADMIN_PASSWORD`` for the bootstrap admin), the command of its performance
  guide except for logging (no access log, as Authyard in ``python -m bench``; Authly's loggers at WARNING,
  uvicorn's at info for its start lines only) and without ``--limit-max-requests`` (worker recycling every
  10,000 requests would restart workers mid-run).
  ``authly serve --workers N`` is not used: it hands uvicorn an app object, so it always runs one process.
  HOME is the server's working directory: Authly writes an encrypted secrets store to ``~/.authly``.
- Start: a first boot with one worker runs Authly's admin bootstrap once (with several workers on an empty
  database they race on it). Every worker writes the secrets store at startup through the same temporary
  file name, so with several workers one of them sometimes fails to start (``No such file or directory:
  .jwt.tmp -> .jwt.store``) and uvicorn then stops them all: the harness waits until every worker has
  logged uvicorn's "Application startup complete." and starts Authly again if it died, a bounded number of
  times; the attempts it took are in the results' notes.
- Client and user: through its admin API, as its bootstrap admin (password grant with admin scopes).
- Credentials for the consuming scenarios are written straight into its tables in bulk, in the format its
  code writes: refresh tokens are HS256 JWTs (``sub``, ``type``, ``jti``, ``exp``, as
  ``authly.auth.core.create_refresh_token`` makes them) with their ``tokens`` row; authorization codes are
  ``oauth_authorization_codes`` rows (plain code, S256 challenge).
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import asyncpg
import httpx
import jwt

from authserver.protocol.pkce import s256
from bench import processes, seed
from bench.peers import log
from bench.peers.workload import Workload, bench_script, peer_script
from harness.ports import free_port
from harness.postgres import PostgresCluster
from harness.processes import ServerProcess, listen_args

API_PREFIX = "/api/v1"
TOKEN_PATH = API_PREFIX + "/oauth/token"
DATABASE = "authly"
USERNAME = "bench_user"
PASSWORD_USERS = 500  # Authly allows 5 password logins per username a minute (per worker, hard-coded)
ADMIN_SCOPES = "admin:clients:write admin:users:write"
REFRESH_TOKEN_DAYS = 7  # Authly's default REFRESH_TOKEN_EXPIRE_DAYS
SQL_TIMEOUT_SECONDS = 120.0
START_ATTEMPTS = 4
WORKERS_READY_SECONDS = 60.0
# Authly signs a new ID token on refresh when the scope has openid and the request names the client;
# Authyard signs none on refresh. Without openid a refresh is the same work on both: a rotation, two tokens.
REFRESH_SCOPE = "profile"


def create_database(cluster: PostgresCluster, schema: Path) -> str:
    """Authly's database, with its schema; the libpq URL Authly takes (it uses psycopg 3)."""
    cluster.create_database(DATABASE)
    cluster.run_sql_file(DATABASE, schema, timeout=SQL_TIMEOUT_SECONDS)
    return cluster.dsn(DATABASE)


def server(python: Path, directory: Path, port: int, workers: int, env: dict[str, str]) -> ServerProcess:
    command = [
        str(python),
        "-m",
        "uvicorn",
        "authly.main:app",
        *listen_args(port, workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--backlog",
        "2048",
        "--timeout-keep-alive",
        "30",
        # uvicorn's own loggers at info print only start and stop lines (no access log), which the start
        # needs; Authly's loggers stay at WARNING (the root logger's default: nothing configures them).
        "--log-level",
        "info",
        "--no-access-log",
    ]
    return ServerProcess(f"authly-w{workers}", command, directory, port, env, "/health")


def environment(database_url: str, directory: Path, base_url: str, admin_password: str) -> dict[str, str]:
    return processes.clean_environment(
        HOME=str(directory),
        AUTHLY_MODE="production",
        DATABASE_URL=database_url,
        JWT_SECRET_KEY=secrets.token_hex(32),
        JWT_REFRESH_SECRET_KEY=secrets.token_hex(32),
        JWT_ALGORITHM="HS256",
        AUTHLY_ADMIN_PASSWORD=admin_password,
        AUTHLY_BOOTSTRAP_DEV_MODE="false",
        DEFAULT_API_URL=base_url,
        DEFAULT_ISSUER_URL=base_url,
        LOG_LEVEL="WARNING",
        AUTHLY_LOG_LEVEL="WARNING",
    )


def _wait_for_workers(running: ServerProcess, workers: int, log_offset: int) -> None:
    """Until every worker has logged uvicorn's "Application startup complete." (its lifespan, with Authly's
    configuration, pool and bootstrap, is done), or the server died (bounded)."""
    deadline = time.monotonic() + WORKERS_READY_SECONDS
    while True:
        if running.process is None or running.process.poll() is not None:
            raise RuntimeError(f"{running.name} exited during startup:\n{running.log_tail(8)}")
        with running.log_path.open("rb") as log_file:
            log_file.seek(log_offset)
            started = log_file.read().count(b"Application startup complete.")
        if started >= workers:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{started} of {workers} {running.name} workers started:\n{running.log_tail(8)}"
            )
        time.sleep(0.05)  # poll interval


def _launch(
    launch: Callable[[ServerProcess], ServerProcess], make: Callable[[], ServerProcess], workers: int
) -> tuple[ServerProcess, int]:
    """A running Authly with all its workers up, and the number of attempts it took."""
    problem = ""
    for attempt in range(1, START_ATTEMPTS + 1):
        candidate = make()
        log_offset = candidate.log_path.stat().st_size if candidate.log_path.exists() else 0
        try:
            launch(candidate)
            _wait_for_workers(candidate, workers, log_offset)
            return candidate, attempt
        except RuntimeError as error:
            problem = str(error)
            log(f"Authly start attempt {attempt} failed: {problem.splitlines()[0]}")
            candidate.stop()
    raise RuntimeError(f"Authly did not start in {START_ATTEMPTS} attempts; last:\n{problem}")


@dataclass(frozen=True)
class Registration:
    client_id: str
    client_secret: str
    client_uuid: str
    user_id: str
    password: str


def _register(base_url: str, admin_password: str, database_url: str) -> Registration:
    """A confidential client and a verified user through the admin API, as the bootstrap admin."""
    password = secrets.token_urlsafe(18) + "-Aa1!"
    with httpx.Client(base_url=base_url, timeout=30.0) as client:
        login = client.post(
            TOKEN_PATH,
            data={
                "grant_type": "password",
                "username": "admin",
                "password": admin_password,
                "scope": ADMIN_SCOPES,
            },
        )
        if login.status_code != 200:
            raise RuntimeError(f"Authly admin login: {login.status_code} {login.text[:300]}")
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = client.post(
            "/admin/clients",
            headers=headers,
            json={
                "client_name": "Benchmark web app",
                "client_type": "confidential",
                "redirect_uris": [seed.REDIRECT_URI],
                "scope": seed.USER_SCOPE,
                "grant_types": ["authorization_code", "refresh_token"],
            },
        )
        if created.status_code not in (200, 201):
            raise RuntimeError(f"Authly POST /admin/clients: {created.status_code} {created.text[:300]}")
        user = client.post(
            "/admin/users",
            headers=headers,
            json={
                "username": USERNAME,
                "email": "bench@example.org",
                "password": password,
                "is_verified": True,
            },
        )
        if user.status_code not in (200, 201):
            raise RuntimeError(f"Authly POST /admin/users: {user.status_code} {user.text[:300]}")
    client_id = str(created.json()["client_id"])
    client_uuid = asyncio.run(
        _fetch_value(database_url, "SELECT id FROM oauth_clients WHERE client_id = $1", client_id)
    )
    return Registration(
        client_id, str(created.json()["client_secret"]), client_uuid, str(user.json()["id"]), password
    )


async def _fetch_value(database_url: str, query: str, *args: object) -> str:
    connection = await asyncpg.connect(database_url)
    try:
        return str(await connection.fetchval(query, *args))
    finally:
        await connection.close()


async def _execute_many(database_url: str, query: str, rows: list[tuple[object, ...]]) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction():
            await connection.executemany(query, rows)
    finally:
        await connection.close()


@dataclass
class Authly:
    server: ServerProcess
    database_url: str
    refresh_secret: str
    registration: Registration
    directory: Path
    usernames: Path
    start_attempts: int = 1
    label: str = "Authly"

    @staticmethod
    def start(
        launch: Callable[[ServerProcess], ServerProcess],
        python: Path,
        directory: Path,
        database_url: str,
        workers: int,
    ) -> Authly:
        directory.mkdir(parents=True, exist_ok=True)
        port = free_port()
        admin_password = secrets.token_urlsafe(18) + "-Aa1!"
        env = environment(database_url, directory, f"http://127.0.0.1:{port}", admin_password)
        # First boot with one worker: Authly's admin bootstrap (admin user, admin scopes) runs once, as a
        # deployment's first start would; then the client and user through the admin API.
        first, _ = _launch(launch, lambda: server(python, directory, port, 1, env), 1)
        registration = _register(first.base_url, admin_password, database_url)
        first.stop()
        running, attempts = _launch(launch, lambda: server(python, directory, port, workers, env), workers)
        usernames = directory / "usernames.txt"
        _clone_users(database_url, registration.user_id, usernames)
        refresh_secret = env["JWT_REFRESH_SECRET_KEY"]
        return Authly(running, database_url, refresh_secret, registration, directory, usernames, attempts)

    def scenarios(self) -> frozenset[str]:
        return frozenset({"metadata", "jwks", "refresh_token", "authorization_code", "password"})

    @property
    def basic(self) -> str:
        return seed.Credentials.basic(self.registration.client_id, self.registration.client_secret)

    def workload(self, scenario: str, count: int) -> Workload:
        base = self.server.base_url
        if scenario == "metadata":
            return Workload(bench_script("get.lua"), base + "/.well-known/oauth-authorization-server")
        if scenario == "jwks":
            return Workload(bench_script("get.lua"), base + "/.well-known/jwks.json")
        if scenario == "password":
            env = {
                "BENCH_TOKEN_PATH": TOKEN_PATH,
                "BENCH_TOKEN_FILE": str(self.usernames),
                "BENCH_PASSWORD": quote(self.registration.password, safe=""),
                "BENCH_SCOPE": quote(seed.USER_SCOPE, safe=""),
            }
            return Workload(peer_script("password.lua"), base, env)
        if scenario in ("refresh_token", "authorization_code"):
            path = self.directory / f"{scenario}-{time.monotonic_ns()}.txt"
            if scenario == "refresh_token":
                self._seed_refresh_tokens(count, path)
            else:
                self._seed_codes(count, path)
            env = {
                "BENCH_BASIC": self.basic,
                "BENCH_CLIENT_ID": self.registration.client_id,
                "BENCH_TOKEN_PATH": TOKEN_PATH,
                "BENCH_IDLE_PATH": "/",
                "BENCH_TOKEN_FILE": str(path),
                "BENCH_REDIRECT_URI": quote(seed.REDIRECT_URI, safe=""),
            }
            return Workload(bench_script(f"{scenario}.lua"), base, env, path)
        raise ValueError(f"Authly has no {scenario} scenario")

    def _seed_refresh_tokens(self, count: int, path: Path) -> None:
        now = datetime.now(UTC)
        expires_at = now + timedelta(days=REFRESH_TOKEN_DAYS)
        user_id = self.registration.user_id
        values, rows = [], []
        for _ in range(count):
            jti = secrets.token_hex(32)  # TOKEN_HEX_LENGTH 32, as Authly makes them
            claims = {"sub": user_id, "type": "refresh", "jti": jti, "exp": int(expires_at.timestamp())}
            token = jwt.encode(claims, self.refresh_secret, algorithm="HS256")
            rows.append((uuid.uuid4(), uuid.UUID(user_id), jti, token, REFRESH_SCOPE, expires_at, now))
            values.append(token)
        query = (
            "INSERT INTO tokens (id, user_id, token_jti, token_type, token_value, scope, expires_at, "
            "created_at) VALUES ($1, $2, $3, 'refresh', $4, $5, $6, $7)"
        )
        asyncio.run(_execute_many(self.database_url, query, rows))
        path.write_text("\n".join(values) + "\n")

    def _seed_codes(self, count: int, path: Path) -> None:
        expires_at = datetime.now(UTC) + timedelta(minutes=10)
        client_uuid, user_id = uuid.UUID(self.registration.client_uuid), uuid.UUID(self.registration.user_id)
        lines, rows = [], []
        for _ in range(count):
            code, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            rows.append(
                (code, client_uuid, user_id, seed.REDIRECT_URI, seed.USER_SCOPE, expires_at, s256(verifier))
            )
            lines.append(f"{code} {verifier}")
        query = (
            "INSERT INTO oauth_authorization_codes (code, client_id, user_id, redirect_uri, scope, "
            "expires_at, code_challenge, code_challenge_method) VALUES ($1, $2, $3, $4, $5, $6, $7, 'S256')"
        )
        asyncio.run(_execute_many(self.database_url, query, rows))
        path.write_text("\n".join(lines) + "\n")


def _clone_users(database_url: str, user_id: str, path: Path) -> None:
    """PASSWORD_USERS more verified users with the password (bcrypt hash) of the one made by the admin API."""
    names = [f"{USERNAME}_{index}" for index in range(PASSWORD_USERS)]
    rows: list[tuple[object, ...]] = [(name, f"{name}@example.org", uuid.UUID(user_id)) for name in names]
    query = (
        "INSERT INTO users (username, email, password_hash, is_verified) "
        "SELECT $1, $2, password_hash, true FROM users WHERE id = $3"
    )
    asyncio.run(_execute_many(database_url, query, rows))
    path.write_text("\n".join(names) + "\n")
