"""What both stores do alike, on SQLAlchemy Core: reads, the writes off the token path, the purge.

``SqliteStore`` (``storage.sqlite``) and ``PostgresStore`` (``storage.postgres``) build on this and add
what each database does its own way: refresh rotation and code redemption (the token path's writes),
access-token revocation (each dialect's INSERT ... ON CONFLICT DO NOTHING) and, on SQLite, checkpointing.
Single statements run on ``_autocommit``: on PostgreSQL an autocommit engine (no BEGIN/COMMIT round
trips); SQLite's driver never opens a transaction for a SELECT and one for each DML statement by itself,
so there it is the engine as is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.observability import metrics
from authserver.protocol.models import (
    AuthorizationCode,
    Client,
    ClientUsage,
    Consent,
    RefreshToken,
    RevokedSince,
    UsageCount,
    User,
)
from authserver.protocol.usage import RETENTION as USAGE_RETENTION
from authserver.storage.client_registry import SqlClientRegistry
from authserver.storage.failures import DATABASE_ERRORS, unavailable
from authserver.storage.rows import aware, client_from_row, family_as_seen, user_from_row
from authserver.storage.sessions import SqlSessions
from authserver.storage.statements import (
    CLIENT_BY_ID,
    DELETE_EXPIRED_FAMILIES,
    FAMILY_BY_ID,
    FAMILY_PAGE,
    LEGACY_FAMILY,
    USER_BY_ID,
    USER_BY_NAME,
    grant_revocation,
)
from authserver.storage.tables import (
    client_changes,
    client_last_use,
    client_usage,
    clients,
    codes,
    consents,
    legacy_refresh_tokens,
    login_failures,
    refresh_families,
    revoked,
    revoked_grants,
    used_client_assertions,
    users,
    worker_heartbeats,
)
from authserver.storage.user_directory import SqlUserDirectory
from authserver.storage.write_batches import Execute

_WRITE_NAMES = {
    "rotate_refresh": "refresh_rotation",
    "redeem": "code_redemption",
    "spend_assertions": "client_assertion",
}
# Rows per executemany of a usage flush: a few milliseconds of the event loop each.
_USAGE_ROWS_PER_STATEMENT = 1000
# How long a client change is kept for the workers' syncs (storage.client_cache starts over after an hour).
CLIENT_CHANGE_RETENTION = timedelta(days=1)


def observe_batch(execute: Execute, size: int) -> None:
    metrics.DB_WRITE_BATCH_SIZE.labels(_WRITE_NAMES[execute.__name__]).observe(size)


class SqlStore(SqlClientRegistry, SqlUserDirectory, SqlSessions):
    def __init__(self, engine: AsyncEngine, autocommit: AsyncEngine) -> None:
        super().__init__(engine)
        self._autocommit = autocommit
        self._reader = autocommit

    async def ping(self) -> None:
        try:
            async with self._reader.connect() as connection:
                await connection.execute(select(1))
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    # Clients and users
    async def get_client(self, client_id: str) -> Client | None:
        try:
            async with self._reader.connect() as connection:
                row = (await connection.execute(CLIENT_BY_ID, {"b_client_id": client_id})).first()
            return client_from_row(row) if row else None
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def get_user(self, user_id: str) -> User | None:
        try:
            async with self._reader.connect() as connection:
                row = (await connection.execute(USER_BY_ID, {"b_user_id": user_id})).first()
            return user_from_row(row) if row else None
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def get_user_by_username(self, username: str) -> User | None:
        try:
            async with self._reader.connect() as connection:
                row = (await connection.execute(USER_BY_NAME, {"b_username": username})).first()
            return user_from_row(row) if row else None
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def create_user(self, user: User) -> None:
        """``add_user`` for set-up code (the demo, tests, the benchmark's seed): a taken name is an error."""
        if not await self.add_user(user):
            raise ValueError(f"user {user.username} already exists")

    async def set_password(self, username: str, password_hash: str) -> bool:
        try:
            async with self.engine.begin() as connection:
                result = await connection.execute(
                    update(users).where(users.c.username == username).values(password_hash=password_hash)
                )
            return result.rowcount == 1
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    # Authorization codes
    async def save_authorization_code(self, code_hash: str, code: AuthorizationCode) -> None:
        try:
            async with self._autocommit.begin() as connection:
                await connection.execute(
                    insert(codes).values(
                        code_hash=code_hash,
                        client_id=code.client_id,
                        user_id=code.user_id,
                        redirect_uri=code.redirect_uri,
                        scope=code.scope,
                        audience=code.audience,
                        code_challenge=code.code_challenge,
                        nonce=code.nonce,
                        auth_time=code.auth_time,
                        expires_at=code.expires_at,
                        claims=code.claims,
                        session_id=code.session_id,
                    )
                )
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    # Refresh tokens
    async def get_refresh_token(self, family_id: str, secret_hash: str) -> RefreshToken | None:
        try:
            async with self._reader.connect() as connection:
                row = (await connection.execute(FAMILY_BY_ID, {"b_family_id": family_id})).first()
            return family_as_seen(family_id, row, secret_hash) if row else None
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def legacy_refresh_family(self, token_hash: str) -> str | None:
        try:
            async with self._reader.connect() as connection:
                return (await connection.execute(LEGACY_FAMILY, {"b_token_hash": token_hash})).scalar()
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    # Grant and access-token revocations
    async def revoke_grant(
        self, family_id: str | None, grant_id: str, access_tokens_expire: datetime
    ) -> None:
        try:
            async with self.engine.begin() as connection:
                if family_id is not None:
                    await connection.execute(
                        update(refresh_families)
                        .where(refresh_families.c.family_id == family_id)
                        .values(revoked=True)
                    )
                await connection.execute(grant_revocation(self._insert, [grant_id], access_tokens_expire))
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def revoke_access_token(self, jti: str, expires_at: datetime) -> None:
        try:
            async with self._autocommit.begin() as connection:
                await connection.execute(
                    self._insert(revoked)
                    .values(jti=jti, expires_at=expires_at, revoked_at=datetime.now(UTC))
                    .on_conflict_do_nothing(index_elements=["jti"])
                )
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def revoked_since(self, since: datetime) -> RevokedSince:
        now = datetime.now(UTC)
        # One round trip for the three kinds: kind 0 is a jti, kind 1 a grant id, kind 2 a changed client.
        changes = client_changes.c
        changed = select(
            literal_column("2").label("kind"),
            changes.client_id.label("id"),
            changes.changed_at.label("expires_at"),
            changes.changed_at.label("revoked_at"),
        ).where(changes.changed_at > since)
        statement = union_all(
            _revoked_after(0, revoked, revoked.c.jti, since, now),
            _revoked_after(1, revoked_grants, revoked_grants.c.grant_id, since, now),
            changed,
        )
        try:
            async with self._reader.connect() as connection:
                rows = (await connection.execute(statement)).all()
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error
        return RevokedSince(
            access_tokens=[(row.id, aware(row.expires_at)) for row in rows if row.kind == 0],
            grants=[(row.id, aware(row.expires_at)) for row in rows if row.kind == 1],
            newest=max((aware(row.revoked_at) for row in rows), default=since),
            changed_clients=[row.id for row in rows if row.kind == 2],
        )

    # The worker census
    async def worker_heartbeat(self, worker_id: str, now: datetime, live_since: datetime) -> int:
        beat = self._insert(worker_heartbeats).values(worker_id=worker_id, last_seen=now)
        beat = beat.on_conflict_do_update(index_elements=["worker_id"], set_={"last_seen": now})
        try:
            # One short transaction, off the request path: the write, the dead rows' removal, the count.
            async with self.engine.begin() as connection:
                await connection.execute(beat)
                await connection.execute(
                    delete(worker_heartbeats).where(worker_heartbeats.c.last_seen < live_since)
                )
                live = await connection.execute(
                    select(func.count())
                    .select_from(worker_heartbeats)
                    .where(worker_heartbeats.c.last_seen >= live_since)
                )
                return int(live.scalar_one())
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def forget_worker(self, worker_id: str) -> None:
        try:
            async with self._autocommit.begin() as connection:
                await connection.execute(
                    delete(worker_heartbeats).where(worker_heartbeats.c.worker_id == worker_id)
                )
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    # Remembered consent
    async def granted_scopes(self, user_id: str, client_id: str) -> frozenset[str]:
        try:
            async with self._reader.connect() as connection:
                rows = await connection.execute(
                    select(consents.c.scope).where(
                        consents.c.user_id == user_id, consents.c.client_id == client_id
                    )
                )
                return frozenset(rows.scalars().all())
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def grant_consent(self, user_id: str, client_id: str, scopes: Iterable[str], now: datetime) -> None:
        rows = [
            {"user_id": user_id, "client_id": client_id, "scope": scope, "granted_at": now}
            for scope in dict.fromkeys(scopes)
        ]
        if not rows:
            return
        try:
            async with self._autocommit.begin() as connection:
                # One statement: a scope granted before (or by a concurrent answer) is left as it is.
                await connection.execute(
                    self._insert(consents)
                    .values(rows)
                    .on_conflict_do_nothing(index_elements=["user_id", "client_id", "scope"])
                )
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def list_consents(self, user_id: str) -> list[Consent]:
        try:
            async with self._reader.connect() as connection:
                rows = (
                    await connection.execute(
                        select(consents.c.client_id, consents.c.scope, consents.c.granted_at)
                        .where(consents.c.user_id == user_id)
                        .order_by(consents.c.client_id, consents.c.scope)
                    )
                ).all()
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error
        by_client: dict[str, tuple[list[str], datetime]] = {}
        for row in rows:
            scopes, latest = by_client.setdefault(row.client_id, ([], aware(row.granted_at)))
            scopes.append(row.scope)
            by_client[row.client_id] = (scopes, max(latest, aware(row.granted_at)))
        return [
            Consent(client_id, tuple(scopes), latest) for client_id, (scopes, latest) in by_client.items()
        ]

    async def revoke_consents(self, user_id: str, client_id: str | None) -> bool:
        statement = delete(consents).where(consents.c.user_id == user_id)
        if client_id is not None:
            statement = statement.where(consents.c.client_id == client_id)
        try:
            async with self._autocommit.begin() as connection:
                return (await connection.execute(statement)).rowcount > 0
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    # Usage per client (``protocol.usage``)
    async def record_client_usage(self, counts: Sequence[UsageCount]) -> None:
        hourly, last = merge_usage(counts)
        if not hourly:
            return
        try:
            await self._write_usage(hourly, last)
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def _write_usage(self, hourly: list[dict[str, Any]], last: list[dict[str, Any]]) -> None:
        """The rows of one flush in one transaction: an executemany of one cached statement per table, not a
        VALUES list of many rows (such a list is compiled anew each time: about 60 µs a row, 1.2 s of a
        worker's event loop for 10,000 clients). Chunks keep each stretch of binding parameters short."""
        add, keep = usage_upserts(self._insert(client_usage), self._insert(client_last_use))
        async with self.engine.begin() as connection:
            for start in range(0, len(hourly), _USAGE_ROWS_PER_STATEMENT):
                await connection.execute(add, hourly[start : start + _USAGE_ROWS_PER_STATEMENT])
            for start in range(0, len(last), _USAGE_ROWS_PER_STATEMENT):
                await connection.execute(keep, last[start : start + _USAGE_ROWS_PER_STATEMENT])

    async def get_client_usage(self, client_id: str, buckets_since: datetime) -> ClientUsage | None:
        found = await self._usage(
            select_last_use().where(client_last_use.c.client_id == client_id), buckets_since
        )
        return found[0] if found else None

    async def list_client_usage(
        self, after: str | None, limit: int, buckets_since: datetime, active_since: datetime | None = None
    ) -> list[ClientUsage]:
        statement = select_last_use().order_by(client_last_use.c.client_id).limit(limit)
        if after is not None:
            statement = statement.where(client_last_use.c.client_id > after)
        if active_since is not None:
            statement = statement.where(
                or_(
                    client_last_use.c.last_token_at >= active_since,
                    client_last_use.c.last_error_at >= active_since,
                )
            )
        return await self._usage(statement, buckets_since)

    async def _usage(self, last_uses: Any, buckets_since: datetime) -> list[ClientUsage]:
        try:
            async with self._reader.connect() as connection:
                lasts = (await connection.execute(last_uses)).all()
                if not lasts:
                    return []
                buckets = (
                    await connection.execute(
                        select(client_usage)
                        .where(
                            client_usage.c.client_id.in_([row.client_id for row in lasts]),
                            client_usage.c.hour >= buckets_since,
                        )
                        .order_by(client_usage.c.client_id, client_usage.c.hour)
                    )
                ).all()
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error
        hours: dict[str, list[tuple[datetime, int, int]]] = {}
        for bucket in buckets:
            hours.setdefault(bucket.client_id, []).append((aware(bucket.hour), bucket.tokens, bucket.errors))
        return [
            ClientUsage(
                client_id=row.client_id,
                last_token_at=aware(row.last_token_at) if row.last_token_at else None,
                last_error=row.last_error,
                last_error_at=aware(row.last_error_at) if row.last_error_at else None,
                hours=tuple(hours.get(row.client_id, ())),
            )
            for row in lasts
        ]

    async def purge_client_usage(self, hours_before: datetime) -> None:
        """Delete hourly usage older than ``hours_before``, and the last use of unregistered clients."""
        try:
            async with self.engine.begin() as connection:
                await connection.execute(delete(client_usage).where(client_usage.c.hour < hours_before))
                await connection.execute(
                    delete(client_last_use).where(
                        client_last_use.c.client_id.not_in(select(clients.c.client_id))
                    )
                )
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def purge_expired(self, now: datetime) -> None:
        """Delete what can never be used again; hashes of used codes are kept until they expire (replay),
        and so is a family, revoked or not, until its current token expires."""
        await self.purge_ended_sessions(now)
        await self.purge_client_usage(now - USAGE_RETENTION)
        try:
            async with self.engine.begin() as connection:
                await connection.execute(delete(codes).where(codes.c.expires_at < now))
                await connection.execute(delete(revoked).where(revoked.c.expires_at < now))
                await connection.execute(delete(revoked_grants).where(revoked_grants.c.expires_at < now))
                await connection.execute(delete(login_failures).where(login_failures.c.expires_at < now))
                await connection.execute(
                    delete(used_client_assertions).where(used_client_assertions.c.expires_at < now)
                )
                await connection.execute(
                    delete(legacy_refresh_tokens).where(legacy_refresh_tokens.c.expires_at < now)
                )
                # Workers read client changes every second or so; a day is far beyond any worker's last look
                # (a cache whose syncs stopped for an hour starts over: storage.client_cache).
                await connection.execute(
                    delete(client_changes).where(client_changes.c.changed_at < now - CLIENT_CHANGE_RETENTION)
                )
            after = ""
            while True:
                async with self.engine.begin() as connection:
                    page = (await connection.execute(FAMILY_PAGE, {"b_after": after})).scalars().all()
                    if not page:
                        return
                    await connection.execute(
                        DELETE_EXPIRED_FAMILIES, {"b_after": after, "b_last": page[-1], "b_now": now}
                    )
                after = page[-1]
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error


def select_last_use() -> Any:
    return select(
        client_last_use.c.client_id,
        client_last_use.c.last_token_at,
        client_last_use.c.last_error,
        client_last_use.c.last_error_at,
    )


def usage_upserts(add: Any, keep: Any) -> tuple[Any, Any]:
    """The two upserts of a usage flush, given each table's dialect INSERT (with or without its rows).

    ``add`` (client_usage) is additive: every worker's and replica's counts for the same client and hour
    sum. ``keep`` (client_last_use): the later of the stored time and the flushed one wins (flushes of
    several workers interleave)."""
    add = add.on_conflict_do_update(
        index_elements=["client_id", "hour"],
        set_={
            "tokens": client_usage.c.tokens + add.excluded.tokens,
            "errors": client_usage.c.errors + add.excluded.errors,
        },
    )
    newer_token = and_(
        keep.excluded.last_token_at.is_not(None),
        or_(
            client_last_use.c.last_token_at.is_(None),
            keep.excluded.last_token_at > client_last_use.c.last_token_at,
        ),
    )
    newer_error = and_(
        keep.excluded.last_error_at.is_not(None),
        or_(
            client_last_use.c.last_error_at.is_(None),
            keep.excluded.last_error_at > client_last_use.c.last_error_at,
        ),
    )
    keep = keep.on_conflict_do_update(
        index_elements=["client_id"],
        set_={
            "last_token_at": case(
                (newer_token, keep.excluded.last_token_at), else_=client_last_use.c.last_token_at
            ),
            "last_error": case((newer_error, keep.excluded.last_error), else_=client_last_use.c.last_error),
            "last_error_at": case(
                (newer_error, keep.excluded.last_error_at), else_=client_last_use.c.last_error_at
            ),
        },
    )
    return add, keep


def merge_usage(counts: Sequence[UsageCount]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of one flush: one per (client, hour) and one per client (a statement may not name a key
    twice: PostgreSQL refuses to update a row twice in one INSERT ... ON CONFLICT)."""
    hourly: dict[tuple[str, datetime], dict[str, Any]] = {}
    last: dict[str, dict[str, Any]] = {}
    for count in counts:
        row = hourly.setdefault(
            (count.client_id, count.hour),
            {"client_id": count.client_id, "hour": count.hour, "tokens": 0, "errors": 0},
        )
        row["tokens"] += count.tokens
        row["errors"] += count.errors
        latest = last.setdefault(
            count.client_id,
            {"client_id": count.client_id, "last_token_at": None, "last_error": None, "last_error_at": None},
        )
        if count.last_token_at is not None and (
            latest["last_token_at"] is None or count.last_token_at > latest["last_token_at"]
        ):
            latest["last_token_at"] = count.last_token_at
        if count.last_error_at is not None and (
            latest["last_error_at"] is None or count.last_error_at > latest["last_error_at"]
        ):
            latest["last_error"], latest["last_error_at"] = count.last_error, count.last_error_at
    return list(hourly.values()), list(last.values())


def _revoked_after(kind: int, table: Table, key: Column[str], since: datetime, now: datetime) -> Any:
    """(kind, id, expires_at, revoked_at) of the unexpired revocations in ``table`` after ``since``."""
    return select(
        literal_column(str(kind)).label("kind"), key.label("id"), table.c.expires_at, table.c.revoked_at
    ).where(table.c.revoked_at > since, table.c.expires_at > now)
