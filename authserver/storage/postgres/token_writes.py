"""PostgreSQL: refresh-token rotation and code redemption, one statement for one write or for a batch of them.

Each is a single statement. A refresh-token rotation is one conditional UPDATE of the family's row (of two
rotations of one token exactly one finds its secret current), changing no indexed column: a HOT update. A
code redemption claims the code and inserts its family in data-modifying CTEs. A batch (``WriteBatcher``)
unnests one array per column and carries at most one write per family or code. Its rows go in sorted by
key so that two batches sharing rows (a replay racing its original on another worker) usually lock them in
the same order; should they deadlock anyway, PostgreSQL aborts one after ``deadlock_timeout`` and its
writes fail like any database error (503), none half done.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from authserver.storage.postgres.direct_pool import Connections

_ROTATION_COLUMNS = (
    ("family_id", "text"),
    ("old_hash", "text"),
    ("client_id", "text"),
    ("new_hash", "text"),
    ("new_expires_at", "timestamptz"),
    ("now", "timestamptz"),
)
_REDEMPTION_COLUMNS = (
    ("code_hash", "text"),
    ("client_id", "text"),
    ("redirect_uri", "text"),
    ("code_challenge", "text"),
    ("new_family_id", "text"),
    ("secret_hash", "text"),
    ("refresh_expires_at", "timestamptz"),
    ("now", "timestamptz"),
)


def _one_row(columns: tuple[tuple[str, str], ...]) -> str:
    """The input of one write: scalar parameters."""
    fields = ", ".join(f"${index}::{kind} AS {name}" for index, (name, kind) in enumerate(columns, 1))
    return f"SELECT {fields}"


def _many_rows(columns: tuple[tuple[str, str], ...]) -> str:
    """The input of a batch: one array parameter per column, unnested side by side."""
    arrays = ", ".join(f"${index}::{kind}[]" for index, (_, kind) in enumerate(columns, 1))
    names = ", ".join(name for name, _ in columns)
    return f"SELECT * FROM unnest({arrays}) AS input({names})"  # noqa: S608 - our own column names


_ROTATE = """
WITH input AS ({input})
UPDATE refresh_families AS family
SET secret_hash = input.new_hash, rotated_at = input.now, expires_at = input.new_expires_at
FROM input
WHERE family.family_id = input.family_id AND family.secret_hash = input.old_hash
    AND family.client_id = input.client_id AND NOT family.revoked AND family.expires_at > input.now
RETURNING family.family_id, family.user_id, family.scope, family.audience, family.auth_time, family.claims,
    family.session_id
"""

# Any attempt uses the code up; the family is set (and the refresh token stored) only when the code
# matches the binding and has not expired (a NULL challenge, a code issued without PKCE, only matches a
# redemption without a verifier). The user's columns come back with the code's.
_REDEEM = """
WITH input AS ({input}), claimed AS (
    UPDATE authorization_codes AS code SET consumed_at = input.now,
        family_id = CASE WHEN code.client_id = input.client_id AND code.redirect_uri = input.redirect_uri
            AND code.code_challenge IS NOT DISTINCT FROM input.code_challenge AND code.expires_at > input.now
            THEN input.new_family_id END
    FROM input
    WHERE code.code_hash = input.code_hash AND code.consumed_at IS NULL
    RETURNING code.*, input.secret_hash, input.refresh_expires_at, input.now
), issued AS (
    INSERT INTO refresh_families (family_id, secret_hash, client_id, user_id, scope, audience, auth_time,
        issued_at, expires_at, revoked, claims, session_id)
    SELECT family_id, secret_hash, client_id, user_id, scope, audience, auth_time, now,
        refresh_expires_at, false, claims, session_id
    FROM claimed WHERE family_id IS NOT NULL AND secret_hash IS NOT NULL
    RETURNING family_id
)
SELECT claimed.*, users.username AS user_username, users.password_hash AS user_password_hash,
    users.email AS user_email, users.email_verified AS user_email_verified, users.name AS user_name,
    users.given_name AS user_given_name, users.family_name AS user_family_name, users.locale AS user_locale,
    users.zoneinfo AS user_zoneinfo, users.phone_number AS user_phone_number,
    users.phone_number_verified AS user_phone_number_verified, users.address AS user_address,
    coalesce(users.updated_at, users.created_at) AS user_updated_at,
    users.disabled AS user_disabled, users.groups AS user_groups,
    claimed.family_id IN (SELECT family_id FROM issued) AS issued
