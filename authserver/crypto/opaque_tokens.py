"""Opaque credentials (authorization codes, refresh tokens): random, and stored only as their hash."""

from __future__ import annotations

import hashlib
import secrets


def new_opaque_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
