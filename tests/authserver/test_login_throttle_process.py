"""The sign-in throttle's counts are shared by every worker: a real ``authserver serve --workers 2`` on
SQLite and PostgreSQL, each attempt on a new connection (so both workers serve some). Per-worker counting
would let each worker allow its own share; here the account locks after the limit counted across both,
and both workers then refuse the correct password."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from harness.authserver import AuthServer, running_server
from tests.support.oauth import authorization_request, hidden_fields

LIMIT = 8
CALLBACK = "http://127.0.0.1:9/callback"
ROUTE = "/authorize/login"


@pytest.fixture(scope="module")
def server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AuthServer]:
    url = None
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_cluster").create_database(f"thr_{uuid.uuid4().hex[:12]}")
    directory: Path = tmp_path_factory.mktemp(f"throttle-{backend}")
    with running_server(
        directory, url, workers=2, AUTHSERVER_LOGIN_MAX_FAILURES_PER_ACCOUNT=str(LIMIT)
    ) as started:
        yield started


def _attempt(server: AuthServer, client_id: str, username: str, password: str) -> httpx.Response:
    """One sign-in on a connection of its own (the server hands each new connection to the emptier worker)."""
    params, _ = authorization_request(client_id, CALLBACK, scope="openid", state="s", prompt="login")
    with httpx.Client(base_url=server.base_url, timeout=10) as browser:
        page = browser.get(f"/authorize?{urlencode(params)}")
        assert page.status_code == 200, page.text
        return browser.post(
            ROUTE, data={**hidden_fields(page.text), "username": username, "password": password}
        )


def test_failures_counted_on_both_workers_lock_the_account_on_both(server: AuthServer) -> None:
    client_id = server.create_client(
        "throttled web app", ["authorization_code"], scopes=["openid"], redirect_uris=[CALLBACK], public=True
    )["client_id"]
    username, password = f"t-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    server.create_user(username, password)

    for _ in range(LIMIT):
        assert _attempt(server, client_id, username, "wrong password").status_code == 401
    failures = server.requests_by_worker(ROUTE)
    # Both workers counted some of the failures, so neither saw the limit on its own.
    assert len(failures) == 2 and all(count < LIMIT for count in failures.values()), failures

    for _ in range(6):
        refused = _attempt(server, client_id, username, password)
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) >= 1
    refusals = server.requests_by_worker(ROUTE)
    assert all(refusals[pid] > failures[pid] for pid in failures), (failures, refusals)