FROM claimed LEFT JOIN users ON users.user_id = claimed.user_id
"""

# A client assertion's key, spent once (a row that expired but is not yet purged is taken over; a live one
# is a replay: nothing changes, no row returned). A batch carries distinct keys and one "now": the
# earliest of its writes', so a row is never taken over before it expired for each of them.
_SPEND = """
INSERT INTO used_client_assertions (key, expires_at) {input}
ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at
WHERE used_client_assertions.expires_at <= $3
RETURNING key
"""
SPEND_ONE = _SPEND.format(input="VALUES ($1::text, $2::timestamptz)")
SPEND_MANY = _SPEND.format(input="SELECT * FROM unnest($1::text[], $2::timestamptz[])")

# A write alone (the usual case unless the database falls behind) sends scalars: for one row the batch
# form costs PostgreSQL about a quarter more CPU (docs/performance.md).
ROTATE_ONE = _ROTATE.format(input=_one_row(_ROTATION_COLUMNS))
ROTATE_MANY = _ROTATE.format(input=_many_rows(_ROTATION_COLUMNS))
REDEEM_ONE = _REDEEM.format(input=_one_row(_REDEMPTION_COLUMNS))
REDEEM_MANY = _REDEEM.format(input=_many_rows(_REDEMPTION_COLUMNS))
# Run (writing nothing) on every new connection: asyncpg looks up the array types of a statement's
# parameters the first time it meets them, a query of several milliseconds; better when the connection opens
# than in the middle of a batch.
WARM_UP: Sequence[tuple[str, Sequence[Any]]] = (
    (ROTATE_MANY, [[] for _ in _ROTATION_COLUMNS]),
    (REDEEM_MANY, [[] for _ in _REDEMPTION_COLUMNS]),
    (SPEND_MANY, [[], [], datetime(1970, 1, 1, tzinfo=UTC)]),
)


class RefreshRotation(NamedTuple):
    family_id: str
    old_hash: str
    client_id: str
    new_hash: str
    new_expires_at: datetime
    now: datetime


class AssertionSpend(NamedTuple):
    key: str
    expires_at: datetime
    now: datetime


class CodeRedemption(NamedTuple):
    code_hash: str
    client_id: str
    redirect_uri: str | None
    code_challenge: str | None
    new_family_id: str | None
    secret_hash: str | None
    refresh_expires_at: datetime | None
    now: datetime


def _first(rows: list[Any]) -> Any:
    return rows[0] if rows else None


def _columns(items: Sequence[NamedTuple]) -> list[list[Any]]:
    return [list(column) for column in zip(*items, strict=True)]


class TokenWrites:
    """The batched writes on ``connections``; ``WriteBatcher.submit(writes.rotate_refresh, ...)``."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    async def rotate_refresh(self, rotations: Sequence[RefreshRotation]) -> list[Any]:
        """Per rotation: the claimed grant (family_id, user_id, scope, audience, auth_time), or None."""
        if len(rotations) == 1:
            return [_first(await self.connections.fetch(ROTATE_ONE, rotations[0]))]
        ordered = sorted(rotations, key=lambda rotation: rotation.family_id)
        rows = await self.connections.fetch(ROTATE_MANY, _columns(ordered))
        by_family = {row["family_id"]: row for row in rows}
        return [by_family.get(rotation.family_id) for rotation in rotations]

    async def redeem(self, redemptions: Sequence[CodeRedemption]) -> list[Any]:
        """Per redemption: the claimed code with its user's columns and ``issued``, or None (unknown or
        already used)."""
        if len(redemptions) == 1:
            return [_first(await self.connections.fetch(REDEEM_ONE, redemptions[0]))]
        ordered = sorted(redemptions, key=lambda redemption: redemption.code_hash)
        rows = await self.connections.fetch(REDEEM_MANY, _columns(ordered))
        by_code = {row["code_hash"]: row for row in rows}
        return [by_code.get(redemption.code_hash) for redemption in redemptions]

    async def spend_assertions(self, spends: Sequence[AssertionSpend]) -> list[bool]:
        """Per spend: True when its key was spent now, False for a replay of a live one."""
        if len(spends) == 1:
            spend = spends[0]
            return [bool(await self.connections.fetch(SPEND_ONE, spend))]
        keys = sorted(spend.key for spend in spends)  # the same lock order in concurrent batches
        expiries = {spend.key: spend.expires_at for spend in spends}
        now = min(spend.now for spend in spends)
        rows = await self.connections.fetch(SPEND_MANY, [keys, [expiries[key] for key in keys], now])
        spent = {row["key"] for row in rows}
        return [spend.key in spent for spend in spends]
