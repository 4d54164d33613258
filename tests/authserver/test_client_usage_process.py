"""Usage per client across workers: a real ``authserver serve --workers 2`` on SQLite and PostgreSQL, tokens
asked on connections two different workers serve. Each worker counts in memory and flushes every 200 ms (a
test setting); ``/admin/usage`` reports the sum of both, and the last error. With a flush interval of an
hour, a graceful stop still flushes what each worker counted."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from harness.authserver import AuthServer
from harness.polling import wait_for
from tests.conftest import server_process
from tests.support.oauth import admin_headers, basic
from tests.support.worker_connections import TOKEN_ROUTE, Connection, close_all, open_on_two_workers


@pytest.fixture(scope="module")
def server(backend: str, request: pytest.FixtureRequest) -> Iterator[AuthServer]:
    with server_process(backend, request, AUTHSERVER_USAGE_FLUSH_INTERVAL="200ms") as started:
        yield started


def _client(server: AuthServer) -> tuple[str, str]:
    created = server.create_client(f"usage-{uuid.uuid4().hex[:6]}", ["client_credentials"], scopes=["read"])
    return created["client_id"], created["client_secret"]


def _usage(server: AuthServer, client_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}/admin/clients/{client_id}/usage", headers=admin_headers())
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _listed(server: AuthServer) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.base_url}/admin/usage", headers=admin_headers(), params={"limit": 1000})
    assert response.status_code == 200, response.text
    clients: list[dict[str, Any]] = response.json()["clients"]
    return clients


def _tokens(connection: Connection, client_id: str, secret: str, count: int) -> None:
    for _ in range(count):
        response = connection.http.post(
            TOKEN_ROUTE, data={"grant_type": "client_credentials"}, headers=basic(client_id, secret)
        )
        assert response.status_code == 200, response.text


async def test_tokens_from_both_workers_sum_and_the_last_error_is_reported(server: AuthServer) -> None:
    client_id, secret = _client(server)
    assert _usage(server, client_id) == {
        "client_id": client_id,
        "last_token_at": None,
        "tokens_last_hour": 0,
        "tokens_last_day": 0,
        "errors_last_hour": 0,
        "errors_last_day": 0,
        "last_error": None,
    }
    opened, (first, second) = await open_on_two_workers(server)
    try:
        _tokens(first, client_id, secret, 3)
        _tokens(second, client_id, secret, 4)
        wrong = second.http.post(
            TOKEN_ROUTE, data={"grant_type": "client_credentials"}, headers=basic(client_id, "wrong-secret")
        )
        assert wrong.status_code == 401
    finally:
        close_all(opened)

    def flushed() -> dict[str, Any] | None:
        usage = _usage(server, client_id)
        return usage if usage["tokens_last_hour"] == 7 and usage["last_error"] else None

    usage = await wait_for(flushed, timeout=15, interval=0.2, message=lambda: str(_usage(server, client_id)))
    assert usage["tokens_last_day"] == 7 and usage["errors_last_hour"] == 1
    assert usage["last_error"]["code"] == "invalid_client" and usage["last_token_at"] is not None
    listed = _listed(server)
    assert [entry for entry in listed if entry["client_id"] == client_id] == [usage]


async def test_a_graceful_stop_flushes_what_the_workers_counted(
    backend: str, request: pytest.FixtureRequest
) -> None:
    with server_process(backend, request, AUTHSERVER_USAGE_FLUSH_INTERVAL="1h") as server:
        client_id, secret = _client(server)
        opened, (first, second) = await open_on_two_workers(server)
        try:
            _tokens(first, client_id, secret, 2)
            _tokens(second, client_id, secret, 3)
        finally:
            close_all(opened)
        assert _usage(server, client_id)["tokens_last_hour"] == 0  # nothing flushed yet
        server.stop()
        server.start()
        assert _usage(server, client_id)["tokens_last_hour"] == 5
