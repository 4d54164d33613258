"""The Store port on SQLAlchemy Core: one short transaction per operation, atomic where it matters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.protocol.models import (
    AuthorizationCode,
    Client,
    ClientType,
    Redemption,
    RedemptionOutcome,
    RefreshToken,
    TokenEndpointAuthMethod,
    User,
)
from authserver.storage.tables import (
    AuthorizationCodeRow,
    ClientRow,
    RefreshTokenRow,
    RevokedAccessTokenRow,
    UserRow,
)

clients = ClientRow.__table__  # type: ignore[attr-defined]
users = UserRow.__table__  # type: ignore[attr-defined]
codes = AuthorizationCodeRow.__table__  # type: ignore[attr-defined]
refresh_tokens = RefreshTokenRow.__table__  # type: ignore[attr-defined]
revoked = RevokedAccessTokenRow.__table__  # type: ignore[attr-defined]


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


def _user_from_row(row: Any) -> User:
    return User(
        user_id=row.user_id,
        username=row.username,
        password_hash=row.password_hash,
        email=row.email,
        email_verified=row.email_verified,
        name=row.name,
    )


def _refresh_from_row(row: Any) -> RefreshToken:
    return RefreshToken(
        family_id=row.family_id,
        client_id=row.client_id,
        user_id=row.user_id,
        scope=row.scope,
        audience=row.audience,
        auth_time=row.auth_time,
        expires_at=aware(row.expires_at),  # type: ignore[arg-type]
        rotated=row.rotated_at is not None,
        revoked=row.revoked,
    )


class SqlStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(select(1))

    # Clients and users
    async def get_client(self, client_id: str) -> Client | None:
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(clients).where(clients.c.client_id == client_id))).first()
        return client_from_row(row) if row else None

    async def get_user(self, user_id: str) -> User | None:
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(users).where(users.c.user_id == user_id))).first()
        return _user_from_row(row) if row else None

    async def get_user_by_username(self, username: str) -> User | None:
        async with self.engine.connect() as connection:
            row = (await connection.execute(select(users).where(users.c.username == username))).first()
        return _user_from_row(row) if row else None

    async def create_user(self, user: User) -> None:
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

    async def set_password(self, username: str, password_hash: str) -> bool:
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(users).where(users.c.username == username).values(password_hash=password_hash)
            )
        return result.rowcount == 1

    # Authorization codes
    async def save_authorization_code(self, code_hash: str, code: AuthorizationCode) -> None:
        async with self.engine.begin() as connection:
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

    async def redeem_authorization_code(self, code_hash: str, now: datetime) -> Redemption[AuthorizationCode]:
        async with self.engine.begin() as connection:
            row = (await connection.execute(select(codes).where(codes.c.code_hash == code_hash))).first()
            if row is None:
                return Redemption(RedemptionOutcome.UNKNOWN)
            claimed = await connection.execute(
                update(codes)
                .where(codes.c.code_hash == code_hash, codes.c.consumed_at.is_(None))
                .values(consumed_at=now)
            )
            if claimed.rowcount != 1:
                return Redemption(RedemptionOutcome.REPLAYED, extra={"family_id": row.family_id or ""})
        expires_at = aware(row.expires_at)
        assert expires_at is not None
        if expires_at <= now:
            return Redemption(RedemptionOutcome.EXPIRED)
        record = AuthorizationCode(
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
        return Redemption(RedemptionOutcome.OK, record)

    async def link_code_to_family(self, code_hash: str, family_id: str) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                update(codes).where(codes.c.code_hash == code_hash).values(family_id=family_id)
            )

    # Refresh tokens
    @staticmethod
    def _refresh_values(token_hash: str, token: RefreshToken, now: datetime) -> dict[str, Any]:
        return {
            "token_hash": token_hash,
            "family_id": token.family_id,
            "client_id": token.client_id,
            "user_id": token.user_id,
            "scope": token.scope,
            "audience": token.audience,
            "auth_time": token.auth_time,
            "issued_at": now,
            "expires_at": token.expires_at,
        }

    async def save_refresh_token(self, token_hash: str, token: RefreshToken) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                insert(refresh_tokens).values(self._refresh_values(token_hash, token, datetime.now(UTC)))
            )

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash)
                )
            ).first()
        return _refresh_from_row(row) if row else None

    async def rotate_refresh_token(
        self, old_hash: str, new_hash: str, new_token: RefreshToken, now: datetime
    ) -> Redemption[RefreshToken]:
        async with self.engine.begin() as connection:
            # The conditional update is the lock: of two concurrent rotations exactly one sees rowcount 1.
            claimed = await connection.execute(
                update(refresh_tokens)
                .where(
                    refresh_tokens.c.token_hash == old_hash,
                    refresh_tokens.c.rotated_at.is_(None),
                    refresh_tokens.c.revoked.is_(False),
                )
                .values(rotated_at=now)
            )
            if claimed.rowcount != 1:
                return Redemption(RedemptionOutcome.REPLAYED)
            await connection.execute(
                insert(refresh_tokens).values(self._refresh_values(new_hash, new_token, now))
            )
        return Redemption(RedemptionOutcome.OK, new_token)

    async def revoke_refresh_family(self, family_id: str) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                update(refresh_tokens).where(refresh_tokens.c.family_id == family_id).values(revoked=True)
            )

    async def revoke_client_tokens(self, client_id: str) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                update(refresh_tokens).where(refresh_tokens.c.client_id == client_id).values(revoked=True)
            )

    # Access-token revocations
    async def revoke_access_token(self, jti: str, expires_at: datetime) -> None:
        async with self.engine.begin() as connection:
            exists = (await connection.execute(select(revoked.c.jti).where(revoked.c.jti == jti))).first()
            if exists is None:
                await connection.execute(
                    insert(revoked).values(jti=jti, expires_at=expires_at, revoked_at=datetime.now(UTC))
                )

    async def revoked_since(self, since: datetime) -> tuple[list[tuple[str, datetime]], datetime]:
        async with self.engine.connect() as connection:
            rows = (
                await connection.execute(
                    select(revoked.c.jti, revoked.c.expires_at, revoked.c.revoked_at).where(
                        revoked.c.revoked_at > since, revoked.c.expires_at > datetime.now(UTC)
                    )
                )
            ).all()
        newest = max((aware(row.revoked_at) for row in rows), default=since)  # type: ignore[type-var]
        return [(row.jti, aware(row.expires_at)) for row in rows], newest  # type: ignore[misc]

    async def purge_expired(self, now: datetime) -> None:
        """Delete what can never be used again; hashes of used codes are kept until they expire (replay)."""
        async with self.engine.begin() as connection:
            await connection.execute(delete(codes).where(codes.c.expires_at < now))
            await connection.execute(delete(refresh_tokens).where(refresh_tokens.c.expires_at < now))
            await connection.execute(delete(revoked).where(revoked.c.expires_at < now))
