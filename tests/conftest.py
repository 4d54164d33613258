"""Fixtures shared by the whole suite: real databases and a real server process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from authserver.config import Settings
from authserver.crypto.passwords import hash_password
from authserver.protocol.models import User
from authserver.storage.sql_store import SqlStore
from authserver.web.app import create_app
from tests.support.oauth import ADMIN_TOKEN, PASSWORD
from tests.support.postgres import PostgresCluster

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


@pytest.fixture(scope="module")
def settings(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Settings:
    directory = tmp_path_factory.mktemp(f"server-{backend}")
    url = database_url_for(backend, directory, lambda: request.getfixturevalue("postgres_cluster"))
    return make_settings(directory, url)


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
    store: SqlStore = app_client.app.state.services.store  # type: ignore[attr-defined]
    created = User(
        user_id=str(uuid.uuid4()),
        username=f"alice-{uuid.uuid4().hex[:6]}",
        password_hash=hash_password(PASSWORD),
        email="alice@example.com",
        email_verified=True,
        name="Alice Example",
    )
    await store.create_user(created)
    return created
