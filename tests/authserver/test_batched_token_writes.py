"""Rotations and redemptions that wait for their turn share one statement (PostgreSQL) or one transaction
(SQLite), and each one's outcome is exactly what it would have been alone (real databases; the worker's
token-path share of the pool is one connection, so everything but the first write waits and batches)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from authserver.crypto.opaque_tokens import new_opaque_token, token_hash
from authserver.crypto.refresh_token_values import new_family_id
from authserver.protocol.models import (
    AuthorizationCode,
    CodeBinding,
    NewRefreshToken,
    RedemptionOutcome,
    User,
)
from authserver.protocol.pkce import s256
from authserver.storage.sql_store import SqlStore
from authserver.storage.tables import codes, refresh_families
from authserver.web.app import create_app
from tests.conftest import BACKENDS, database_url_for, make_settings
from tests.support.refresh_tokens import insert_refresh_token, presented

CLIENT = "batch-client"
REDIRECT = "http://127.0.0.1:9/cb"


@pytest.fixture(scope="module", params=BACKENDS)
async def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SqlStore]:
    directory = Path(tmp_path_factory.mktemp(f"batched-{request.param}"))
    url = database_url_for(request.param, directory, lambda: request.getfixturevalue("postgres_cluster"))
    app = create_app(make_settings(directory, url, db_pool_max_size=2))
    async with app.router.lifespan_context(app):
        services = app.state.services
        assert services.store.write_batches.slots == 1
        yield services.store


def _batches(write: str) -> tuple[float, float]:
    """(statements, writes) of one kind so far, from the batch-size histogram."""
    labels = {"write": write}
    count = REGISTRY.get_sample_value("authserver_db_write_batch_size_count", labels) or 0.0
    total = REGISTRY.get_sample_value("authserver_db_write_batch_size_sum", labels) or 0.0
    return count, total


async def _refresh_token(store: SqlStore, **overrides: object) -> str:
    user = {"user_id": f"user-{uuid.uuid4().hex[:6]}", "auth_time": 1700000000}
    return await insert_refresh_token(store, overrides.pop("client_id", CLIENT), **{**user, **overrides})  # type: ignore[arg-type]


async def test_concurrent_refresh_token_rotations_share_statements_and_each_gets_its_own_outcome(
    store: SqlStore,
) -> None:
    valid = [await _refresh_token(store) for _ in range(8)]
    expired = await _refresh_token(store, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    revoked = await _refresh_token(store, revoked=True)
    foreign = await _refresh_token(store, client_id="someone-else")
    grants = {}
    async with store.engine.connect() as connection:
        for value in valid:
            family_id, _ = presented(value)
            row = (
                await connection.execute(
                    select(refresh_families).where(refresh_families.c.family_id == family_id)
                )
            ).one()
            grants[value] = (row.family_id, row.user_id)

    # Presented in another order than stored: nothing may depend on the order rows come back in.
    presented_values = [*reversed(valid), expired, revoked, foreign, valid[3]]  # valid[3] replayed at once
    successors = [
        NewRefreshToken(
            presented(value)[0], token_hash(new_opaque_token()), datetime.now(UTC) + timedelta(hours=2)
        )
        for value in presented_values
    ]
    statements_before, writes_before = _batches("refresh_rotation")
    now = datetime.now(UTC)
    outcomes = await asyncio.gather(
        *(
            store.rotate_refresh_token(*presented(value), CLIENT, successor, now)
            for value, successor in zip(presented_values, successors, strict=True)
        )
    )
    statements, writes = _batches("refresh_rotation")
    assert writes - writes_before == len(presented_values)
    assert statements - statements_before < len(presented_values) - 2  # the waiting ones went together

    twice = [outcomes[presented_values.index(valid[3])], outcomes[-1]]
    assert sorted(outcome.outcome for outcome in twice) == sorted(
        [RedemptionOutcome.OK, RedemptionOutcome.REFUSED]
    )
    for value in valid:
        outcome = outcomes[presented_values.index(value)]
        if value == valid[3] and outcome.outcome is RedemptionOutcome.REFUSED:
            outcome = outcomes[-1]
        assert outcome.outcome is RedemptionOutcome.OK and outcome.record is not None
        assert (outcome.record.family_id, outcome.record.user_id) == grants[value]
        assert outcome.record.scope == "read" and outcome.record.auth_time == 1700000000
    for refused, reason in zip(outcomes[8:11], ("expired", "revoked", "foreign"), strict=True):
        assert refused.outcome is RedemptionOutcome.REFUSED, reason
        assert refused.record is not None and not refused.record.rotated, reason  # left untouched

    # Exactly the winners' successors are their families' current tokens; the presented ones are used up.
    current = [
        await store.get_refresh_token(successor.family_id, successor.secret_hash) for successor in successors
    ]
    for outcome, successor, seen in zip(outcomes, successors, current, strict=True):
        assert seen is not None
        assert seen.rotated is (outcome.outcome is not RedemptionOutcome.OK), successor.family_id
    for value in valid:
        used = await store.get_refresh_token(*presented(value))
        assert used is not None and used.rotated


async def _code(store: SqlStore, user_id: str, verifier: str) -> str:
    value = new_opaque_token()
    await store.save_authorization_code(
        token_hash(value),
        AuthorizationCode(
            client_id=CLIENT,
            user_id=user_id,
            redirect_uri=REDIRECT,
            scope="openid read",
            audience="https://api.example.com",
            code_challenge=s256(verifier),
            auth_time=1700000000,
            expires_at=datetime.now(UTC) + timedelta(minutes=1),
            nonce="n-1",
        ),
    )
    return value


async def test_concurrent_redemptions_share_statements_and_each_gets_its_own_outcome(store: SqlStore) -> None:
    user = User(
        user_id=f"u-{uuid.uuid4().hex[:8]}",
        username=f"batch-{uuid.uuid4().hex[:8]}",
        password_hash="not-used",
        email="b@example.org",
        email_verified=True,
        name="Batch User",
    )
    await store.create_user(user)
    verifiers = [new_opaque_token() for _ in range(6)]
    values = [await _code(store, user.user_id, verifier) for verifier in verifiers]

    def attempt(value: str, verifier: str) -> tuple[str, CodeBinding, NewRefreshToken]:
        refresh = NewRefreshToken(
            new_family_id(), token_hash(new_opaque_token()), datetime.now(UTC) + timedelta(hours=1)
        )
        return token_hash(value), CodeBinding(CLIENT, REDIRECT, s256(verifier)), refresh

    attempts = [attempt(value, verifier) for value, verifier in zip(values, verifiers, strict=True)]
    attempts[1] = attempt(values[1], "a-different-verifier")  # a mismatch uses the code up, issues nothing
    attempts.append(attempt(new_opaque_token(), "x"))  # unknown
    attempts.append(attempt(values[4], verifiers[4]))  # values[4] twice at once: one wins, one is a replay
    statements_before, _ = _batches("code_redemption")
    now = datetime.now(UTC)
    outcomes = await asyncio.gather(
        *(
            store.redeem_authorization_code(code_hash, now, binding, refresh)
            for code_hash, binding, refresh in attempts
        )
    )
    statements, _ = _batches("code_redemption")
    assert statements - statements_before < len(attempts) - 2

    for index in (0, 2, 3, 5):
        outcome = outcomes[index]
        assert outcome.outcome is RedemptionOutcome.OK and outcome.record is not None
        assert outcome.record.user is not None and outcome.record.user.email == "b@example.org"
        assert outcome.record.code.nonce == "n-1" and outcome.record.refresh is not None
        assert outcome.record.refresh.family_id == attempts[index][2].family_id
        family = await store.get_refresh_token(attempts[index][2].family_id, attempts[index][2].secret_hash)
        assert family is not None and not family.rotated
    mismatch = outcomes[1]
    assert mismatch.outcome is RedemptionOutcome.OK and mismatch.record is not None
    assert mismatch.record.refresh is None  # the grant refuses it: no family was stored
    assert await store.get_refresh_token(attempts[1][2].family_id, attempts[1][2].secret_hash) is None
    assert outcomes[6].outcome is RedemptionOutcome.UNKNOWN
    pair = sorted([outcomes[4].outcome, outcomes[7].outcome], key=str)
    assert pair == sorted([RedemptionOutcome.OK, RedemptionOutcome.REPLAYED], key=str)

    async with store.engine.connect() as connection:
        consumed = (
            await connection.execute(
                select(codes.c.code_hash).where(
                    codes.c.code_hash.in_([token_hash(value) for value in values]),
                    codes.c.consumed_at.is_not(None),
                )
            )
        ).all()
    assert len(consumed) == len(values)  # every code used up, the mismatched one too


async def test_concurrent_client_assertion_spends_share_statements_and_each_jti_is_spent_once(
    store: SqlStore,
) -> None:
    """RFC 7523 §3 item 7 under load: private_key_jwt authentications waiting for their turn share one write,
    and of two spends of one jti exactly one wins, whether they meet in one batch or in two."""
    now = datetime.now(UTC)
    expires = now + timedelta(minutes=5)
    keys = [uuid.uuid4().hex * 2 for _ in range(10)]
    live = uuid.uuid4().hex * 2  # spent before: a replay in any batch
    stale = uuid.uuid4().hex * 2  # spent before, expired: may be spent again
    assert await store.spend_client_assertion(live, expires, now) is True
    assert await store.spend_client_assertion(stale, now - timedelta(seconds=1), now - timedelta(minutes=1))
    spends = [*keys, *keys[:4], live, stale]  # the first four twice in the same gather
    statements_before, writes_before = _batches("client_assertion")
    outcomes = await asyncio.gather(*(store.spend_client_assertion(key, expires, now) for key in spends))
    statements, writes = _batches("client_assertion")
    assert writes - writes_before == len(spends)
    assert statements - statements_before < len(spends) - 2  # the waiting ones went together
    for key in keys:
        wins = [outcome for spent, outcome in zip(spends, outcomes, strict=True) if spent == key]
        assert wins.count(True) == 1
    assert outcomes[-2] is False and outcomes[-1] is True
    replays = await asyncio.gather(*(store.spend_client_assertion(key, expires, now) for key in keys))
    assert replays == [False] * len(keys)
