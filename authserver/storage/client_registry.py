"""Client registrations in the database: idempotent upsert, rotation with a grace period, delete."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.admin.registration import ClientRegistration, ClientView, SecretRotation
from authserver.crypto.client_secrets import generate_client_secret, hash_secret, secret_matches
from authserver.durations import parse_duration
from authserver.storage.sql_store import aware, clients, refresh_families


@dataclass(frozen=True)
class RegistryResult:
    view: ClientView
    created: bool = False
    changed: bool = False


def _iso(moment: datetime | None) -> str | None:
    moment = aware(moment)
    return moment.isoformat() if moment else None


def view_of(row: Any, generated_secret: str | None = None) -> ClientView:
    return ClientView(
        client_id=row.client_id,
        name=row.name,
        type=row.client_type,
        grant_types=list(row.grant_types),
        scopes=list(row.scopes),
        audiences=list(row.audiences),
        redirect_uris=list(row.redirect_uris),
        token_endpoint_auth_method=row.token_endpoint_auth_method,
        access_token_ttl_seconds=row.access_token_ttl_seconds,
        refresh_token_ttl_seconds=row.refresh_token_ttl_seconds,
        has_secret=row.secret_hash is not None,
        previous_secret_expires_at=_iso(row.previous_secret_expires_at),
        secret_rotated_at=_iso(row.secret_rotated_at),
        created_at=_iso(row.created_at) or "",
        updated_at=_iso(row.updated_at) or "",
        client_secret=generated_secret,
    )


class ClientRegistry:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def get(self, client_id: str) -> ClientView | None:
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(clients).where(clients.c.client_id == client_id))).first()
        return view_of(row) if row else None

    async def list(self, *, after: str | None = None, limit: int = 100) -> list[ClientView]:
        query = select(clients).order_by(clients.c.client_id).limit(limit)
        if after:
            query = query.where(clients.c.client_id > after)
        async with self.engine.connect() as connection:
            return [view_of(row) for row in (await connection.execute(query)).all()]

    async def upsert(self, client_id: str, registration: ClientRegistration) -> RegistryResult:
        try:
            return await self._upsert(client_id, registration)
        except IntegrityError:
            # Two callers created the same client at once; the loser now finds it and updates instead.
            return await self._upsert(client_id, registration)

    async def _upsert(self, client_id: str, registration: ClientRegistration) -> RegistryResult:
        now = datetime.now(UTC)
        desired: dict[str, Any] = {
            "name": registration.name,
            "client_type": registration.type,
            "token_endpoint_auth_method": registration.auth_method,
            "grant_types": list(dict.fromkeys(registration.grant_types)),
            "scopes": list(dict.fromkeys(registration.scopes)),
            "audiences": list(dict.fromkeys(registration.audiences)),
            "redirect_uris": list(dict.fromkeys(registration.redirect_uris)),
            "access_token_ttl_seconds": registration.ttl_seconds(registration.access_token_ttl),
            "refresh_token_ttl_seconds": registration.ttl_seconds(registration.refresh_token_ttl),
        }
        async with self.engine.begin() as connection:
            row = (
                await connection.execute(
                    select(clients).where(clients.c.client_id == client_id).with_for_update()
                )
            ).first()
            if row is None:
                generated = None
                if registration.type == "confidential":
                    secret = registration.client_secret or generate_client_secret()
                    generated = None if registration.client_secret else secret
                    desired["secret_hash"] = hash_secret(secret)
                await connection.execute(
                    insert(clients).values(client_id=client_id, created_at=now, updated_at=now, **desired)
                )
                row = (
                    await connection.execute(select(clients).where(clients.c.client_id == client_id))
                ).one()
                return RegistryResult(view_of(row, generated), created=True, changed=True)

            changes = {key: value for key, value in desired.items() if getattr(row, key) != value}
            if registration.type == "public":
                changes.update(
                    {
                        k: None
                        for k in ("secret_hash", "previous_secret_hash", "previous_secret_expires_at")
                        if getattr(row, k) is not None
                    }
                )
            elif registration.client_secret and not secret_matches(
                registration.client_secret, row.secret_hash
            ):
                changes["secret_hash"] = hash_secret(registration.client_secret)
                changes["secret_rotated_at"] = now
                if registration.secret_grace_period and row.secret_hash:
                    # A rotation: the current secret keeps working for the grace period. Without a grace
                    # period the new secret replaces it at once.
                    grace = parse_duration(registration.secret_grace_period)
                    changes["previous_secret_hash"] = row.secret_hash
                    changes["previous_secret_expires_at"] = now + grace
            elif row.secret_hash is None:
                return await self._needs_secret(connection, row, changes, now)
            if changes:
                await connection.execute(
                    update(clients).where(clients.c.client_id == client_id).values(updated_at=now, **changes)
                )
                row = (
                    await connection.execute(select(clients).where(clients.c.client_id == client_id))
                ).one()
            return RegistryResult(view_of(row), changed=bool(changes))

    async def _needs_secret(
        self, connection: Any, row: Any, changes: dict[str, Any], now: datetime
    ) -> RegistryResult:
        """A public client turned confidential: it gets a generated secret, shown in this response only."""
        secret = generate_client_secret()
        changes["secret_hash"] = hash_secret(secret)
        changes["secret_rotated_at"] = now
        await connection.execute(
            update(clients).where(clients.c.client_id == row.client_id).values(updated_at=now, **changes)
        )
        row = (await connection.execute(select(clients).where(clients.c.client_id == row.client_id))).one()
        return RegistryResult(view_of(row, secret), changed=True)

    async def rotate_secret(self, client_id: str, rotation: SecretRotation) -> ClientView | None:
        """New secret now; the current one keeps working for the grace period. Idempotent when the caller
        supplies the secret: re-sending the one already current changes nothing."""
        now = datetime.now(UTC)
        async with self.engine.begin() as connection:
            row = (
                await connection.execute(
                    select(clients).where(clients.c.client_id == client_id).with_for_update()
                )
            ).first()
            if row is None:
                return None
            if row.client_type == "public":
                raise ValueError("public clients have no secret to rotate")
            if rotation.client_secret and secret_matches(rotation.client_secret, row.secret_hash):
                return view_of(row)
            secret = rotation.client_secret or generate_client_secret()
            await connection.execute(
                update(clients)
                .where(clients.c.client_id == client_id)
                .values(
                    secret_hash=hash_secret(secret),
                    previous_secret_hash=row.secret_hash,
                    previous_secret_expires_at=now + parse_duration(rotation.grace_period),
                    secret_rotated_at=now,
                    updated_at=now,
                )
            )
            row = (await connection.execute(select(clients).where(clients.c.client_id == client_id))).one()
        return view_of(row, None if rotation.client_secret else secret)

    async def delete(self, client_id: str) -> bool:
        async with self.engine.begin() as connection:
            result = await connection.execute(delete(clients).where(clients.c.client_id == client_id))
            # Its refresh tokens die with it; its access tokens fail client lookup at introspection.
            await connection.execute(
                update(refresh_families).where(refresh_families.c.client_id == client_id).values(revoked=True)
            )
        return result.rowcount == 1
