"""Server-side sign-in sessions over HTTP, on both databases: a sign-in makes one, its ID tokens carry its
``sid``, and ending it (an administrator, expiry, idle timeout, the user's
disabling) signs the browser out and revokes that session's refresh and access tokens, and only those."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from authserver.config import Settings
from authserver.protocol.session_end import EndedSession, EndReason
from authserver.storage.tables import session_clients, sessions
from tests.conftest import settings_for
from tests.support.app import own_browser, store_of
from tests.support.oauth import PASSWORD, admin_headers, hidden_fields, query_of, redeem_code
from tests.support.oauth import refresh as refresh_request
from tests.support.signin import (
    REDIRECT,
    Browser,
    Recorder,
    claims,
    recording,
    signed_up,
    skip_consent_client,
)

IDLE = timedelta(minutes=30)


@pytest.fixture(scope="module")
def settings(backend: str, request: pytest.FixtureRequest) -> Settings:
    return settings_for(backend, request, session_idle_timeout=IDLE)


@pytest.fixture
def recorder(app_client: httpx.AsyncClient) -> Iterator[Recorder]:
    with recording(app_client) as heard:
        yield heard


@pytest.fixture
async def browsers(app_client: httpx.AsyncClient) -> AsyncIterator[tuple[Browser, Browser]]:
    """Two browsers of one user."""
    user = await signed_up(app_client)
    async with own_browser(app_client, "10.1.3.1") as first, own_browser(app_client, "10.1.3.2") as second:
        yield Browser(app_client, first, user), Browser(app_client, second, user)


async def _sessions(app_client: httpx.AsyncClient, username: str) -> list[dict[str, Any]]:
    listed = await app_client.get(f"/admin/users/{username}/sessions", headers=admin_headers())
    assert listed.status_code == 200, listed.text
    return list(listed.json()["sessions"])


async def _still_works(app_client: httpx.AsyncClient, client_id: str, tokens: dict[str, Any]) -> bool:
    """Whether the access token is accepted at userinfo and the refresh token refreshes (its successor
    replaces it in ``tokens``)."""
    userinfo = await app_client.get(
        "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    refreshed = await refresh_request(app_client, tokens["refresh_token"], client_id=client_id)
    assert (userinfo.status_code == 200) == (refreshed.status_code == 200), (userinfo.text, refreshed.text)
    if refreshed.status_code == 200:
        tokens.update(refreshed.json())
    else:
        assert refreshed.json()["error"] == "invalid_grant"
    return refreshed.status_code == 200


async def test_a_sign_in_makes_a_session_whose_sid_its_id_tokens_carry(
    app_client: httpx.AsyncClient, browsers: tuple[Browser, Browser]
) -> None:
    browser, _ = browsers
    first_client, second_client = await skip_consent_client(app_client), await skip_consent_client(app_client)
    tokens = await browser.tokens(first_client)
    sid = claims(app_client, tokens["id_token"])["sid"]
    again = await browser.tokens(second_client)  # no password: the same session
    assert claims(app_client, again["id_token"])["sid"] == sid

    # A refresh issues no ID token (OIDC Core §12.2 allows either): the sign-in's keeps standing, its sid
    # with it, and the refreshed grant stays the session's (ending it revokes the family).
    refreshed = await refresh_request(app_client, tokens["refresh_token"], client_id=first_client)
    assert refreshed.status_code == 200 and "id_token" not in refreshed.json(), refreshed.text

    [listed] = await _sessions(app_client, browser.user.username)
    assert listed["session_id"] == sid and listed["clients"] == [first_client, second_client]
    assert len(sid) >= 43  # 256 bits, URL-safe base64

    # The refreshed grant is still the session's: ending the session refuses the rotated refresh token.
    ended = await app_client.delete(f"/admin/sessions/{sid}", headers=admin_headers())
    assert ended.status_code == 204
    successor = await refresh_request(app_client, refreshed.json()["refresh_token"], client_id=first_client)
    assert successor.status_code == 400 and successor.json()["error"] == "invalid_grant"


async def test_revoking_one_session_ends_only_its_tokens_and_its_browser(
    app_client: httpx.AsyncClient, browsers: tuple[Browser, Browser], recorder: Recorder
) -> None:
    first, second = browsers
    client_id = await skip_consent_client(app_client)
    ending, staying = await first.tokens(client_id), await second.tokens(client_id)
    sid = claims(app_client, ending["id_token"])["sid"]
    assert sid != claims(app_client, staying["id_token"])["sid"]

    revoked = await app_client.delete(f"/admin/sessions/{sid}", headers=admin_headers())
    assert revoked.status_code == 204, revoked.text
    assert recorder.heard == [EndedSession(sid, first.user.user_id, (client_id,), EndReason.REVOKED)]
    assert not await _still_works(app_client, client_id, ending)
    assert await _still_works(app_client, client_id, staying)
    assert not await first.signed_in(client_id) and await second.signed_in(client_id)
    assert [s["session_id"] for s in await _sessions(app_client, first.user.username)] != [sid]

    again = await app_client.delete(f"/admin/sessions/{sid}", headers=admin_headers())
    assert again.status_code == 404 and again.json()["error"] == "not_found"
    assert len(recorder.heard) == 1


async def test_revoking_all_of_a_users_sessions_and_disabling_a_user(
    app_client: httpx.AsyncClient, browsers: tuple[Browser, Browser], recorder: Recorder
) -> None:
    first, second = browsers
    client_id = await skip_consent_client(app_client)
    one, other = await first.tokens(client_id), await second.tokens(client_id)
    username = first.user.username
    revoked = await app_client.delete(f"/admin/users/{username}/sessions", headers=admin_headers())
    assert revoked.status_code == 204
    assert {e.session_id for e in recorder.heard} == {
        claims(app_client, one["id_token"])["sid"],
        claims(app_client, other["id_token"])["sid"],
    }
    assert not await _still_works(app_client, client_id, one)
    assert not await _still_works(app_client, client_id, other)
    assert await _sessions(app_client, username) == []
    missing = await app_client.delete("/admin/users/nobody-here/sessions", headers=admin_headers())
    assert missing.status_code == 404

    # Disabling the user ends the session they signed in with since.
    recorder.heard.clear()
    await first.tokens(client_id)
    disabled = await app_client.post(f"/admin/users/{username}/disable", headers=admin_headers())
    assert disabled.status_code == 200
    assert [e.reason for e in recorder.heard] == [EndReason.REVOKED]
    assert not await first.signed_in(client_id)


async def _age(app_client: httpx.AsyncClient, sid: str, **values: datetime) -> None:
    """Move a session's clock: what time passing would have done."""
    async with store_of(app_client).engine.begin() as connection:
        await connection.execute(update(sessions).where(sessions.c.session_id == sid).values(**values))


