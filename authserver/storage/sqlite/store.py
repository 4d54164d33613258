"""The Store and ClientRegistry ports on SQLite.

Refresh rotation and code redemption are each one BEGIN IMMEDIATE transaction, shared by the writes
waiting for this worker's turn (``WriteBatcher``) and run in at most one hop to the connection's thread
(``token_writes``), so the write lock is held for microseconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.dialects import sqlite
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
from authserver.storage.rows import family_as_seen, redeemed, rotated, user_from_row
from authserver.storage.sql_store import SqlStore, observe_batch
from authserver.storage.sqlite import checkpoint as log_checkpoint
from authserver.storage.sqlite import token_writes, usage_writes
from authserver.storage.write_batches import WriteBatcher


class SqliteStore(SqlStore):
    _insert = staticmethod(sqlite.insert)

    def __init__(self, engine: AsyncEngine) -> None:
        # SQLite's driver opens no transaction for a SELECT and one for each DML statement by itself;
        # toggling its isolation level would cost thread hops, so single statements run on the engine as is.
        super().__init__(engine, engine)
        self._token_writes = token_writes.TokenWrites(engine)
        wait_timeout = getattr(engine.pool, "timeout", lambda: 30.0)()
        self.write_batches = WriteBatcher(1, wait_timeout, observe=observe_batch)

    async def _write_usage(self, hourly: list[dict[str, Any]], last: list[dict[str, Any]]) -> None:
        await usage_writes.write_usage(self.engine, hourly, last)  # one SQLite step per table, GIL released

    async def redeem_authorization_code(
        self, code_hash: str, now: datetime, binding: CodeBinding, refresh: NewRefreshToken | None
    ) -> Redemption[RedeemedCode]:
        redemption = token_writes.redeem_code(
            code_hash,
            now,
            binding.client_id,
            binding.redirect_uri,
            binding.code_challenge,
            (refresh.secret_hash, refresh.family_id, refresh.expires_at) if refresh else None,
        )
        try:
            outcome, row, user = await self.write_batches.submit(
                self._token_writes.redeem, code_hash, redemption
            )
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error
        if outcome == "unknown":
            return Redemption(RedemptionOutcome.UNKNOWN)
        if outcome == "used":
            family_id, client_id = row
            return Redemption(
                RedemptionOutcome.REPLAYED, extra={"family_id": family_id or "", "client_id": client_id}
            )
        code = AuthorizationCode(
            client_id=row.client_id,
            user_id=row.user_id,
            redirect_uri=row.redirect_uri,
            scope=row.scope,
            audience=row.audience,
            code_challenge=row.code_challenge,
            auth_time=row.auth_time,
            expires_at=token_writes.loaded(row.expires_at),  # type: ignore[arg-type]  # a family row's expiry is never null
            nonce=row.nonce,
            claims=row.claims,
            session_id=row.session_id,
        )
        return redeemed(code, user_from_row(user) if user else None, row.family_id, refresh, now)

    async def rotate_refresh_token(
        self, family_id: str, secret_hash: str, client_id: str, successor: NewRefreshToken, now: datetime
    ) -> Redemption[RefreshToken]:
        # With the other writes waiting for this worker's turn, in one transaction, one hop at most.
        rotation = token_writes.rotate_refresh(
            family_id, secret_hash, client_id, successor.secret_hash, successor.expires_at, now
        )
        try:
            done, found = await self.write_batches.submit(
                self._token_writes.rotate_refresh, family_id, rotation
            )
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error
        if not done:
            current = family_as_seen(family_id, found, secret_hash) if found else None
            return Redemption(RedemptionOutcome.REFUSED, current)
        return rotated(family_id, client_id, found, successor)

    async def spend_client_assertion(self, key: str, expires_at: datetime, now: datetime) -> bool:
        # Every private_key_jwt authentication writes: with the token path's writes, in this worker's turn
        # on the lock file, never in SQLite's busy handler (whose naps of up to 100 ms were the p99).
        try:
            spent: bool = await self.write_batches.submit(
                self._token_writes.spend_assertions, key, token_writes.spend_assertion(key, expires_at, now)
            )
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error
        return spent

    async def checkpoint(self) -> tuple[int, bytes]:
        """Copy the write-ahead log into the database, on the connection's thread, outside any write
        transaction; writers wait only when the log must start over (the server runs it in a loop,
        ``Services``). Returns the log's state (its frames and generation): equal to the last pass's
        unless something was written since."""
        try:
            done = await log_checkpoint.checkpoint(self.engine)
        except DATABASE_ERRORS as error:
            raise unavailable(error) from error
        return done.log_frames, done.log_generation
