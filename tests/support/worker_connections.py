"""Kept-alive connections to a real ``authserver serve --workers N``, each known to reach one worker: for
tests that need requests served by two different workers."""

from __future__ import annotations

import httpx

from harness.authserver import AuthServer
from harness.polling import wait_for

TOKEN_ROUTE = "/token"


class Connection:
    """One kept-alive connection, so that every request on it reaches the same worker."""

    def __init__(self, server: AuthServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.base_url, timeout=10)
        self.worker = 0

    async def find_worker(self) -> Connection:
        """The pid of the worker serving this connection: the one whose count of /token requests grows."""
        before = self.server.requests_by_worker(TOKEN_ROUTE)
        assert self.http.post(TOKEN_ROUTE, data={"grant_type": "client_credentials"}).status_code == 401

        def grown() -> list[int]:  # a worker counts a request as its response goes out
            counts = self.server.requests_by_worker(TOKEN_ROUTE)
            return [pid for pid, count in counts.items() if count > before.get(pid, 0)]

        (self.worker,) = await wait_for(grown, timeout=10, message="no worker counted the request")
        return self


async def open_on_two_workers(server: AuthServer) -> tuple[list[Connection], tuple[Connection, Connection]]:
    """Connections opened (and kept) until two different workers hold one: all of them, to close, and two
    served by different workers."""
    opened: list[Connection] = []
    try:
        while len({connection.worker for connection in opened}) < 2:
            assert len(opened) < 16, "sixteen connections, all served by one worker"
            opened.append(await Connection(server).find_worker())
    except BaseException:
        close_all(opened)
        raise
    first = opened[0]
    return opened, (first, next(connection for connection in opened if connection.worker != first.worker))


def close_all(connections: list[Connection]) -> None:
    for connection in connections:
        connection.http.close()
