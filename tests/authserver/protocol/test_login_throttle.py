"""The sign-in throttle's decisions over the in-memory store: when a key locks, for how long, and what the
flow answers while it is locked (nothing about the user is looked up or verified)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from authserver.protocol.authorization_flow import AuthorizationFlow, LoginProblem, LoginSession
from authserver.protocol.login_throttle import (
    LoginThrottle,
    Throttled,
    ThrottlePolicy,
    account_key,
    address_key,
    locked_for,
)
from authserver.protocol.models import LoginFailures
from tests.support.memory_store import MemoryStore
from tests.support.oauth import PASSWORD
from tests.support.protocol_server import ProtocolServer

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
POLICY = ThrottlePolicy(account_limit=5, address_limit=20, window=timedelta(minutes=15))


def _counted(failures: int, last_failure: datetime = NOW) -> LoginFailures:
    return LoginFailures(failures, last_failure, last_failure + POLICY.window)


def test_a_key_locks_at_its_limit_and_each_further_failure_doubles_the_lockout() -> None:
    assert locked_for(None, 5, POLICY, NOW) == 0
    assert locked_for(_counted(4), 5, POLICY, NOW) == 0
    assert locked_for(_counted(5), 5, POLICY, NOW) == 60
    assert locked_for(_counted(6), 5, POLICY, NOW) == 120
    assert locked_for(_counted(8), 5, POLICY, NOW) == 480
    assert locked_for(_counted(50), 5, POLICY, NOW) == 15 * 60  # never longer than the window
    # Counted from the last failure, and over once that much time has passed.
    assert locked_for(_counted(5), 5, POLICY, NOW + timedelta(seconds=45)) == 15
    assert locked_for(_counted(5), 5, POLICY, NOW + timedelta(seconds=60)) == 0
    # A limit of 0 is no limit; an expired count locks nothing.
    assert locked_for(_counted(99), 0, POLICY, NOW) == 0
    assert locked_for(_counted(50), 5, POLICY, NOW + POLICY.window) == 0


async def test_failures_lock_the_account_and_the_address_independently() -> None:
    store = MemoryStore()
    throttle = LoginThrottle(store, POLICY)
    for _ in range(5):
        assert (await throttle.check("alice", "10.0.0.1", NOW)).throttled is None
        await throttle.failed("alice", "10.0.0.1", NOW)
    assert (await throttle.check("alice", "10.0.0.1", NOW)).throttled == Throttled(60, "account")
    assert (await throttle.check("alice", "10.9.9.9", NOW)).throttled == Throttled(
        60, "account"
    )  # any address
    assert (await throttle.check("bob", "10.0.0.1", NOW)).throttled is None  # the address has 5 of its 20
    for attempt in range(15):
        await throttle.failed(f"user-{attempt}", "10.0.0.1", NOW)
    assert (await throttle.check("bob", "10.0.0.1", NOW)).throttled == Throttled(60, "address")
    assert (await throttle.check("bob", "10.0.0.2", NOW)).throttled is None
    # The store holds no username: an account's key is a hash (a password typed as a username stays out).
    assert all("alice" not in key for key in store.failures)
    assert account_key("alice") in store.failures and address_key("10.0.0.1") in store.failures


async def test_a_disabled_throttle_reads_and_writes_nothing() -> None:
    store = MemoryStore()
    throttle = LoginThrottle(store, replace(POLICY, account_limit=0, address_limit=0))
    for _ in range(50):
        await throttle.failed("alice", "10.0.0.1", NOW)
        assert (await throttle.check("alice", "10.0.0.1", NOW)).throttled is None
    assert store.failures == {}


@pytest.mark.parametrize("known", [True, False])
async def test_a_locked_account_is_refused_without_looking_up_or_verifying_known_or_not(known: bool) -> None:
    server = ProtocolServer()
    user = await server.user()
    username = user.username if known else "nobody-" + user.username
    flow = AuthorizationFlow(server.store, server.codes, LoginThrottle(server.store, POLICY))
    for _ in range(5):
        assert await flow.sign_in(username, "wrong password", "10.0.0.1") is LoginProblem.WRONG_CREDENTIALS
    with (
        mock.patch("authserver.protocol.authorization_flow.verify_password") as verify,
        mock.patch.object(server.store, "get_user_by_username") as lookup,
    ):
        refused = await flow.sign_in(username, PASSWORD, "10.0.0.2")
    assert (
        isinstance(refused, Throttled) and refused.by == "account" and 0 < refused.retry_after_seconds <= 60
    )
    assert not verify.called and not lookup.called
    # Someone else, from elsewhere, signs in as usual.
    other = await server.user()
    assert isinstance(await flow.sign_in(other.username, PASSWORD, "10.0.0.3"), LoginSession)


async def test_disabled_users_and_users_without_a_password_fail_like_a_wrong_password() -> None:
    server = ProtocolServer()
    flow = AuthorizationFlow(server.store, server.codes, LoginThrottle(server.store, POLICY))
    disabled = await server.user()
    server.store.users[disabled.user_id] = replace(disabled, disabled=True)
    no_password = await server.user()
    server.store.users[no_password.user_id] = replace(no_password, password_hash="")
    for user in (disabled, no_password):
        assert await flow.sign_in(user.username, PASSWORD, "10.0.0.1") is LoginProblem.WRONG_CREDENTIALS
        assert server.store.failures[account_key(user.username)].failures == 1  # counted as failures


async def test_a_correct_password_ends_the_accounts_run_of_failures_not_the_addresses() -> None:
    server = ProtocolServer()
    user = await server.user()
    flow = AuthorizationFlow(server.store, server.codes, LoginThrottle(server.store, POLICY))
    for _ in range(4):  # one short of the limit
        assert await flow.sign_in(user.username, "typo", "10.0.0.1") is LoginProblem.WRONG_CREDENTIALS
    assert isinstance(await flow.sign_in(user.username, PASSWORD, "10.0.0.1"), LoginSession)
    assert account_key(user.username) not in server.store.failures  # the run is over: limits are consecutive
    assert server.store.failures[address_key("10.0.0.1")].failures == 4  # the address keeps its count
    for _ in range(4):  # four more typos do not lock the account: 4, not 8, in a row
        assert await flow.sign_in(user.username, "typo", "10.0.0.1") is LoginProblem.WRONG_CREDENTIALS
    assert isinstance(await flow.sign_in(user.username, PASSWORD, "10.0.0.1"), LoginSession)


async def test_a_sign_in_with_no_failures_counted_writes_nothing() -> None:
    server = ProtocolServer()
    user = await server.user()
    flow = AuthorizationFlow(server.store, server.codes, LoginThrottle(server.store, POLICY))
    with mock.patch.object(server.store, "forget_login_failures") as forget:
        assert isinstance(await flow.sign_in(user.username, PASSWORD, "10.0.0.1"), LoginSession)
    assert not forget.called
