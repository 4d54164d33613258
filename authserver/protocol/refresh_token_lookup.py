"""From a presented refresh token value to its family: read from the value, or (for a token issued before
families) looked up by the value's hash."""

from __future__ import annotations

from authserver.crypto.refresh_token_values import refresh_token_key
from authserver.protocol.store import Store

# Longer values are refused unread: no hash of attacker-sized input (ours are 76 characters).
MAX_REFRESH_TOKEN_LENGTH = 512


async def presented_refresh_token(store: Store, value: str) -> tuple[str, str] | None:
    """(family id, secret hash) of ``value``; None when no family could have issued it."""
    if len(value) > MAX_REFRESH_TOKEN_LENGTH:
        return None
    key = refresh_token_key(value)
    family_id = key.family_id or await store.legacy_refresh_family(key.secret_hash)
    return None if family_id is None else (family_id, key.secret_hash)
