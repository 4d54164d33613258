"""Fixtures shared by the whole suite: real databases and a real server process."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from authserver.config import Settings
from authserver.protocol.models import User
from authserver.web.app import create_app
from harness.accounts import new_user
from harness.authserver import AuthServer, running_server
from harness.postgres import PostgresCluster
from tests.support.app import store_of
from tests.support.oauth import ADMIN_TOKEN, CALLBACK, PASSWORD, register

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()


def database_url_for(backend: str, directory: Path, cluster_getter) -> str:  # type: ignore[no-untyped-def]
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{directory / 'authserver.db'}"
    return cluster_getter().create_database(f"t_{uuid.uuid4().hex[:12]}")


def make_settings(directory: Path, database_url: str, **overrides: object) -> Settings:
    return Settings(
        issuer="http://testserver",
        database_url=database_url,
        db_auto_migrate=True,
        admin_token=ADMIN_TOKEN,
        signing_keys_file=directory / "keys.json",
        **overrides,
    )


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.contextmanager
def server_process(
    backend: str, request: pytest.FixtureRequest, *, workers: int = 2, **env: str
) -> Iterator[AuthServer]:
    """A real ``authserver serve`` on a fresh database of ``backend`` (its own SQLite file, or a new
    PostgreSQL database), with ``env`` added to its environment."""
    directory = request.getfixturevalue("tmp_path_factory").mktemp(f"serve-{backend}")
    url = None
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_cluster").create_database(f"s_{uuid.uuid4().hex[:12]}")
    with running_server(directory, url, workers=workers, **env) as started:
        yield started


def settings_for(backend: str, request: pytest.FixtureRequest, **overrides: object) -> Settings:
    """A module's settings on a fresh database of ``backend``; ``overrides`` change any setting."""
    directory = request.getfixturevalue("tmp_path_factory").mktemp(f"server-{backend}")
    url = database_url_for(backend, directory, lambda: request.getfixturevalue("postgres_cluster"))
    return make_settings(directory, url, **overrides)


@pytest.fixture(scope="module")
def settings(backend: str, request: pytest.FixtureRequest) -> Settings:
    return settings_for(backend, request)


@pytest.fixture(scope="module")
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The application in-process (its lifespan runs), over the database of ``backend``."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            http.app = app  # type: ignore[attr-defined]
            yield http


@pytest.fixture(scope="module")
async def user(app_client: httpx.AsyncClient) -> User:
    created = new_user(
        f"alice-{uuid.uuid4().hex[:6]}", PASSWORD, email="alice@example.com", name="Alice Example"
    )
    await store_of(app_client).create_user(created)
    return created


@pytest.fixture(scope="module")
async def web_client(app_client: httpx.AsyncClient) -> str:
    """A public client of the code flow with refresh tokens, redirecting to ``CALLBACK``; its client_id."""
    client_id, _ = await register(
        app_client,
        type="public",
        grant_types=["authorization_code", "refresh_token"],
        scopes=["openid", "profile", "email", "read"],
        redirect_uris=[CALLBACK],
        audiences=["https://api.example.com"],
    )
    return client_id
