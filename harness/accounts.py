"""Users the tests and the benchmarks put straight into a store (what ``authserver users create`` would)."""

from __future__ import annotations

import uuid

from authserver.crypto.passwords import hash_password
from authserver.protocol.models import User


def new_user(username: str, password: str, *, email: str, name: str, email_verified: bool = True) -> User:
    """A user with a fresh id and the argon2id hash of ``password``."""
    return User(
        user_id=str(uuid.uuid4()),
        username=username,
        password_hash=hash_password(password),
        email=email,
        email_verified=email_verified,
        name=name,
    )
