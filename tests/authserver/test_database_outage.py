"""A PostgreSQL outage: fast 503s and readiness false while it is down, recovery without a restart."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from authserver.web.app import create_app
from harness.postgres import PostgresCluster
from tests.conftest import make_settings
from tests.support.oauth import admin_headers, basic, register


@pytest.fixture
async def outage_setup(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, PostgresCluster]]:
    cluster = PostgresCluster()  # its own cluster: this test stops it
    cluster.start()
    try:
        settings = make_settings(
            tmp_path, cluster.create_database("outage"), db_pool_timeout="1s", client_cache_ttl="0s"
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                yield http, cluster
    finally:
        cluster.destroy()


async def test_outage_answers_503_fast_and_recovers_by_itself(outage_setup) -> None:
    http, cluster = outage_setup
    client_id, body = await register(http)
    auth = basic(client_id, body["client_secret"])
    assert (
        await http.post("/token", data={"grant_type": "client_credentials"}, headers=auth)
    ).status_code == 200

    cluster.stop()
    started = time.perf_counter()
    token = await http.post("/token", data={"grant_type": "client_credentials"}, headers=auth)
    admin = await http.get(f"/admin/clients/{client_id}", headers=admin_headers())
    ready = await http.get("/readyz")
    page = await http.get("/authorize", params={"response_type": "code", "client_id": client_id})
    elapsed = time.perf_counter() - started
    assert token.status_code == 503 and token.json()["error"] == "temporarily_unavailable"
    assert token.headers["retry-after"] == "1" and token.headers["cache-control"] == "no-store"
    assert admin.status_code == 503
    # The sign-in page too (served from the edge's table, with the application's own error handlers).
    assert page.status_code == 503 and page.json()["error"] == "temporarily_unavailable"
    assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
    assert (await http.get("/healthz")).status_code == 200  # liveness stays true: no restart storm
    assert elapsed < 5, f"requests hung for {elapsed:.1f}s during the outage"

    cluster.start()
    cluster.wait_until_accepting()
    assert (await http.get("/readyz")).status_code == 200
    after = await http.post("/token", data={"grant_type": "client_credentials"}, headers=auth)
    assert after.status_code == 200, after.text  # the acknowledged registration survived the restart
