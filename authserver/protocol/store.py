"""The storage port: what the protocol needs from a database, and nothing of how it is done."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from authserver.protocol.models import AuthorizationCode, Client, Redemption, RefreshToken, User


class Store(Protocol):
    async def get_client(self, client_id: str) -> Client | None: ...

    async def get_user(self, user_id: str) -> User | None: ...

    async def get_user_by_username(self, username: str) -> User | None: ...

    async def save_authorization_code(self, code_hash: str, code: AuthorizationCode) -> None: ...

    async def redeem_authorization_code(self, code_hash: str, now: datetime) -> Redemption[AuthorizationCode]:
        """Mark the code used, atomically; a second redemption reports REPLAYED with the family it issued."""
        ...

    async def link_code_to_family(self, code_hash: str, family_id: str) -> None: ...

    async def save_refresh_token(self, token_hash: str, token: RefreshToken) -> None: ...

    async def rotate_refresh_token(
        self, old_hash: str, new_hash: str, new_token: RefreshToken, now: datetime
    ) -> Redemption[RefreshToken]:
        """In one transaction: mark old used and store new. REPLAYED when old was already used."""
        ...

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None: ...

    async def revoke_refresh_family(self, family_id: str) -> None: ...

    async def revoke_access_token(self, jti: str, expires_at: datetime) -> None: ...

    async def revoked_since(self, since: datetime) -> tuple[list[tuple[str, datetime]], datetime]:
        """(jti, expiry) revoked after ``since``, and the newest revocation time seen (incremental sync)."""
        ...
