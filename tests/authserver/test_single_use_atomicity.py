"""Code redemption and refresh rotation are one transaction each: single use under races, replay and reuse
revoke the family, and a refused request consumes nothing it should not (both databases)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from authserver.crypto.opaque_tokens import new_opaque_token, token_hash
from authserver.protocol.models import CodeBinding, NewRefreshToken, RedemptionOutcome
from authserver.storage.tables import codes
from tests.support.app import store_of
from tests.support.oauth import CALLBACK, authorize_code, pkce_pair, redeem_code, refresh, register
from tests.support.refresh_tokens import insert_refresh_token, presented


async def _refresh(http: httpx.AsyncClient, client_id: str, token: str, **extra: str) -> httpx.Response:
    return await refresh(http, token, client_id=client_id, **extra)


async def _code_family(http: httpx.AsyncClient, code: str) -> str | None:
    async with store_of(http).engine.connect() as connection:
        row = (await connection.execute(select(codes).where(codes.c.code_hash == token_hash(code)))).first()
    assert row is not None and row.consumed_at is not None
    return row.family_id  # type: ignore[no-any-return]


async def test_concurrent_redemptions_one_wins_and_the_replay_revokes_its_family(
    app_client, web_client, user
) -> None:
    code, verifier = await authorize_code(app_client, web_client, CALLBACK, user.username)
    first, second = await asyncio.gather(
        redeem_code(app_client, code, verifier, client_id=web_client),
        redeem_code(app_client, code, verifier, client_id=web_client),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 400]
    winner = first if first.status_code == 200 else second
    loser = second if winner is first else first
    assert loser.json()["error"] == "invalid_grant"
    # The family was stored in the winner's transaction, so the replay found and revoked it.
    refreshed = await _refresh(app_client, web_client, winner.json()["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


async def test_a_failed_redemption_uses_the_code_up_and_issues_no_refresh_token(
    app_client, web_client, user
) -> None:
    code, verifier = await authorize_code(app_client, web_client, CALLBACK, user.username)
    wrong, _ = pkce_pair()
    assert (await redeem_code(app_client, code, wrong, client_id=web_client)).status_code == 400
    assert await _code_family(app_client, code) is None  # no refresh family was created
    again = await redeem_code(app_client, code, verifier, client_id=web_client)
    assert (
        again.status_code == 400
        and again.json()["error_description"] == "authorization code was already used"
    )


async def test_concurrent_rotations_of_one_token_one_wins_and_the_family_dies(
    app_client, web_client, user
) -> None:
    code, verifier = await authorize_code(app_client, web_client, CALLBACK, user.username)
    token = (await redeem_code(app_client, code, verifier, client_id=web_client)).json()["refresh_token"]
    first, second = await asyncio.gather(
        _refresh(app_client, web_client, token), _refresh(app_client, web_client, token)
    )
    assert sorted([first.status_code, second.status_code]) == [200, 400]
    winner = first if first.status_code == 200 else second
    # Losing the race is reuse: the winner's successor died with the family.
    latest = await _refresh(app_client, web_client, winner.json()["refresh_token"])
    assert latest.status_code == 400 and latest.json()["error"] == "invalid_grant"


async def test_refused_requests_do_not_consume_the_refresh_token(app_client, web_client, user) -> None:
    other, _ = await register(
        app_client,
        type="public",
        grant_types=["authorization_code", "refresh_token"],
        scopes=["read"],
        redirect_uris=[CALLBACK],
    )
    code, verifier = await authorize_code(
        app_client, web_client, CALLBACK, user.username, scope="openid read"
    )
    token = (await redeem_code(app_client, code, verifier, client_id=web_client)).json()["refresh_token"]
    widened = await _refresh(app_client, web_client, token, scope="openid profile")
    assert widened.status_code == 400 and widened.json()["error"] == "invalid_scope"
    stolen = await _refresh(app_client, other, token)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    narrowed = await _refresh(app_client, web_client, token, scope="read")
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["scope"] == "read"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"expires_at": datetime.now(UTC) - timedelta(seconds=1)}, "refresh token has expired"),
        ({"revoked": True}, "refresh token was revoked"),
    ],
)
async def test_expired_or_revoked_refresh_tokens_are_refused_untouched(
    app_client, web_client, overrides, message
) -> None:
    store = store_of(app_client)
    value = await insert_refresh_token(store, web_client, **overrides)
    response = await _refresh(app_client, web_client, value)
    assert response.status_code == 400 and response.json()["error_description"] == message
    current = await store.get_refresh_token(*presented(value))
    assert current is not None and not current.rotated


async def test_store_refresh_token_rotation_copies_the_grant_and_refuses_a_second_use(
    app_client, web_client
) -> None:
    store = store_of(app_client)
    value = await insert_refresh_token(store, web_client, user_id="u-1", auth_time=1234)
    family_id, secret_hash = presented(value)
    successor = NewRefreshToken(
        family_id, token_hash(new_opaque_token()), datetime.now(UTC) + timedelta(hours=2)
    )
    now = datetime.now(UTC)
    rotated = await store.rotate_refresh_token(family_id, secret_hash, web_client, successor, now)
    assert rotated.outcome is RedemptionOutcome.OK and rotated.record is not None
    assert (rotated.record.user_id, rotated.record.scope, rotated.record.auth_time) == ("u-1", "read", 1234)
    assert rotated.record.family_id == family_id
    stored = await store.get_refresh_token(family_id, successor.secret_hash)
    assert stored is not None and not stored.rotated

    again = await store.rotate_refresh_token(family_id, secret_hash, web_client, successor, now)
    assert again.outcome is RedemptionOutcome.REFUSED
    assert again.record is not None and again.record.rotated
    unknown = await store.rotate_refresh_token("no-such-family", secret_hash, web_client, successor, now)
    assert unknown.outcome is RedemptionOutcome.REFUSED and unknown.record is None


async def test_store_redemption_reports_unknown_and_replayed_codes(app_client) -> None:
    store = store_of(app_client)
    binding = CodeBinding("nobody", CALLBACK, None)
    unknown = await store.redeem_authorization_code("0" * 64, datetime.now(UTC), binding, None)
    assert unknown.outcome is RedemptionOutcome.UNKNOWN
