"""Throttling failed sign-ins per account and per client address (RFC 6749 §10.10, NIST SP 800-63B §5.2.2).

Counts live in the database (``Store.login_failures``), so every worker and replica enforces one limit:
one primary-key read per sign-in attempt, one upsert per failure, next to an argon2 verification that
costs about a thousand times more. A key's count starts over once ``window`` passes without a failure.
Once a key reaches its limit, attempts are refused without checking the password for ``lockout``,
doubling with each failure counted beyond the limit, up to ``window``. An attacker who keeps trying
therefore gets at most ``limit`` guesses plus about log2(window / lockout) per window and key.

An account's key is a hash of the username as typed, whether or not such a user exists: an unknown
username is throttled exactly like a known one (no enumeration), and a password typed into the username
field is never stored.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from authserver.protocol.models import LoginFailures
from authserver.protocol.store import Store


@dataclass(frozen=True)
class ThrottlePolicy:
    account_limit: int = 5  # failures per account within the window; 0: no per-account limit
    address_limit: int = 20  # failures per client address within the window; 0: no per-address limit
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=1)  # the first lockout; each further failure doubles it

    @property
    def enabled(self) -> bool:
        return self.account_limit > 0 or self.address_limit > 0


@dataclass(frozen=True)
class Throttled:
    """Refused without checking the password; ``by`` says which limit ("account" or "address")."""

    retry_after_seconds: int
    by: str


@dataclass(frozen=True)
class Checked:
    throttled: Throttled | None  # None: the password may be checked
    account_failures: bool  # the account has failures counted: a correct password clears them


def account_key(username: str) -> str:
    return "u:" + hashlib.sha256(username.encode()).hexdigest()


def address_key(address: str) -> str:
    return "a:" + address[:64]


def locked_for(counted: LoginFailures | None, limit: int, policy: ThrottlePolicy, now: datetime) -> float:
    """Seconds the key stays locked at ``now`` (0: not locked)."""
    if counted is None or limit <= 0 or counted.failures < limit or counted.expires_at <= now:
        return 0.0
    doublings = min(counted.failures - limit, 32)  # beyond that the window caps it anyway
    lockout = min(policy.lockout * (1 << doublings), policy.window)
    return max(0.0, (counted.last_failure_at + lockout - now).total_seconds())


class LoginThrottle:
    def __init__(self, store: Store, policy: ThrottlePolicy) -> None:
        self.store = store
        self.policy = policy

    def _keys(self, username: str, address: str | None) -> dict[str, tuple[str, int]]:
        keys = {}
        if self.policy.account_limit > 0:
            keys[account_key(username)] = ("account", self.policy.account_limit)
        if self.policy.address_limit > 0 and address:
            keys[address_key(address)] = ("address", self.policy.address_limit)
        return keys

    async def check(self, username: str, address: str | None, now: datetime) -> Checked:
        """Whether this attempt is refused, before anything about the user is looked up."""
        if not self.policy.enabled:
            return Checked(None, account_failures=False)
        keys = self._keys(username, address)
        counted = await self.store.login_failures(keys)
        worst: Throttled | None = None
        for key, (by, limit) in keys.items():
            seconds = locked_for(counted.get(key), limit, self.policy, now)
            if seconds > 0 and (worst is None or seconds > worst.retry_after_seconds):
                worst = Throttled(max(1, math.ceil(seconds)), by)
        account = counted.get(account_key(username))
        return Checked(worst, account_failures=account is not None and account.expires_at > now)

    async def succeeded(self, username: str, checked: Checked) -> None:
        """A correct password ends the account's run of failures (NIST SP 800-63B §5.2.2 limits consecutive
        failures): only when some were counted, so a sign-in writes nothing otherwise. The address's count
        stays: one's own account must not reset a guessing run against others from the same address."""
        if checked.account_failures:
            await self.store.forget_login_failures([account_key(username)])

    async def failed(self, username: str, address: str | None, now: datetime) -> None:
        """Count a failed sign-in against the account and the address."""
        if self.policy.enabled:
            await self.store.record_login_failure(self._keys(username, address), now, self.policy.window)
