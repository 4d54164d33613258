"""The KDF cannot starve the rest: argon2 threads sized for the machine at a lower priority, and logins
refused fast (503, Retry-After, the login page again) when too many already wait."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from authserver.crypto import passwords
from tests.support.oauth import CALLBACK, authorization_request, hidden_fields, register


@pytest.mark.parametrize(
    ("cpus", "workers", "threads"), [(2, 2, 1), (4, 1, 4), (1, 4, 1), (8, 3, 2), (0.5, 1, 1)]
)
def test_kdf_threads_share_the_cpus_among_workers(cpus: float, workers: int, threads: int) -> None:
    assert passwords.default_threads(workers, cpus) == threads


def test_available_cpus_is_at_least_one() -> None:
    assert passwords.available_cpus() >= 1


async def test_kdf_threads_run_at_a_lower_priority() -> None:
    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    base = os.getpriority(os.PRIO_PROCESS, 0)
    executor = passwords._kdf.executor()
    inside = await asyncio.get_running_loop().run_in_executor(executor, niceness)
    assert inside == passwords.KDF_NICENESS or base > passwords.KDF_NICENESS
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # the loop thread is untouched


async def test_logins_beyond_the_kdf_queue_are_refused_fast_with_the_page(app_client, user) -> None:
    client_id, _ = await register(
        app_client,
        type="public",
        grant_types=["authorization_code"],
        scopes=["read"],
        redirect_uris=[CALLBACK],
    )
    params, _ = authorization_request(client_id, scope="read", state="s")
    page = await app_client.get("/authorize", params=params)
    form = {**hidden_fields(page.text), "username": user.username, "password": "correct horse battery staple"}
    pending, limit = passwords.kdf_load()
    assert limit >= 1
    passwords._kdf.pending = limit  # as if this many logins were already hashing or waiting
    try:
        refused = await app_client.post("/authorize/login", data=form)
    finally:
        passwords._kdf.pending = pending
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "Too many people are signing in" in refused.text
    retry = {**hidden_fields(refused.text), "username": user.username, "password": form["password"]}
    assert set(hidden_fields(refused.text)) == {"request", "csrf_token"}  # the user can simply retry
    accepted = await app_client.post("/authorize/login", data=retry)
    assert accepted.status_code == 200 and 'action="/authorize/consent"' in accepted.text


async def test_verify_password_refuses_when_the_queue_is_full() -> None:
    passwords.configure(threads=1, queue_per_thread=0)
    try:
        assert passwords.kdf_load() == (0, 1)
        stored = passwords.hash_password("pw")
        first = asyncio.ensure_future(passwords.verify_password(stored, "pw"))
        await asyncio.sleep(0)  # the first login now holds the only slot
        with pytest.raises(passwords.KdfBusy):
            await passwords.verify_password(stored, "pw")
        assert await first is True
        assert await passwords.verify_password(stored, "pw") is True  # the slot is free again
    finally:
        passwords.configure()
