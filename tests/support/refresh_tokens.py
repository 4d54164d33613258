"""Refresh tokens written straight into a store's database, for tests that need them in a given state."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from authserver.crypto.opaque_tokens import new_opaque_token, token_hash
from authserver.storage import sqlite_atomic
from authserver.storage.sql_store import SqlStore, refresh_tokens


def refresh_token_row(client_id: str, value: str, **overrides: object) -> dict[str, object]:
    """The refresh_tokens row of a live token ``value`` of ``client_id``, in a family of its own."""
    now = datetime.now(UTC)
    return {
        "token_hash": token_hash(value),
        "family_id": uuid.uuid4().hex,
        "client_id": client_id,
        "user_id": None,
        "scope": "read",
        "audience": "https://api.example.com",
        "auth_time": None,
        "issued_at": now,
        "expires_at": now + timedelta(hours=1),
        "rotated_at": None,
        "revoked": False,
        **overrides,
    }


async def insert_refresh_token(store: SqlStore, client_id: str, **overrides: object) -> str:
    """A live refresh token of ``client_id`` in a family of its own (``overrides`` change any column);
    its value."""
    value = new_opaque_token()
    async with store.engine.begin() as connection:
        await connection.execute(
            insert(refresh_tokens).values(**refresh_token_row(client_id, value, **overrides))
        )
    return value


def token_path_insert_values(client_id: str = "checkpoint-client") -> tuple[object, ...]:
    """Parameters of SQLite's token-path refresh-token INSERT (``sqlite_atomic._INSERT_REFRESH``) for a
    new live token with a long scope (rows of some size fill the write-ahead log faster)."""
    row = refresh_token_row(client_id, new_opaque_token(), scope="read " * 20)
    return (
        row["token_hash"],
        row["family_id"],
        row["client_id"],
        row["user_id"],
        row["scope"],
        row["audience"],
        row["auth_time"],
        sqlite_atomic.stored(row["issued_at"]),  # type: ignore[arg-type]
        sqlite_atomic.stored(row["expires_at"]),  # type: ignore[arg-type]
    )