async def test_an_expired_session_signs_the_browser_out_and_the_sweep_revokes_its_tokens(
    app_client: httpx.AsyncClient, browsers: tuple[Browser, Browser], recorder: Recorder
) -> None:
    expiring, other = browsers
    first, second = await skip_consent_client(app_client), await skip_consent_client(app_client)
    tokens = await expiring.tokens(first)
    await expiring.tokens(second)
    staying = await other.tokens(first)
    sid = claims(app_client, tokens["id_token"])["sid"]
    await _age(app_client, sid, expires_at=datetime.now(UTC) - timedelta(seconds=1))

    assert not await expiring.signed_in(first)  # at once, before any sweep
    swept = await app_client.app.state.services.sessions.sweep()  # type: ignore[attr-defined]
    await app_client.app.state.services.sync_revocations()  # type: ignore[attr-defined]
    assert [e.session_id for e in swept] == [sid]
    assert recorder.heard == [EndedSession(sid, expiring.user.user_id, (first, second), EndReason.EXPIRED)]
    assert not await _still_works(app_client, first, tokens)
    assert await _still_works(app_client, first, staying) and await other.signed_in(first)


async def test_an_idle_session_ends_and_an_active_one_does_not(
    app_client: httpx.AsyncClient, browsers: tuple[Browser, Browser], recorder: Recorder
) -> None:
    idle, active = browsers
    client_id = await skip_consent_client(app_client)
    idle_tokens, active_tokens = await idle.tokens(client_id), await active.tokens(client_id)
    idle_sid = claims(app_client, idle_tokens["id_token"])["sid"]
    active_sid = claims(app_client, active_tokens["id_token"])["sid"]
    long_ago = datetime.now(UTC) - IDLE - timedelta(seconds=1)
    await _age(app_client, idle_sid, last_seen_at=long_ago)
    # Active just under the timeout ago: its visit now moves last_seen_at on.
    await _age(app_client, active_sid, last_seen_at=long_ago + timedelta(seconds=30))
    assert await active.signed_in(client_id)
    assert not await idle.signed_in(client_id)
    touched = await store_of(app_client).get_session(active_sid)
    assert touched is not None and touched.last_seen_at > datetime.now(UTC) - timedelta(minutes=1)

    swept = await app_client.app.state.services.sessions.sweep()  # type: ignore[attr-defined]
    assert [e.session_id for e in swept] == [idle_sid] and recorder.heard[0].reason is EndReason.EXPIRED
    await app_client.app.state.services.sync_revocations()  # type: ignore[attr-defined]
    assert not await _still_works(app_client, client_id, idle_tokens)
    assert await _still_works(app_client, client_id, active_tokens)


