"""Sign-in sessions in the database (the session methods of ``protocol.store.Store``): the same statements on
both databases (``SqlStore`` builds on this).

Ending sessions is one transaction: a conditional UPDATE (``ended_at IS NULL``) claims them, so that of two
workers ending the same session (two sweeps, a sweep and a sign-out) exactly one announces it; the refresh
families they issued and those families' live access tokens are revoked in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, and_, delete, literal, not_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.protocol.models import SignInSession
from authserver.protocol.scopes import OFFLINE_ACCESS
from authserver.protocol.session_end import EndedSession, EndReason
from authserver.storage.failures import DATABASE_ERRORS, unavailable
from authserver.storage.rows import aware
from authserver.storage.tables import refresh_families, session_clients, sessions
from authserver.storage.user_directory import revoke_families

# A family whose space-separated scope holds offline_access: it outlives its session (OIDC Core §11).
_offline_access = (literal(" ") + refresh_families.c.scope + literal(" ")).like(f"% {OFFLINE_ACCESS} %")

_SESSION_COLUMNS = (
    sessions.c.session_id,
    sessions.c.user_id,
    sessions.c.auth_time,
    sessions.c.created_at,
    sessions.c.last_seen_at,
    sessions.c.expires_at,
    sessions.c.ended_at,
    sessions.c.end_reason,
)


def _session(row: Any, client_ids: Sequence[str] = ()) -> SignInSession:
    return SignInSession(
        session_id=row.session_id,
        user_id=row.user_id,
        auth_time=row.auth_time,
        created_at=aware(row.created_at),
        last_seen_at=aware(row.last_seen_at),
        expires_at=aware(row.expires_at),
        ended_at=aware(row.ended_at),
        end_reason=row.end_reason,
        client_ids=tuple(client_ids),
    )


class SqlSessions:
    _insert: ClassVar[Callable[..., Any]]
    engine: AsyncEngine
    _reader: AsyncEngine
    _autocommit: AsyncEngine

    async def create_session(self, session: SignInSession) -> None:
        try:
            async with self._autocommit.begin() as connection:
                await connection.execute(
                    sessions.insert().values(
                        session_id=session.session_id,
                        user_id=session.user_id,
                        auth_time=session.auth_time,
                        created_at=session.created_at,
                        last_seen_at=session.last_seen_at,
                        expires_at=session.expires_at,
                    )
                )
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def get_session(self, session_id: str) -> SignInSession | None:
        try:
            async with self._reader.connect() as connection:
                row = (
                    await connection.execute(
                        select(*_SESSION_COLUMNS).where(sessions.c.session_id == session_id)
                    )
                ).first()
                if row is None:
                    return None
                clients = await self._clients_of(connection, [session_id])
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error
        return _session(row, clients.get(session_id, ()))

    async def touch_session(self, session_id: str, now: datetime) -> None:
        try:
            async with self._autocommit.begin() as connection:
                await connection.execute(
                    update(sessions)
                    .where(sessions.c.session_id == session_id, sessions.c.ended_at.is_(None))
                    .values(last_seen_at=now)
                )
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def add_session_client(self, session_id: str, client_id: str, now: datetime) -> None:
        try:
            async with self._autocommit.begin() as connection:
                # Once per client: the first code for it in this session writes the row, later ones nothing.
                await connection.execute(
                    self._insert(session_clients)
                    .values(session_id=session_id, client_id=client_id, first_at=now)
                    .on_conflict_do_nothing(index_elements=["session_id", "client_id"])
                )
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def list_sessions(self, user_id: str) -> list[SignInSession]:
        try:
            async with self._reader.connect() as connection:
                rows = (
                    await connection.execute(
                        select(*_SESSION_COLUMNS)
                        .where(sessions.c.user_id == user_id, sessions.c.ended_at.is_(None))
                        .order_by(sessions.c.created_at, sessions.c.session_id)
                    )
                ).all()
                clients = await self._clients_of(connection, [row.session_id for row in rows])
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error
        return [_session(row, clients.get(row.session_id, ())) for row in rows]

    async def end_session(
        self, session_id: str, reason: EndReason, now: datetime, default_access_token_ttl: timedelta
    ) -> EndedSession | None:
        ended = await self._end(sessions.c.session_id == session_id, reason, now, default_access_token_ttl)
        return ended[0] if ended else None

    async def end_user_sessions(
        self, user_id: str, reason: EndReason, now: datetime, default_access_token_ttl: timedelta
    ) -> list[EndedSession]:
        return await self._end(sessions.c.user_id == user_id, reason, now, default_access_token_ttl)

    async def end_expired_sessions(
        self, now: datetime, idle_timeout: timedelta | None, default_access_token_ttl: timedelta
    ) -> list[EndedSession]:
        expired: ColumnElement[bool] = sessions.c.expires_at <= now
        if idle_timeout is not None:
            expired = or_(expired, sessions.c.last_seen_at <= now - idle_timeout)
        return await self._end(expired, EndReason.EXPIRED, now, default_access_token_ttl)

    async def _end(
        self,
        which: ColumnElement[bool],
        reason: EndReason,
        now: datetime,
        default_access_token_ttl: timedelta,
    ) -> list[EndedSession]:
        try:
            async with self.engine.begin() as connection:
                claimed = (
                    await connection.execute(
                        update(sessions)
                        .where(and_(which, sessions.c.ended_at.is_(None)))
                        .values(ended_at=now, end_reason=reason.value)
                        .returning(sessions.c.session_id, sessions.c.user_id, sessions.c.created_at)
                    )
                ).all()
                if not claimed:
                    return []
                ids = [row.session_id for row in claimed]
                clients = await self._clients_of(connection, ids)
                await revoke_families(
                    connection,
                    self._insert,
                    and_(refresh_families.c.session_id.in_(ids), not_(_offline_access)),
                    default_access_token_ttl,
                )
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error
        ordered = sorted(claimed, key=lambda row: (aware(row.created_at), row.session_id))
        return [
            EndedSession(row.session_id, row.user_id, tuple(clients.get(row.session_id, ())), reason)
            for row in ordered
        ]

    async def purge_ended_sessions(self, now: datetime) -> None:
        """Delete the sessions that ended and whose lifetime is over (an unended one is first ended by the
        sweep, which announces it), with their clients."""
        try:
            async with self.engine.begin() as connection:
                gone = select(sessions.c.session_id).where(
                    sessions.c.ended_at.is_not(None), sessions.c.expires_at < now
                )
                await connection.execute(
                    delete(session_clients).where(session_clients.c.session_id.in_(gone))
                )
                await connection.execute(
                    delete(sessions).where(sessions.c.ended_at.is_not(None), sessions.c.expires_at < now)
                )
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    @staticmethod
    async def _clients_of(connection: Any, session_ids: list[str]) -> dict[str, list[str]]:
        """Each session's clients, in the order it first signed into them."""
        if not session_ids:
            return {}
        found: dict[str, list[str]] = {}
        for start in range(0, len(session_ids), 1_000):
            rows = await connection.execute(
                select(session_clients.c.session_id, session_clients.c.client_id)
                .where(session_clients.c.session_id.in_(session_ids[start : start + 1_000]))
                .order_by(
                    session_clients.c.session_id, session_clients.c.first_at, session_clients.c.client_id
                )
            )
            for row in rows:
                found.setdefault(row.session_id, []).append(row.client_id)
        return found
