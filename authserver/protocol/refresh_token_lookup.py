"""From a presented refresh token value to its family: read from the value, or (for a token issued before
families) looked up by the value's hash."""

from __future__ import annotations

from authserver.crypto.refresh_token_values import RefreshTokenKey, refresh_token_key
from authserver.protocol.store import Store

# Longer values are refused unread: no hash of attacker-sized input (ours are 76 characters).
MAX_REFRESH_TOKEN_LENGTH = 512


async def presented_refresh_token(store: Store, value: str) -> RefreshTokenKey | None:
    """The key of ``value`` with its family known; None when no family could have issued it."""
    if len(value) > MAX_REFRESH_TOKEN_LENGTH:
        return None
    key = refresh_token_key(value)
    if key.family_id is not None:
        return key
    family_id = await store.legacy_refresh_family(key.secret_hash)
    return None if family_id is None else RefreshTokenKey(family_id, key.secret_hash)
