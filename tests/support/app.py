"""The application run in-process by the ``app_client`` fixture, as tests reach behind its HTTP surface."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx

from authserver.storage.sql_store import SqlStore


def store_of(http: httpx.AsyncClient) -> SqlStore:
    """The store of the application behind an ``app_client``."""
    return http.app.state.services.store  # type: ignore[attr-defined,no-any-return]


@contextlib.asynccontextmanager
async def own_browser(http: httpx.AsyncClient, address: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser of its own (its own cookies, from ``address``) on the application behind ``http``."""
    transport = httpx.ASGITransport(app=http.app, client=(address, 1234))  # type: ignore[attr-defined]  # set by the fixture
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        yield browser
