"""The Store port on SQLAlchemy Core: as few round trips as possible, atomic where it matters.

On PostgreSQL every operation that is a single statement runs in autocommit (no BEGIN/COMMIT round
trips); refresh rotation and code redemption are each ONE statement (``pg_token_writes``), and those that
wait for a connection share one (``write_batches``). On SQLite they are one BEGIN IMMEDIATE
transaction (shared by the writes waiting for this worker's turn) run in a single hop to the connection's
thread (``sqlite_atomic``), so the write lock is held for microseconds. Statements are built once at
import, never per call.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authserver.observability import metrics
from authserver.protocol.models import (
    AuthorizationCode,
    Client,
    ClientType,
    CodeBinding,
    NewRefreshToken,
    RedeemedCode,
    Redemption,
    RedemptionOutcome,
    RefreshToken,
    TokenEndpointAuthMethod,
    User,
)
from authserver.storage import pg_direct, sqlite_atomic
from authserver.storage.failures import DATABASE_ERRORS, unavailable
from authserver.storage.pg_token_writes import CodeRedemption, Rotation, TokenWrites
from authserver.storage.tables import (
    AuthorizationCodeRow,
    ClientRow,
    LegacyRefreshTokenRow,
    RefreshFamilyRow,
    RevokedAccessTokenRow,
    UserRow,
)
from authserver.storage.write_batches import Execute, WriteBatcher

clients = ClientRow.__table__  # type: ignore[attr-defined]
users = UserRow.__table__  # type: ignore[attr-defined]
codes = AuthorizationCodeRow.__table__  # type: ignore[attr-defined]
refresh_families = RefreshFamilyRow.__table__  # type: ignore[attr-defined]
legacy_refresh_tokens = LegacyRefreshTokenRow.__table__  # type: ignore[attr-defined]
revoked = RevokedAccessTokenRow.__table__  # type: ignore[attr-defined]

# Reads.
_CLIENT_BY_ID = select(clients).where(clients.c.client_id == bindparam("b_client_id"))
_USER_BY_ID = select(users).where(users.c.user_id == bindparam("b_user_id"))
_USER_BY_NAME = select(users).where(users.c.username == bindparam("b_username"))
_FAMILY_BY_ID = select(refresh_families).where(refresh_families.c.family_id == bindparam("b_family_id"))
_LEGACY_FAMILY = select(legacy_refresh_tokens.c.family_id).where(
    legacy_refresh_tokens.c.token_hash == bindparam("b_token_hash")
)
# The purge walks the families' primary key a page at a time, one short transaction each, so that it
# never holds SQLite's write lock for long and needs no index on expires_at.
PURGE_PAGE_ROWS = 2_000
_FAMILY_PAGE = (
    select(refresh_families.c.family_id)
    .where(refresh_families.c.family_id > bindparam("b_after"))
    .order_by(refresh_families.c.family_id)
    .limit(PURGE_PAGE_ROWS)
)
_DELETE_EXPIRED_FAMILIES = delete(refresh_families).where(
    refresh_families.c.family_id > bindparam("b_after"),
    refresh_families.c.family_id <= bindparam("b_last"),
    refresh_families.c.expires_at < bindparam("b_now"),
)
_CODE_USE = select(codes.c.family_id).where(codes.c.code_hash == bindparam("b_code_hash"))

_WRITE_NAMES = {"rotate": "refresh_rotation", "redeem": "code_redemption"}


def _observe_batch(execute: Execute, size: int) -> None:
    metrics.DB_WRITE_BATCH_SIZE.labels(_WRITE_NAMES[execute.__name__]).observe(size)


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything here is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def client_from_row(row: Any) -> Client:
    return Client(
        client_id=row.client_id,
        name=row.name,
        client_type=ClientType(row.client_type),
        grant_types=tuple(row.grant_types),
        scopes=tuple(row.scopes),
        audiences=tuple(row.audiences),
        redirect_uris=tuple(row.redirect_uris),
        token_endpoint_auth_method=TokenEndpointAuthMethod(row.token_endpoint_auth_method),
        secret_hash=row.secret_hash,
        previous_secret_hash=row.previous_secret_hash,
        previous_secret_expires_at=aware(row.previous_secret_expires_at),
        access_token_ttl_seconds=row.access_token_ttl_seconds,
        refresh_token_ttl_seconds=row.refresh_token_ttl_seconds,
    )


def _user_from_row(row: Any, prefix: str = "") -> User:
    """A users row, or a row joined with one whose user columns carry ``prefix`` (user_id never does)."""

    def column(name: str) -> Any:
        return getattr(row, prefix + name)

    return User(
        user_id=row.user_id,
        username=column("username"),
        password_hash=column("password_hash"),
        email=column("email"),
        email_verified=column("email_verified"),
        name=column("name"),
    )


def _family_as_seen(family_id: str, row: Any, secret_hash: str) -> RefreshToken:
    """A family's row as seen by the holder of ``secret_hash``: ``rotated`` unless it is the current one
    (hashes of high-entropy secrets, compared in constant time all the same)."""
    return RefreshToken(
        family_id=family_id,
        client_id=row.client_id,
        user_id=row.user_id,
        scope=row.scope,
        audience=row.audience,
        auth_time=row.auth_time,
        expires_at=aware(row.expires_at),  # type: ignore[arg-type]
        rotated=not hmac.compare_digest(row.secret_hash, secret_hash),
        revoked=bool(row.revoked),
    )


def _redeemed(
    row: Any, now: datetime, refresh: NewRefreshToken | None, *, issued: bool, user: Any = None
) -> Redemption[RedeemedCode]:
    expires_at = aware(row.expires_at)
    assert expires_at is not None
    if expires_at <= now:
        return Redemption(RedemptionOutcome.EXPIRED)
    code = AuthorizationCode(
        client_id=row.client_id,
        user_id=row.user_id,
        redirect_uri=row.redirect_uri,
        scope=row.scope,
        audience=row.audience,
        code_challenge=row.code_challenge,
        auth_time=row.auth_time,
        expires_at=expires_at,
        nonce=row.nonce,
    )
    if user is not None:
        owner: User | None = _user_from_row(user)
    elif getattr(row, "user_username", None) is not None:
        owner = _user_from_row(row, prefix="user_")  # the code row joined with its user's columns
    else:
        owner = None
    stored = None
    if issued and refresh is not None:
        stored = RefreshToken(
            family_id=row.family_id,
            client_id=row.client_id,
            user_id=row.user_id,
            scope=row.scope,
            audience=row.audience,
            auth_time=row.auth_time,
            expires_at=refresh.expires_at,
        )
    return Redemption(RedemptionOutcome.OK, RedeemedCode(code, owner, stored))


class SqlStore:
    def __init__(self, engine: AsyncEngine, direct: pg_direct.Connections | None = None) -> None:
        """``direct``: where PostgreSQL runs the token path's writes; by default, on the engine's pool."""
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        # PostgreSQL: single statements need no BEGIN/COMMIT round trips. SQLite's driver never opens a
        # transaction for a SELECT and one for each DML statement by itself; toggling its isolation level
        # would cost thread hops, so it keeps the engine as is.
        self._autocommit = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if self._postgres else engine
        )
        self._reader = self._autocommit
        self._insert = postgresql.insert if self._postgres else sqlite.insert
        if self._postgres:
            connections = direct or pg_direct.EngineConnections(self._autocommit)
            self._token_writes = TokenWrites(connections)
            self.write_batches = WriteBatcher(
                connections.slots, connections.wait_timeout, observe=_observe_batch
            )
        else:
            self._sqlite_writes = sqlite_atomic.TokenWrites(engine)
            wait_timeout = getattr(engine.pool, "timeout", lambda: 30.0)()
            self.write_batches = WriteBatcher(1, wait_timeout, observe=_observe_batch)

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
                row = (await connection.execute(_CLIENT_BY_ID, {"b_client_id": client_id})).first()
            return client_from_row(row) if row else None
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def get_user(self, user_id: str) -> User | None:
        try:
            async with self._reader.connect() as connection:
                row = (await connection.execute(_USER_BY_ID, {"b_user_id": user_id})).first()
            return _user_from_row(row) if row else None
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def get_user_by_username(self, username: str) -> User | None:
        try:
            async with self._reader.connect() as connection:
                row = (await connection.execute(_USER_BY_NAME, {"b_username": username})).first()
            return _user_from_row(row) if row else None
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def create_user(self, user: User) -> None:
        try:
            async with self.engine.begin() as connection:
                await connection.execute(
                    insert(users).values(
                        user_id=user.user_id,
                        username=user.username,
                        password_hash=user.password_hash,
                        email=user.email,
                        email_verified=user.email_verified,
                        name=user.name,
                        created_at=datetime.now(UTC),
                    )
                )
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

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
                    )
                )
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def redeem_authorization_code(
        self, code_hash: str, now: datetime, binding: CodeBinding, refresh: NewRefreshToken | None
    ) -> Redemption[RedeemedCode]:
        try:
            if self._postgres:
                # One statement (shared with other redemptions waiting for a connection): claim the code,
                # store the refresh token, read the user.
                redemption = CodeRedemption(
                    code_hash,
                    binding.client_id,
                    binding.redirect_uri,
                    binding.code_challenge,
                    refresh.family_id if refresh else None,
                    refresh.secret_hash if refresh else None,
                    refresh.expires_at if refresh else None,
                    now,
                )
                record = await self.write_batches.submit(self._token_writes.redeem, code_hash, redemption)
                if record is None:
                    async with self._reader.connect() as connection:
                        return await self._redemption_refused(connection, code_hash)
                row = SimpleNamespace(**record)
                return _redeemed(row, now, refresh, issued=bool(row.issued))
            redemption = sqlite_atomic.redeem_code(
                code_hash,
                now,
                binding.client_id,
                binding.redirect_uri,
                binding.code_challenge,
                (refresh.secret_hash, refresh.family_id, refresh.expires_at) if refresh else None,
            )
            outcome, record, user = await self.write_batches.submit(
                self._sqlite_writes.redeem, code_hash, redemption
            )
            if outcome == "unknown":
                return Redemption(RedemptionOutcome.UNKNOWN)
            if outcome == "used":
                return Redemption(RedemptionOutcome.REPLAYED, extra={"family_id": record or ""})
            issued = record.family_id is not None and refresh is not None
            return _redeemed(record, now, refresh, issued=issued, user=user)
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    @staticmethod
    async def _redemption_refused(connection: AsyncConnection, code_hash: str) -> Redemption[RedeemedCode]:
        used = (await connection.execute(_CODE_USE, {"b_code_hash": code_hash})).first()
        if used is None:
            return Redemption(RedemptionOutcome.UNKNOWN)
        return Redemption(RedemptionOutcome.REPLAYED, extra={"family_id": used.family_id or ""})

    # Refresh tokens
    async def get_refresh_token(self, family_id: str, secret_hash: str) -> RefreshToken | None:
        try:
            async with self._reader.connect() as connection:
                row = (await connection.execute(_FAMILY_BY_ID, {"b_family_id": family_id})).first()
            return _family_as_seen(family_id, row, secret_hash) if row else None
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def legacy_refresh_family(self, token_hash: str) -> str | None:
        try:
            async with self._reader.connect() as connection:
                return (await connection.execute(_LEGACY_FAMILY, {"b_token_hash": token_hash})).scalar()
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def rotate_refresh_token(
        self, family_id: str, secret_hash: str, client_id: str, successor: NewRefreshToken, now: datetime
    ) -> Redemption[RefreshToken]:
        try:
            if self._postgres:
                # One statement (shared with other rotations waiting for a connection): the conditional
                # UPDATE is the lock (of two rotations of one token exactly one finds its secret current).
                rotation = Rotation(
                    family_id, secret_hash, client_id, successor.secret_hash, successor.expires_at, now
                )
                record = await self.write_batches.submit(self._token_writes.rotate, family_id, rotation)
                if record is None:
                    return Redemption(
                        RedemptionOutcome.REFUSED, await self.get_refresh_token(family_id, secret_hash)
                    )
                grant = (record["user_id"], record["scope"], record["audience"], record["auth_time"])
            else:
                # SQLite: with the other writes waiting for this worker's turn, in one transaction, one hop.
                rotation_work = sqlite_atomic.rotate_refresh(
                    family_id, secret_hash, client_id, successor.secret_hash, successor.expires_at, now
                )
                rotated, found = await self.write_batches.submit(
                    self._sqlite_writes.rotate, family_id, rotation_work
                )
                if not rotated:
                    current = _family_as_seen(family_id, found, secret_hash) if found else None
                    return Redemption(RedemptionOutcome.REFUSED, current)
                grant = found
            user_id, scope, audience, auth_time = grant
            return Redemption(
                RedemptionOutcome.OK,
                RefreshToken(
                    family_id=family_id,
                    client_id=client_id,
                    user_id=user_id,
                    scope=scope,
                    audience=audience,
                    auth_time=auth_time,
                    expires_at=successor.expires_at,
                ),
            )
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def revoke_refresh_family(self, family_id: str) -> None:
        try:
            async with self._autocommit.begin() as connection:
                await connection.execute(
                    update(refresh_families)
                    .where(refresh_families.c.family_id == family_id)
                    .values(revoked=True)
                )
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    # Access-token revocations
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

    async def revoked_since(self, since: datetime) -> tuple[list[tuple[str, datetime]], datetime]:
        try:
            async with self._reader.connect() as connection:
                rows = (
                    await connection.execute(
                        select(revoked.c.jti, revoked.c.expires_at, revoked.c.revoked_at).where(
                            revoked.c.revoked_at > since, revoked.c.expires_at > datetime.now(UTC)
                        )
                    )
                ).all()
            newest = max((aware(row.revoked_at) for row in rows), default=since)  # type: ignore[type-var]
            return [(row.jti, aware(row.expires_at)) for row in rows], newest  # type: ignore[misc]
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def checkpoint(self) -> tuple[int, bytes]:
        """SQLite: copy the write-ahead log into the database, on the connection's thread, outside any write
        transaction; writers wait only when the log must start over (the server runs it in a loop,
        ``Services``). Returns the log's state (its frames and generation): equal to the last pass's
        unless something was written since."""
        try:
            done = await sqlite_atomic.checkpoint(self.engine)
            return done.log_frames, done.log_generation
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def purge_expired(self, now: datetime) -> None:
        """Delete what can never be used again; hashes of used codes are kept until they expire (replay),
        and so is a family, revoked or not, until its current token expires."""
        try:
            async with self.engine.begin() as connection:
                await connection.execute(delete(codes).where(codes.c.expires_at < now))
                await connection.execute(delete(revoked).where(revoked.c.expires_at < now))
                await connection.execute(
                    delete(legacy_refresh_tokens).where(legacy_refresh_tokens.c.expires_at < now)
                )
            after = ""
            while True:
                async with self.engine.begin() as connection:
                    page = (await connection.execute(_FAMILY_PAGE, {"b_after": after})).scalars().all()
                    if not page:
                        return
                    await connection.execute(
                        _DELETE_EXPIRED_FAMILIES, {"b_after": after, "b_last": page[-1], "b_now": now}
                    )
                after = page[-1]
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error
