"""SQLite: refresh rotation and code redemption, each one transaction on the sqlite3 connection itself.

The token path's writes that wait for this worker's turn share its next transaction (``TokenWrites``): one
hop to the connection's thread at most, one lock, one commit for all of them. The SQL is SQLAlchemy's for
SQLite (the reads compiled from ``statements``; timestamps in its storage format, UTC).
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Select

from authserver.storage.sqlite.transactions import run
from authserver.storage.statements import CODE_FAMILY, FAMILY_BY_ID, USER_BY_ID

# SQLAlchemy's SQLite DateTime storage format; every timestamp here is UTC.
_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

CodeRow = namedtuple(
    "CodeRow",
    "client_id user_id redirect_uri scope audience code_challenge nonce auth_time expires_at family_id "
    "claims session_id",
)


def stored(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_FORMAT)


def loaded(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


def _compiled(statement: Select[Any]) -> str:
    """One of the shared statements, as SQL for the sqlite3 connection (positional parameters)."""
    return str(statement.compile(dialect=sqlite.dialect()))


CLAIM_REFRESH = (
    "UPDATE refresh_families SET secret_hash = ?, rotated_at = ?, expires_at = ? WHERE family_id = ? "
    "AND secret_hash = ? AND client_id = ? AND revoked = 0 AND expires_at > ? "
    "RETURNING user_id, scope, audience, auth_time, claims, session_id"
)
INSERT_FAMILY = (
    "INSERT INTO refresh_families (family_id, secret_hash, client_id, user_id, scope, audience, auth_time, "
    "issued_at, expires_at, revoked, claims, session_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)"
)
# A code issued without PKCE has a NULL challenge, matched only by a redemption presenting no verifier.
CLAIM_CODE = (
    "UPDATE authorization_codes SET consumed_at = ?, family_id = CASE WHEN client_id = ? "
    "AND redirect_uri = ? AND code_challenge IS ? AND expires_at > ? THEN ? END "
    "WHERE code_hash = ? AND consumed_at IS NULL RETURNING client_id, user_id, redirect_uri, scope, "
    "audience, code_challenge, nonce, auth_time, expires_at, family_id, claims, session_id"
)
# A row that expired but is not yet purged is taken over; a live one is a replay: nothing changes.
SPEND_ASSERTION = (
    "INSERT INTO used_client_assertions (key, expires_at) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
    "SET expires_at = excluded.expires_at WHERE used_client_assertions.expires_at <= ?"
)
_FAMILY_BY_ID = _compiled(FAMILY_BY_ID)
_CODE_FAMILY = _compiled(CODE_FAMILY)
_USER_BY_ID = _compiled(USER_BY_ID)


class TokenWrites:
    """The batched writes (``WriteBatcher``, one slot per worker; more would only queue on the lock
    file). Each write runs exactly as it would alone; a failure rolls back and fails the whole batch, like
    any database error (503)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def rotate_refresh(self, works: Sequence[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        return await run(self.engine, _each(works))

    async def redeem(self, works: Sequence[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        return await run(self.engine, _each(works))

    async def spend_assertions(self, works: Sequence[Callable[[sqlite3.Connection], Any]]) -> list[Any]:
        return await run(self.engine, _each(works))


def _each(works: Sequence[Callable[[sqlite3.Connection], Any]]) -> Callable[[sqlite3.Connection], list[Any]]:
    def work(connection: sqlite3.Connection) -> list[Any]:
        return [each(connection) for each in works]

    return work


def rotate_refresh(
    family_id: str, old_hash: str, client_id: str, new_hash: str, new_expires_at: datetime, now: datetime
) -> Callable[[sqlite3.Connection], tuple[bool, Any]]:
    """(True, the family's grant: user_id, scope, audience, auth_time, claims, session_id) when rotated;
    (False, the family as it stands, a row of ``statements.FAMILY_COLUMNS``, or None) otherwise."""
    at = stored(now)

    def work(connection: sqlite3.Connection) -> tuple[bool, Any]:
        claimed = connection.execute(
            CLAIM_REFRESH, (new_hash, at, stored(new_expires_at), family_id, old_hash, client_id, at)
        ).fetchone()
        if claimed is not None:
            return True, claimed
        current = connection.execute(_FAMILY_BY_ID, (family_id,)).fetchone()
        if current is None:
            return False, None
        return False, (*current[:6], loaded(current[6]), current[7])

    return work


def spend_assertion(key: str, expires_at: datetime, now: datetime) -> Callable[[sqlite3.Connection], bool]:
    """True when the assertion's key was spent now; False for a replay of a live one."""

    def work(connection: sqlite3.Connection) -> bool:
        return connection.execute(SPEND_ASSERTION, (key, stored(expires_at), stored(now))).rowcount == 1

    return work


def redeem_code(
    code_hash: str,
    now: datetime,
    client_id: str,
    redirect_uri: str | None,
    code_challenge: str | None,
    refresh: tuple[str, str, datetime] | None,  # (secret hash, family id, expiry)
) -> Callable[[sqlite3.Connection], tuple[str, Any, Any]]:
    """("claimed", the code's ``CodeRow``, its user's row of ``statements.USER_COLUMNS`` or None) with the
    refresh token stored when the code matched; ("used", (family_id, client_id), None) for a code used before;
    ("unknown", None, None)."""
    at = stored(now)
    family = refresh[1] if refresh else None

    def work(connection: sqlite3.Connection) -> tuple[str, Any, Any]:
        claimed = connection.execute(
            CLAIM_CODE, (at, client_id, redirect_uri, code_challenge, at, family, code_hash)
        ).fetchone()
        if claimed is None:
            used = connection.execute(_CODE_FAMILY, (code_hash,)).fetchone()
            return ("unknown", None, None) if used is None else ("used", tuple(used), None)
        code = CodeRow(*claimed)
        if code.family_id is not None and refresh is not None:
            connection.execute(
                INSERT_FAMILY,
                (
                    code.family_id,
                    refresh[0],
                    code.client_id,
                    code.user_id,
                    code.scope,
                    code.audience,
                    code.auth_time,
                    at,
                    stored(refresh[2]),
                    code.claims,
                    code.session_id,
                ),
            )
        return "claimed", code, connection.execute(_USER_BY_ID, (code.user_id,)).fetchone()

    return work
