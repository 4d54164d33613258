"""The application run in-process by the ``app_client`` fixture, as tests reach behind its HTTP surface."""

from __future__ import annotations

import httpx

from authserver.storage.sql_store import SqlStore


def store_of(http: httpx.AsyncClient) -> SqlStore:
    """The store of the application behind an ``app_client``."""
    return http.app.state.services.store  # type: ignore[attr-defined,no-any-return]
