"""The statements both stores run through SQLAlchemy Core, built once at import, never per call (but for
``grant_revocation``, whose rows vary; it is off the token path).

SQLite's token-path transaction runs three of them on the sqlite3 connection itself: compiled from these
(``sqlite.token_writes``), so that each is written once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select

from authserver.storage.tables import (
    clients,
    codes,
    legacy_refresh_tokens,
    refresh_families,
    revoked_grants,
    users,
)

CLIENT_BY_ID = select(clients).where(clients.c.client_id == bindparam("b_client_id"))

# In ``User``'s field order (``rows.user_from_row``).
USER_COLUMNS = (
    users.c.user_id,
    users.c.username,
    users.c.password_hash,
    users.c.email,
    users.c.email_verified,
    users.c.name,
    users.c.given_name,
    users.c.family_name,
    users.c.locale,
    users.c.zoneinfo,
    users.c.phone_number,
    users.c.phone_number_verified,
    users.c.address,
    # A user row not changed since it was created: created_at is its change time (OIDC Core §5.1 updated_at).
    func.coalesce(users.c.updated_at, users.c.created_at).label("updated_at"),
    users.c.disabled,
    users.c.groups,
)
USER_BY_ID = select(*USER_COLUMNS).where(users.c.user_id == bindparam("b_user_id"))
USER_BY_NAME = select(*USER_COLUMNS).where(users.c.username == bindparam("b_username"))

# What a holder of one of its tokens may learn of a family (``rows.family_as_seen``).
FAMILY_COLUMNS = (
    refresh_families.c.secret_hash,
    refresh_families.c.client_id,
    refresh_families.c.user_id,
    refresh_families.c.scope,
    refresh_families.c.audience,
    refresh_families.c.auth_time,
    refresh_families.c.expires_at,
    refresh_families.c.revoked,
)
FAMILY_BY_ID = select(*FAMILY_COLUMNS).where(refresh_families.c.family_id == bindparam("b_family_id"))
LEGACY_FAMILY = select(legacy_refresh_tokens.c.family_id).where(
    legacy_refresh_tokens.c.token_hash == bindparam("b_token_hash")
)
# A code's use: the family it issued (NULL if none); no row, no such code.
CODE_FAMILY = select(codes.c.family_id, codes.c.client_id).where(
    codes.c.code_hash == bindparam("b_code_hash")
)

# The purge walks the families' primary key a page at a time, one short transaction each, so that it
# never holds SQLite's write lock for long and needs no index on expires_at.
PURGE_PAGE_ROWS = 2_000
FAMILY_PAGE = (
    select(refresh_families.c.family_id)
    .where(refresh_families.c.family_id > bindparam("b_after"))
    .order_by(refresh_families.c.family_id)
    .limit(PURGE_PAGE_ROWS)
)
DELETE_EXPIRED_FAMILIES = delete(refresh_families).where(
    refresh_families.c.family_id > bindparam("b_after"),
    refresh_families.c.family_id <= bindparam("b_last"),
    refresh_families.c.expires_at < bindparam("b_now"),
)


def grant_revocation(dialect_insert: Callable[..., Any], grant_ids: list[str], expires_at: datetime) -> Any:
    """INSERT the revocation of ``grant_ids`` until ``expires_at`` (the dialect's INSERT, for ON CONFLICT): a
    grant revoked before keeps the later expiry, and its revocation time moves on so that the other
    workers' sync reads it again."""
    now = datetime.now(UTC)
    statement = dialect_insert(revoked_grants).values(
        [{"grant_id": grant_id, "expires_at": expires_at, "revoked_at": now} for grant_id in grant_ids]
    )
    return statement.on_conflict_do_update(
        index_elements=["grant_id"],
        set_={"expires_at": statement.excluded.expires_at, "revoked_at": statement.excluded.revoked_at},
        where=revoked_grants.c.expires_at < statement.excluded.expires_at,
    )
