"""Client secrets: generated with 256 bits of entropy, stored as SHA-256, compared in constant time.

A slow KDF buys nothing for a uniformly random 256-bit secret (it cannot be brute-forced either way) and
would cap the token endpoint at a few hundred requests per second.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

MIN_SUPPLIED_SECRET_LENGTH = (
    43  # a caller-supplied secret must carry as much entropy as ours (256-bit b64url)
)


def generate_client_secret() -> str:
    return secrets.token_urlsafe(32)


def generate_client_id() -> str:
    return secrets.token_urlsafe(16)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str | None) -> bool:
    if not stored_hash:
        return False
    return hmac.compare_digest(hash_secret(secret), stored_hash)
