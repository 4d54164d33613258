"""Refresh token values: ``<family id>.<secret>``.

A family is one sign-in's chain of refresh tokens; the database keeps one row per family with the hash of
its current secret. A refresh-token rotation replaces that hash in place (one row, found by its primary
key), so the table holds one row per live sign-in instead of one per token ever issued, and presenting
any other secret for a family is reuse (RFC 9700 §4.14.2): the family id is as private as the token it
comes in.

Family ids start with the time in milliseconds so that new families are appended to the primary key's
last page instead of a random one (they tell a holder when the sign-in began, which it knows anyway).

A grant (one sign-in: a code redemption and every refresh-token rotation after it) is named in its access
tokens by a grant id, a hash of the family id (``grant_id_of_family``): resource servers read it, and it
cannot be turned back into the family id, which would let anyone holding an access token present a wrong
secret for the family and so revoke it as reused. A code redeemed without a refresh token is a grant of
its own, named from the code's hash (``grant_id_of_code``).

Tokens issued before families (a plain random value, no dot) are still accepted: their hash maps to the
family they were migrated into (``LegacyRefreshTokenRow``) until they expire.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from authserver.crypto.opaque_tokens import new_opaque_token, token_hash

_FAMILY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class RefreshTokenKey:
    """What a presented value says: its family (None for a token issued before families) and the hash of
    its secret (of the whole value for an older token)."""

    family_id: str | None
    secret_hash: str


def new_family_id() -> str:
    """48 bits of milliseconds, then 80 random bits: 32 hex digits."""
    return f"{int(time.time() * 1000) & 0xFFFF_FFFF_FFFF:012x}{secrets.token_hex(10)}"


def new_refresh_token(family_id: str) -> tuple[str, str]:
    """A new token of ``family_id``: (the value handed to the client, the hash the store keeps)."""
    secret = new_opaque_token()
    return f"{family_id}.{secret}", token_hash(secret)


def refresh_token_key(value: str) -> RefreshTokenKey:
    family_id, dot, secret = value.partition(".")
    if dot and secret and _FAMILY_ID.fullmatch(family_id):
        return RefreshTokenKey(family_id, token_hash(secret))
    return RefreshTokenKey(None, token_hash(value))


def grant_id_of_family(family_id: str) -> str:
    """The grant id of a refresh family's access tokens: 128 bits of SHA-256 over the family id (80 random
    bits of which no one can search), so it does not reveal the family id."""
    return hashlib.sha256(b"authyard grant of family " + family_id.encode()).hexdigest()[:32]


def grant_id_of_code(code_hash: str) -> str:
    """The grant id of the access token of a code redeemed without a refresh token."""
    return hashlib.sha256(b"authyard grant of code " + code_hash.encode()).hexdigest()[:32]
