"""User passwords: argon2id with OWASP's minimum parameters, hashed off the event loop.

The KDF is the one CPU-heavy thing a worker does. It runs on a small thread pool sized for the machine
(the CPUs this process may use, divided among the workers), at a lower scheduling priority than the event
loop, so the token path keeps its latency while logins run; and when more logins wait than the pool can
finish soon, new ones are refused at once (``KdfBusy``: the page says retry shortly) instead of queueing
into timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified against when the username is unknown, so a miss costs as much as a hit (no user enumeration).
_DUMMY_HASH = _hasher.hash("authyard-timing-equaliser")
# KDF threads run at this nice value (lower priority): the event loop wins the CPU when both want it.
KDF_NICENESS = 10
KDF_RETRY_AFTER_SECONDS = 1


class KdfBusy(Exception):
    """Too many logins are already waiting for the KDF in this worker."""


def available_cpus() -> float:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota (containers)."""
    cpus = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    with contextlib.suppress(OSError, ValueError):
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, int(quota) / int(period))
    return max(cpus, 1.0)


def default_threads(workers: int, cpus: float | None = None) -> int:
    """KDF threads per worker: the CPUs shared among the workers, at least one."""
    return max(1, int((available_cpus() if cpus is None else cpus) // max(workers, 1)))


def _lower_priority() -> None:
    # On Linux a thread's nice value is its own: this leaves the event loop thread at its priority.
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), KDF_NICENESS)


class _Kdf:
    def __init__(self) -> None:
        self.threads = 0
        self.max_pending = 0
        self.pending = 0
        self._executor: ThreadPoolExecutor | None = None

    def configure(self, threads: int, queue_per_thread: int) -> None:
        """``threads`` 0 = automatic (CPUs ÷ workers, the worker count from AUTHSERVER_WORKERS)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        workers = int(os.environ.get("AUTHSERVER_WORKERS", "1") or 1)
        self.threads = threads or default_threads(workers)
        self.max_pending = self.threads * (1 + queue_per_thread)

    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            if not self.threads:
                self.configure(0, 16)
            self._executor = ThreadPoolExecutor(
                max_workers=self.threads, thread_name_prefix="argon2", initializer=_lower_priority
            )
        return self._executor


_kdf = _Kdf()


def configure(threads: int = 0, queue_per_thread: int = 16) -> None:
    _kdf.configure(threads, queue_per_thread)


def kdf_load() -> tuple[int, int]:
    """(logins waiting for or in the KDF, the most this worker accepts)."""
    return _kdf.pending, _kdf.max_pending


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def hash_password_async(password: str) -> str:
    """``hash_password`` on the KDF threads: an admin call setting a password never stalls the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_kdf.executor(), hash_password, password)


def _verify(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def check_capacity() -> None:
    """Raise KdfBusy now if a login would have to wait too long for the KDF (before any other work)."""
    _kdf.executor()
    if _kdf.pending >= _kdf.max_pending:
        raise KdfBusy


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; KdfBusy when this worker already has too many logins waiting."""
    executor = _kdf.executor()
    if _kdf.pending >= _kdf.max_pending:
        raise KdfBusy
    _kdf.pending += 1
    try:
        return await asyncio.get_running_loop().run_in_executor(executor, _verify, stored_hash, password)
    finally:
        _kdf.pending -= 1
