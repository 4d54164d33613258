"""The Store and ClientRegistry ports on PostgreSQL.

Every operation that is a single statement runs in autocommit (no BEGIN/COMMIT round trips); refresh
rotation and code redemption are each ONE statement (``token_writes``), and those that wait for a
connection share one (``write_batches``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

from authserver.protocol.models import (
    AuthorizationCode,
    CodeBinding,
    NewRefreshToken,
    RedeemedCode,
    Redemption,
    RedemptionOutcome,
    RefreshToken,
)
from authserver.storage.failures import DATABASE_ERRORS, unavailable
from authserver.storage.postgres.direct_pool import Connections, EngineConnections
from authserver.storage.postgres.token_writes import (
    AssertionSpend,
    CodeRedemption,
    RefreshRotation,
    TokenWrites,
)
from authserver.storage.rows import USER_FIELDS, redeemed, rotated, user_from_row
from authserver.storage.sql_store import SqlStore, observe_batch
from authserver.storage.statements import CODE_FAMILY
from authserver.storage.write_batches import WriteBatcher


class PostgresStore(SqlStore):
    _insert = staticmethod(postgresql.insert)

    def __init__(self, engine: AsyncEngine, direct: Connections | None = None) -> None:
        """``direct``: where the token path's writes run; by default, on the engine's pool."""
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        super().__init__(engine, autocommit)
        connections = direct or EngineConnections(autocommit)
        self._token_writes = TokenWrites(connections)
        self.write_batches = WriteBatcher(connections.slots, connections.wait_timeout, observe=observe_batch)

    async def redeem_authorization_code(
        self, code_hash: str, now: datetime, binding: CodeBinding, refresh: NewRefreshToken | None
    ) -> Redemption[RedeemedCode]:
        # One statement (shared with other redemptions waiting for a connection): claim the code, store the
        # refresh token, read the user.
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
        try:
            row = await self.write_batches.submit(self._token_writes.redeem, code_hash, redemption)
            if row is None:
                async with self._reader.connect() as connection:
                    used = (await connection.execute(CODE_FAMILY, {"b_code_hash": code_hash})).first()
                if used is None:
                    return Redemption(RedemptionOutcome.UNKNOWN)
                return Redemption(
                    RedemptionOutcome.REPLAYED,
                    extra={"family_id": used.family_id or "", "client_id": used.client_id},
                )
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error
        code = AuthorizationCode(
            client_id=row["client_id"],
            user_id=row["user_id"],
            redirect_uri=row["redirect_uri"],
            scope=row["scope"],
            audience=row["audience"],
            code_challenge=row["code_challenge"],
            auth_time=row["auth_time"],
            expires_at=row["expires_at"],
            nonce=row["nonce"],
            claims=row["claims"],
            session_id=row["session_id"],
        )
        owner = None
        if row["user_username"] is not None:  # the code's row carries its user's columns
            owner = user_from_row((row["user_id"], *(row[f"user_{name}"] for name in USER_FIELDS[1:])))
        return redeemed(code, owner, row["family_id"] if row["issued"] else None, refresh, now)

    async def rotate_refresh_token(
        self, family_id: str, secret_hash: str, client_id: str, successor: NewRefreshToken, now: datetime
    ) -> Redemption[RefreshToken]:
        # One statement (shared with other rotations waiting for a connection): the conditional UPDATE is
        # the lock (of two rotations of one token exactly one finds its secret current).
        rotation = RefreshRotation(
            family_id, secret_hash, client_id, successor.secret_hash, successor.expires_at, now
        )
        try:
            row = await self.write_batches.submit(self._token_writes.rotate_refresh, family_id, rotation)
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error
        if row is None:
            return Redemption(RedemptionOutcome.REFUSED, await self.get_refresh_token(family_id, secret_hash))
        grant = (
            row["user_id"],
            row["scope"],
            row["audience"],
            row["auth_time"],
            row["claims"],
            row["session_id"],
        )
        return rotated(family_id, client_id, grant, successor)

    async def spend_client_assertion(self, key: str, expires_at: datetime, now: datetime) -> bool:
        # Every private_key_jwt authentication writes: one statement, shared with the spends waiting for a
        # connection.
        spend = AssertionSpend(key, expires_at, now)
        try:
            spent: bool = await self.write_batches.submit(self._token_writes.spend_assertions, key, spend)
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error
        return spent
