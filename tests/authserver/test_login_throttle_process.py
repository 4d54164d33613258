"""The sign-in throttle's counts are shared by every worker: a real ``authserver serve --workers 2`` on
SQLite and PostgreSQL, the attempts alternating between connections that two different workers serve.
Per-worker counting would let each worker allow its own share; here the account locks after the limit
counted across both, and both workers then refuse the correct password."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest

from harness.authserver import AuthServer
from tests.conftest import server_process
from tests.support.oauth import authorization_request, hidden_fields

LIMIT = 8
CALLBACK = "http://127.0.0.1:9/callback"
ROUTE = "/authorize/login"
PAGE_ROUTE = "/authorize"


@pytest.fixture(scope="module")
def server(backend: str, request: pytest.FixtureRequest) -> Iterator[AuthServer]:
    with server_process(backend, request, AUTHSERVER_LOGIN_MAX_FAILURES_PER_ACCOUNT=str(LIMIT)) as started:
        yield started


class Browser:
    """A browser holding one kept-alive connection, so every request it sends reaches the same worker."""

    def __init__(self, server: AuthServer, client_id: str) -> None:
        self.server, self.client_id = server, client_id
        self.http = httpx.Client(base_url=server.base_url, timeout=10)
        self.worker = self._page_counted_by()  # the first request opens the connection

    def _page(self) -> httpx.Response:
        params, _ = authorization_request(self.client_id, CALLBACK, scope="openid", state="s", prompt="login")
        page = self.http.get(f"/authorize?{urlencode(params)}")
        assert page.status_code == 200, page.text
        return page

    def _page_counted_by(self) -> int:
        """The pid of the worker serving this connection: the one whose count of sign-in pages grows."""
        before = self.server.requests_by_worker(PAGE_ROUTE)
        self._page()
        deadline = time.monotonic() + 10
        while True:  # a worker counts a request as its response goes out: poll, bounded
            counts = self.server.requests_by_worker(PAGE_ROUTE)
            grown = [pid for pid, count in counts.items() if count > before.get(pid, 0)]
            if grown:
                assert len(grown) == 1, grown
                return grown[0]
            assert time.monotonic() < deadline, "no worker counted the sign-in page"

    def sign_in(self, username: str, password: str) -> httpx.Response:
        form = {**hidden_fields(self._page().text), "username": username, "password": password}
        return self.http.post(ROUTE, data=form)


@pytest.fixture
def browsers(server: AuthServer) -> Iterator[tuple[Browser, Browser]]:
    """Two browsers whose connections two different workers serve (connections are opened, and kept, until
    both workers hold one; the server hands a new connection to the worker with fewer)."""
    client_id = server.create_client(
        "throttled web app", ["authorization_code"], scopes=["openid"], redirect_uris=[CALLBACK], public=True
    )["client_id"]
    opened: list[Browser] = []
    try:
        while len({browser.worker for browser in opened}) < 2:
            assert len(opened) < 16, "sixteen connections, all served by one worker"
            opened.append(Browser(server, client_id))
        first = opened[0]
        second = next(browser for browser in opened if browser.worker != first.worker)
        yield first, second
    finally:
        for browser in opened:
            browser.http.close()


def test_failures_counted_on_both_workers_lock_the_account_on_both(
    server: AuthServer, browsers: tuple[Browser, Browser]
) -> None:
    username, password = f"t-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    server.create_user(username, password)

    for attempt in range(LIMIT):
        assert browsers[attempt % 2].sign_in(username, "wrong password").status_code == 401
    failures = server.requests_by_worker(ROUTE)
    # Both workers counted half of the failures, so neither saw the limit on its own.
    assert sorted(failures) == sorted(browser.worker for browser in browsers), failures
    assert all(count < LIMIT for count in failures.values()), failures

    for attempt in range(6):
        refused = browsers[attempt % 2].sign_in(username, password)
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) >= 1
    refusals = server.requests_by_worker(ROUTE)
    assert all(refusals[pid] > failures[pid] for pid in failures), (failures, refusals)
