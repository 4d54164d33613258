"""Client registrations in the database (``protocol.store.ClientRegistry``): rows in, rows out. Both
stores are one (``SqlStore`` builds on this); its statements are the same on both databases.

What a registration or a secret rotation changes is decided in ``protocol.client_registration`` and
``protocol.client_secret_rotation``; this module locks the row, hands the client to that decision and
writes what comes back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.crypto.refresh_token_values import grant_id_of_family
from authserver.protocol.models import Client, RegisteredClient
from authserver.protocol.revocation_list import CLOCK_LEEWAY_SECONDS
from authserver.protocol.store import WorkloadTaken
from authserver.storage.failures import DATABASE_ERRORS, unavailable
from authserver.storage.rows import aware, client_from_row, token_exchange_value
from authserver.storage.statements import grant_revocation
from authserver.storage.tables import client_changes, clients, consents, refresh_families

_REVOCATIONS_PER_STATEMENT = 1_000


def registered_from_row(row: Any) -> RegisteredClient:
    return RegisteredClient(
        client=client_from_row(row),
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        secret_rotated_at=aware(row.secret_rotated_at),
    )


def _utc(moment: datetime) -> datetime:
    """A timestamp that is never NULL, in UTC (SQLite hands it back naive)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _row_values(registered: RegisteredClient) -> dict[str, Any]:
    client = registered.client
    return {
        "name": client.name,
        "client_type": client.client_type.value,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "grant_types": list(client.grant_types),
        "scopes": list(client.scopes),
        "audiences": list(client.audiences),
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "secret_hash": client.secret_hash,
        "previous_secret_hash": client.previous_secret_hash,
        "previous_secret_expires_at": client.previous_secret_expires_at,
        "secret_rotated_at": registered.secret_rotated_at,
        "access_token_ttl_seconds": client.access_token_ttl_seconds,
        "refresh_token_ttl_seconds": client.refresh_token_ttl_seconds,
        "require_pkce": client.require_pkce,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "skip_consent": client.skip_consent,
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "backchannel_logout_session_required": client.backchannel_logout_session_required,
        "jwks": client.jwks,
        "jwks_uri": client.jwks_uri,
        "token_endpoint_auth_signing_alg": client.token_endpoint_auth_signing_alg,
        "token_exchange": token_exchange_value(client.token_exchange),
        "workload_issuer": client.workload_issuer,
        "workload_subject": client.workload_subject,
        "rate_limit_per_second": client.rate_limit.requests_per_second if client.rate_limit else None,
        "rate_limit_burst": client.rate_limit.burst if client.rate_limit else None,
        "created_at": registered.created_at,
        "updated_at": registered.updated_at,
    }


class SqlClientRegistry:
    # The dialect's INSERT, for ON CONFLICT.
    _insert: ClassVar[Callable[..., Any]]

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def get_registered_client(self, client_id: str) -> RegisteredClient | None:
        try:
            async with self.engine.connect() as connection:
                query = select(clients).where(clients.c.client_id == client_id)
                row = (await connection.execute(query)).first()
            return registered_from_row(row) if row else None
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def get_client_by_workload(self, issuer: str, subject: str) -> Client | None:
        try:
            async with self.engine.connect() as connection:
                query = select(clients).where(
                    clients.c.workload_issuer == issuer, clients.c.workload_subject == subject
                )
                row = (await connection.execute(query)).first()
            return client_from_row(row) if row else None
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def list_registered_clients(self, after: str | None, limit: int) -> list[RegisteredClient]:
        try:
            query = select(clients).order_by(clients.c.client_id).limit(limit)
            if after:
                query = query.where(clients.c.client_id > after)
            async with self.engine.connect() as connection:
                return [registered_from_row(row) for row in (await connection.execute(query)).all()]
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def change_registered_client(
        self, client_id: str, change: Callable[[RegisteredClient | None], RegisteredClient | None]
    ) -> RegisteredClient | None:
        try:
            try:
                return await self._change(client_id, change)
            except IntegrityError:
                # Two callers created the same client at once; the loser now finds it and changes it instead.
                pass
            try:
                return await self._change(client_id, change)
            except IntegrityError:
                # Not the client_id (the row exists now): the unique (workload_issuer, workload_subject).
                raise WorkloadTaken() from None
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error

    async def _change(
        self, client_id: str, change: Callable[[RegisteredClient | None], RegisteredClient | None]
    ) -> RegisteredClient | None:
        async with self.engine.begin() as connection:
            row = (
                await connection.execute(
                    select(clients).where(clients.c.client_id == client_id).with_for_update()
                )
            ).first()
            current = registered_from_row(row) if row else None
            wanted = change(current)
            if wanted is None or wanted == current:
                return current
            if current is None:
                await connection.execute(insert(clients).values(client_id=client_id, **_row_values(wanted)))
            else:
                await connection.execute(
                    update(clients).where(clients.c.client_id == client_id).values(**_row_values(wanted))
                )
            await connection.execute(self._changed(client_id))
            return wanted

    def _changed(self, client_id: str) -> Any:
        """Record that the client changed now, in the writing transaction: every worker's revocation sync
        reads it and drops its cached copy (``storage.client_cache``)."""
        now = datetime.now(UTC)
        record = self._insert(client_changes).values(client_id=client_id, changed_at=now)
        return record.on_conflict_do_update(index_elements=["client_id"], set_={"changed_at": now})

    async def delete_registered_client(self, client_id: str, default_access_token_ttl: timedelta) -> bool:
        now = datetime.now(UTC)
        try:
            async with self.engine.begin() as connection:
                ttl = (
                    await connection.execute(
                        select(clients.c.access_token_ttl_seconds).where(clients.c.client_id == client_id)
                    )
                ).scalar()
                result = await connection.execute(delete(clients).where(clients.c.client_id == client_id))
                if result.rowcount == 1:
                    await connection.execute(self._changed(client_id))
                # What users allowed it is forgotten: a client registered again under this id asks anew.
                await connection.execute(delete(consents).where(consents.c.client_id == client_id))
                # Its grants die with it: every refresh family, and the access tokens of each family whose
                # latest one (minted at its last rotation) may still be live.
                lifetime = (timedelta(seconds=ttl) if ttl else default_access_token_ttl) + timedelta(
                    seconds=CLOCK_LEEWAY_SECONDS
                )
                families = await connection.execute(
                    select(
                        refresh_families.c.family_id,
                        refresh_families.c.issued_at,
                        refresh_families.c.rotated_at,
                    ).where(refresh_families.c.client_id == client_id)
                )
                live = [
                    grant_id_of_family(family.family_id)
                    for family in families
                    if aware(family.rotated_at or family.issued_at) + lifetime > now
                ]
                await connection.execute(
                    update(refresh_families)
                    .where(refresh_families.c.client_id == client_id)
                    .values(revoked=True)
                )
                for start in range(0, len(live), _REVOCATIONS_PER_STATEMENT):
                    chunk = live[start : start + _REVOCATIONS_PER_STATEMENT]
                    await connection.execute(grant_revocation(self._insert, chunk, now + lifetime))
            return result.rowcount == 1
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error
