"""User passwords: argon2id with OWASP's minimum parameters, hashed off the event loop."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# argon2 releases the GIL, so threads give real parallelism; bounded so logins cannot starve the token path.
_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")

# Verified against when the username is unknown, so a miss costs as much as a hit (no user enumeration).
_DUMMY_HASH = _hasher.hash("authyard-timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(stored_hash: str | None, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(_executor, _verify, stored_hash, password)
