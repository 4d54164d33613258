"""Refresh tokens written straight into a store's database, for tests that need them in a given state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from authserver.crypto.refresh_token_values import new_family_id, new_refresh_token, refresh_token_key
from authserver.storage.sql_store import SqlStore
from authserver.storage.sqlite import token_writes
from authserver.storage.tables import refresh_families


def family_row(client_id: str, **overrides: object) -> tuple[str, dict[str, object]]:
    """(the value of its current token, the refresh_families row) of a live family of ``client_id``."""
    now = datetime.now(UTC)
    family_id = str(overrides.pop("family_id", new_family_id()))
    value, secret_hash = new_refresh_token(family_id)
    return value, {
        "family_id": family_id,
        "secret_hash": secret_hash,
        "client_id": client_id,
        "user_id": None,
        "scope": "read",
        "audience": "https://api.example.com",
        "auth_time": None,
        "issued_at": now,
        "rotated_at": None,
        "expires_at": now + timedelta(hours=1),
        "revoked": False,
        **overrides,
    }


def presented(value: str) -> tuple[str, str]:
    """(family id, secret hash) of a refresh token value in today's format."""
    key = refresh_token_key(value)
    assert key.family_id is not None
    return key.family_id, key.secret_hash


async def insert_refresh_token(store: SqlStore, client_id: str, **overrides: object) -> str:
    """A live refresh token of ``client_id`` in a family of its own (``overrides`` change any column);
    its value."""
    value, row = family_row(client_id, **overrides)
    async with store.engine.begin() as connection:
        await connection.execute(insert(refresh_families).values(**row))
    return value


def token_path_insert_values(client_id: str = "checkpoint-client") -> tuple[object, ...]:
    """Parameters of SQLite's token-path family INSERT (``sqlite.token_writes.INSERT_FAMILY``) for a new live
    family with a long scope (rows of some size fill the write-ahead log faster)."""
    _, row = family_row(client_id, scope="read " * 20)
    return (
        row["family_id"],
        row["secret_hash"],
        row["client_id"],
        row["user_id"],
        row["scope"],
        row["audience"],
        row["auth_time"],
        token_writes.stored(row["issued_at"]),  # type: ignore[arg-type]
        token_writes.stored(row["expires_at"]),  # type: ignore[arg-type]
        None,  # no claims request
        None,  # no sign-in session
    )