async def test_the_purge_deletes_only_sessions_that_ended_and_whose_lifetime_is_over(
    app_client: httpx.AsyncClient, browsers: tuple[Browser, Browser]
) -> None:
    """An ended session whose lifetime is over goes, with its clients; an expired one the sweep has not ended
    yet stays (the sweep announces its end first)."""
    ended_and_over, unended_but_over = browsers
    client_id = await skip_consent_client(app_client)
    first = claims(app_client, (await ended_and_over.tokens(client_id))["id_token"])["sid"]
    second = claims(app_client, (await unended_but_over.tokens(client_id))["id_token"])["sid"]
    store = store_of(app_client)
    ended = await store.end_session(first, EndReason.REVOKED, datetime.now(UTC), timedelta(minutes=15))
    assert ended is not None
    past = datetime.now(UTC) - timedelta(seconds=1)
    await _age(app_client, first, expires_at=past)
    await _age(app_client, second, expires_at=past)
    await store.purge_expired(datetime.now(UTC))
    assert await store.get_session(first) is None
    async with store.engine.connect() as connection:
        clients_left = select(session_clients).where(session_clients.c.session_id == first)
        assert (await connection.execute(clients_left)).all() == []
    kept = await store.get_session(second)
    assert kept is not None and kept.client_ids == (client_id,)


async def test_signing_in_again_keeps_the_session_and_another_user_ends_it(
    app_client: httpx.AsyncClient, browsers: tuple[Browser, Browser], recorder: Recorder
) -> None:
    """prompt=login for the same user keeps the browser's session (the sid relying parties hold stays
    valid); someone else signing in on that browser ends it and gets a session of their own."""
    browser, _ = browsers
    client_id = await skip_consent_client(app_client)
    sid = claims(app_client, (await browser.tokens(client_id))["id_token"])["sid"]
    page, verifier = await browser.authorize(client_id, prompt="login")
    fields = {**hidden_fields(page.text), "username": browser.user.username, "password": PASSWORD}
    again = await browser.browser.post("/authorize/login", data=fields)
    code = query_of(again.headers["location"])["code"]
    tokens = await redeem_code(app_client, code, verifier, REDIRECT, client_id=client_id)
    assert claims(app_client, tokens.json()["id_token"])["sid"] == sid
    assert recorder.heard == []

    someone_else = Browser(app_client, browser.browser, await signed_up(app_client))
    page, verifier = await someone_else.authorize(client_id, prompt="login")
    fields = {**hidden_fields(page.text), "username": someone_else.user.username, "password": PASSWORD}
    switched = await browser.browser.post("/authorize/login", data=fields)
    code = query_of(switched.headers["location"])["code"]
    tokens = await redeem_code(app_client, code, verifier, REDIRECT, client_id=client_id)
    assert claims(app_client, tokens.json()["id_token"])["sid"] != sid
    assert [(e.session_id, e.reason) for e in recorder.heard] == [(sid, EndReason.SIGNED_OUT)]
    assert await _sessions(app_client, browser.user.username) == []
