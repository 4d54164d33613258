"""Users in the database (``protocol.store.UserDirectory``) and the login throttle's failure counters:
rows in, rows out, the same statements on both databases (``SqlStore`` builds on this)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import ColumnElement, and_, case, delete, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from authserver.crypto.refresh_token_values import grant_id_of_family
from authserver.protocol.models import LoginFailures, User
from authserver.protocol.revocation_list import CLOCK_LEEWAY_SECONDS
from authserver.storage.failures import DATABASE_ERRORS, unavailable
from authserver.storage.rows import aware, user_from_row
from authserver.storage.statements import USER_COLUMNS, grant_revocation
from authserver.storage.tables import (
    clients,
    consents,
    federated_identities,
    login_failures,
    refresh_families,
    users,
)

_REVOCATIONS_PER_STATEMENT = 1_000


def _user_values(user: User) -> dict[str, Any]:
    return {
        "password_hash": user.password_hash,
        "email": user.email,
        "email_verified": user.email_verified,
        "name": user.name,
        "given_name": user.given_name,
        "family_name": user.family_name,
        "locale": user.locale,
        "zoneinfo": user.zoneinfo,
        "phone_number": user.phone_number,
        "phone_number_verified": user.phone_number_verified,
        "address": user.address,
        "disabled": user.disabled,
        "groups": list(user.groups) or None,
    }


async def revoke_families(
    connection: AsyncConnection,
    dialect_insert: Callable[..., Any],
    which: ColumnElement[bool],
    default_access_token_ttl: timedelta,
) -> None:
    """Revoke every unrevoked refresh family ``which`` selects, and the access tokens of each family whose
    latest one (minted at its last rotation, with its client's TTL) may still be live."""
    now = datetime.now(UTC)
    leeway = timedelta(seconds=CLOCK_LEEWAY_SECONDS)
    unrevoked = and_(which, refresh_families.c.revoked == literal(False))
    families = await connection.execute(
        select(
            refresh_families.c.family_id,
            refresh_families.c.issued_at,
            refresh_families.c.rotated_at,
            clients.c.access_token_ttl_seconds,
        )
        .select_from(refresh_families.outerjoin(clients, clients.c.client_id == refresh_families.c.client_id))
        .where(unrevoked)
    )
    live: dict[datetime, list[str]] = {}
    for family in families:
        ttl = family.access_token_ttl_seconds
        lifetime = (timedelta(seconds=ttl) if ttl else default_access_token_ttl) + leeway
        last_expiry = aware(family.rotated_at or family.issued_at) + lifetime
        if last_expiry > now:
            live.setdefault(now + lifetime, []).append(grant_id_of_family(family.family_id))
    await connection.execute(update(refresh_families).where(unrevoked).values(revoked=True))
    for expires_at, grant_ids in live.items():
        for start in range(0, len(grant_ids), _REVOCATIONS_PER_STATEMENT):
            chunk = grant_ids[start : start + _REVOCATIONS_PER_STATEMENT]
            await connection.execute(grant_revocation(dialect_insert, chunk, expires_at))


class SqlUserDirectory:
    _insert: ClassVar[Callable[..., Any]]
    engine: AsyncEngine
    _reader: AsyncEngine
    _autocommit: AsyncEngine

    async def add_user(self, user: User) -> bool:
        try:
            async with self.engine.begin() as connection:
                await connection.execute(
                    insert(users).values(
                        user_id=user.user_id,
                        username=user.username,
                        created_at=datetime.now(UTC),
                        **_user_values(user),
                    )
                )
            return True
        except IntegrityError:
            return False  # the username (or id) is taken: the unique index decided, no race
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def list_users(self, after: str | None, limit: int) -> list[User]:
        query = select(*USER_COLUMNS).order_by(users.c.username).limit(limit)
        if after:
            query = query.where(users.c.username > after)
        try:
            async with self.engine.connect() as connection:
                return [user_from_row(row) for row in (await connection.execute(query)).all()]
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def change_user(
        self, username: str, change: Callable[[User], User], revoke_grants: timedelta | None = None
    ) -> User | None:
        try:
            async with self.engine.begin() as connection:
                row = (
                    await connection.execute(
                        select(*USER_COLUMNS).where(users.c.username == username).with_for_update()
                    )
                ).first()
                if row is None:
                    return None
                current = user_from_row(row)
                wanted = change(current)
                if wanted != current:
                    wanted = replace(wanted, updated_at=datetime.now(UTC))  # OIDC Core §5.1
                    await connection.execute(
                        update(users)
                        .where(users.c.user_id == current.user_id)
                        .values(**_user_values(wanted), updated_at=wanted.updated_at)
                    )
                if revoke_grants is not None:
                    await self._revoke_user_grants(connection, current.user_id, revoke_grants)
                return wanted
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def delete_user(self, username: str, default_access_token_ttl: timedelta) -> bool:
        try:
            async with self.engine.begin() as connection:
                user_id = (
                    await connection.execute(
                        select(users.c.user_id).where(users.c.username == username).with_for_update()
                    )
                ).scalar()
                if user_id is None:
                    return False
                await connection.execute(delete(users).where(users.c.user_id == user_id))
                await connection.execute(
                    delete(federated_identities).where(federated_identities.c.user_id == user_id)
                )
                # A user created again under this name is someone new: nothing they allowed carries over.
                await connection.execute(delete(consents).where(consents.c.user_id == user_id))
                await self._revoke_user_grants(connection, user_id, default_access_token_ttl)
            return True
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def federated_user(self, provider: str, subject: str) -> User | None:
        query = (
            select(*USER_COLUMNS)
            .select_from(federated_identities.join(users, users.c.user_id == federated_identities.c.user_id))
            .where(federated_identities.c.provider == provider, federated_identities.c.subject == subject)
        )
        try:
            async with self.engine.connect() as connection:
                row = (await connection.execute(query)).first()
            return user_from_row(row) if row else None
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def add_federated_user(self, provider: str, subject: str, user: User) -> bool:
        now = datetime.now(UTC)
        try:
            async with self.engine.begin() as connection:
                await connection.execute(
                    insert(users).values(
                        user_id=user.user_id, username=user.username, created_at=now, **_user_values(user)
                    )
                )
                await connection.execute(
                    insert(federated_identities).values(
                        provider=provider,
                        subject=subject,
                        user_id=user.user_id,
                        created_at=now,
                        last_sign_in_at=now,
                    )
                )
            return True
        except IntegrityError:
            return False  # the username, or this link (a concurrent first sign-in), is taken: nothing written
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def federated_sign_in(
        self, provider: str, subject: str, change: Callable[[User], User]
    ) -> User | None:
        try:
            async with self.engine.begin() as connection:
                row = (
                    await connection.execute(
                        select(*USER_COLUMNS)
                        .select_from(
                            federated_identities.join(
                                users, users.c.user_id == federated_identities.c.user_id
                            )
                        )
                        .where(
                            federated_identities.c.provider == provider,
                            federated_identities.c.subject == subject,
                        )
                        .with_for_update()
                    )
                ).first()
                if row is None:
                    return None
                current = user_from_row(row)
                wanted = change(current)
                now = datetime.now(UTC)
                if wanted != current:
                    wanted = replace(wanted, updated_at=now)  # OIDC Core §5.1
                    await connection.execute(
                        update(users)
                        .where(users.c.user_id == current.user_id)
                        .values(**_user_values(wanted), updated_at=wanted.updated_at)
                    )
                await connection.execute(
                    update(federated_identities)
                    .where(
                        federated_identities.c.provider == provider, federated_identities.c.subject == subject
                    )
                    .values(last_sign_in_at=now)
                )
                return wanted
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def _revoke_user_grants(
        self, connection: AsyncConnection, user_id: str, default_access_token_ttl: timedelta
    ) -> None:
        await revoke_families(
            connection, self._insert, refresh_families.c.user_id == user_id, default_access_token_ttl
        )

    # The login throttle (``protocol.login_throttle``): read on every attempt, written on failures only.
    async def login_failures(self, keys: Iterable[str]) -> dict[str, LoginFailures]:
        wanted = list(keys)
        try:
            async with self._reader.connect() as connection:
                rows = await connection.execute(
                    select(
                        login_failures.c.key,
                        login_failures.c.failures,
                        login_failures.c.last_failure_at,
                        login_failures.c.expires_at,
                    ).where(login_failures.c.key.in_(wanted))
                )
                return {
                    row.key: LoginFailures(row.failures, aware(row.last_failure_at), aware(row.expires_at))
                    for row in rows
                }
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def record_login_failure(self, keys: Iterable[str], now: datetime, window: timedelta) -> None:
        rows = [
            {"key": key, "failures": 1, "last_failure_at": now, "expires_at": now + window}
            for key in dict.fromkeys(keys)
        ]
        if not rows:
            return
        statement = self._insert(login_failures).values(rows)
        expired = login_failures.c.expires_at <= now
        # One statement per attempt, atomic on both databases: concurrent failures each count.
        statement = statement.on_conflict_do_update(
            index_elements=["key"],
            set_={
                "failures": case((expired, 1), else_=login_failures.c.failures + 1),
                "last_failure_at": statement.excluded.last_failure_at,
                "expires_at": statement.excluded.expires_at,
            },
        )
        try:
            async with self._autocommit.begin() as connection:
                await connection.execute(statement)
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def forget_login_failures(self, keys: Iterable[str]) -> None:
        try:
            async with self._autocommit.begin() as connection:
                await connection.execute(delete(login_failures).where(login_failures.c.key.in_(list(keys))))
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error
