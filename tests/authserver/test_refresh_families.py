"""Refresh tokens live in one row per family (one sign-in): a rotation replaces the row's secret hash in
place, any other secret presented for a live family is reuse, tokens issued before families survive the
migration, and the purge walks the families a page at a time (both databases)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import func, insert, select

from authserver.config import Settings
from authserver.crypto.opaque_tokens import new_opaque_token, token_hash
from authserver.crypto.refresh_token_values import new_family_id, new_refresh_token, refresh_token_key
from authserver.storage.engine import create_engine
from authserver.storage.sql_store import SqlStore
from authserver.storage.statements import PURGE_PAGE_ROWS
from authserver.storage.tables import legacy_refresh_tokens, refresh_families
from authserver.web.app import create_app
from tests.conftest import database_url_for, make_settings
from tests.support.app import store_of
from tests.support.migrations import migrate_to
from tests.support.oauth import CALLBACK, refresh, register
from tests.support.refresh_tokens import family_row, insert_refresh_token, presented


async def _public_client(http: httpx.AsyncClient, client_id: str | None = None) -> str:
    client_id, _ = await register(
        http,
        client_id,
        type="public",
        grant_types=["authorization_code", "refresh_token"],
        scopes=["openid", "read"],
        redirect_uris=[CALLBACK],
    )
    return client_id


async def _refresh(http: httpx.AsyncClient, client_id: str, token: str) -> httpx.Response:
    return await refresh(http, token, client_id=client_id)


async def _family_rows(store: SqlStore, family_id: str) -> list[sa.Row]:  # type: ignore[type-arg]
    async with store.engine.connect() as connection:
        return list(
            await connection.execute(
                select(refresh_families).where(refresh_families.c.family_id == family_id)
            )
        )


def test_values_carry_their_family_and_older_values_are_told_apart() -> None:
    family_id = new_family_id()
    value, secret_hash = new_refresh_token(family_id)
    assert refresh_token_key(value).family_id == family_id
    assert refresh_token_key(value).secret_hash == secret_hash == token_hash(value.partition(".")[2])
    assert secret_hash != token_hash(value)  # the family id is not part of what is hashed
    older = new_opaque_token()  # issued before families: no dot
    assert refresh_token_key(older).family_id is None
    assert refresh_token_key(older).secret_hash == token_hash(older)
    for odd in (".secret", f"{family_id}.", "fam!ly.secret", f"{'f' * 65}.secret"):
        assert refresh_token_key(odd).family_id is None, odd  # looked up as an older token: unknown
    later = new_family_id()
    assert len(family_id) == 32 and later[:12] >= family_id[:12]  # time first: appended, not scattered


async def test_a_family_is_one_row_through_its_rotations(app_client: httpx.AsyncClient) -> None:
    client_id = await _public_client(app_client)
    store = store_of(app_client)
    token = await insert_refresh_token(store, client_id)
    family_id = presented(token)[0]
    for _ in range(3):
        response = await _refresh(app_client, client_id, token)
        assert response.status_code == 200, response.text
        successor = response.json()["refresh_token"]
        assert presented(successor)[0] == family_id and successor != token
        token = successor
    rows = await _family_rows(store, family_id)
    assert len(rows) == 1 and rows[0].secret_hash == presented(token)[1] and rows[0].rotated_at is not None


async def test_any_other_secret_for_a_live_family_is_reuse_and_revokes_it(
    app_client: httpx.AsyncClient,
) -> None:
    client_id = await _public_client(app_client)
    store = store_of(app_client)
    token = await insert_refresh_token(store, client_id)
    family_id = presented(token)[0]

    # Another client cannot touch it, whatever it presents.
    other = await _public_client(app_client)
    foreign = await _refresh(app_client, other, f"{family_id}.{secrets.token_urlsafe(32)}")
    assert foreign.status_code == 400 and foreign.json()["error_description"] == "refresh token is invalid"
    unknown = await _refresh(app_client, client_id, f"{new_family_id()}.{secrets.token_urlsafe(32)}")
    assert unknown.json()["error_description"] == "refresh token is invalid"
    assert not (await _family_rows(store, family_id))[0].revoked

    stale = await _refresh(app_client, client_id, f"{family_id}.{secrets.token_urlsafe(32)}")
    assert stale.status_code == 400
    assert stale.json()["error_description"] == "refresh token was already used; its family has been revoked"
    current = await _refresh(app_client, client_id, token)
    assert current.status_code == 400 and current.json()["error_description"] == "refresh token was revoked"


async def test_the_purge_walks_every_page_and_keeps_what_can_still_be_used(
    app_client: httpx.AsyncClient,
) -> None:
    client_id = await _public_client(app_client)
    store = store_of(app_client)
    now = datetime.now(UTC)
    rows = []
    for index in range(PURGE_PAGE_ROWS * 2 + 7):  # three pages
        expired = index % 3 == 0
        revoked = index % 5 == 0
        rows.append(
            family_row(
                client_id,
                expires_at=now - timedelta(minutes=1) if expired else now + timedelta(hours=1),
                revoked=revoked,
            )[1]
        )
    async with store.engine.begin() as connection:
        await connection.execute(insert(refresh_families), rows)
    await store.purge_expired(now)
    async with store.engine.connect() as connection:
        left = set(
            (
                await connection.execute(
                    select(refresh_families.c.family_id).where(refresh_families.c.client_id == client_id)
                )
            ).scalars()
        )
    # Revoked but unexpired families stay: a replay of their tokens must still be told it was revoked.
    assert left == {row["family_id"] for row in rows if row["expires_at"] > now}


# Tokens issued before families --------------------------------------------------------------------------

_LEGACY = sa.Table(  # refresh_tokens as migration 0001 created it
    "refresh_tokens",
    sa.MetaData(),
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("family_id", sa.String(64)),
    sa.Column("client_id", sa.String(255)),
    sa.Column("user_id", sa.String(64)),
    sa.Column("scope", sa.String),
    sa.Column("audience", sa.String),
    sa.Column("auth_time", sa.Integer),
    sa.Column("issued_at", sa.DateTime(timezone=True)),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
    sa.Column("rotated_at", sa.DateTime(timezone=True)),
    sa.Column("revoked", sa.Boolean),
)
LEGACY_CLIENT = "legacy-web"


def _legacy_row(value: str, family_id: str, issued_at: datetime, **overrides: object) -> dict[str, object]:
    return {
        "token_hash": token_hash(value),
        "family_id": family_id,
        "client_id": LEGACY_CLIENT,
        "user_id": "u-legacy",
        "scope": "openid read",
        "audience": "https://api.example.com",
        "auth_time": 1700000000,
        "issued_at": issued_at,
        "expires_at": issued_at + timedelta(hours=1),
        "rotated_at": None,
        "revoked": False,
        **overrides,
    }


def _fresh_settings(backend: str, directory: Path, request: pytest.FixtureRequest) -> Settings:
    url = database_url_for(backend, directory, lambda: request.getfixturevalue("postgres_cluster"))
    return make_settings(directory, url)


@pytest.fixture
async def migrated_from_0001(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """A database at revision 0001 holding refresh tokens in today's states, then a server (which migrates
    it on start): the server and the tokens' values by state."""
    settings = _fresh_settings(backend, tmp_path, request)
    engine = create_engine(settings)
    now = datetime.now(UTC) - timedelta(minutes=5)
    values = {name: new_opaque_token() for name in ("rotated", "current", "revoked", "expired")}
    try:
        await migrate_to(engine, "0001")
        async with engine.begin() as connection:
            await connection.execute(
                insert(_LEGACY),
                [
                    _legacy_row(values["rotated"], "fam-a", now, rotated_at=now + timedelta(minutes=1)),
                    _legacy_row(values["current"], "fam-a", now + timedelta(minutes=1)),
                    _legacy_row(values["revoked"], "fam-b", now, revoked=True),
                    _legacy_row(values["expired"], "fam-c", now - timedelta(hours=2)),
                ],
            )
    finally:
        await engine.dispose()

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            http.app = app  # type: ignore[attr-defined]
            await _public_client(http, LEGACY_CLIENT)
            yield http, values


async def test_tokens_issued_before_families_rotate_once_after_the_migration(
    migrated_from_0001: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, values = migrated_from_0001
    store = store_of(http)
    (family,) = await _family_rows(store, "fam-a")
    assert family.secret_hash == token_hash(values["current"]) and family.user_id == "u-legacy"
    assert family.rotated_at is not None and family.issued_at < family.rotated_at  # began with the first

    rotated = await _refresh(http, LEGACY_CLIENT, values["current"])
    assert rotated.status_code == 200, rotated.text
    successor = rotated.json()["refresh_token"]
    assert presented(successor)[0] == "fam-a" and rotated.json()["scope"] == "openid read"

    expectations = {
        "revoked": "refresh token was revoked",
        "expired": "refresh token has expired",
        "current": "refresh token was already used; its family has been revoked",  # now used up
    }
    for name, message in expectations.items():
        response = await _refresh(http, LEGACY_CLIENT, values[name])
        assert response.status_code == 400 and response.json()["error_description"] == message, name
    # The reuse revoked the whole family, the successor too.
    after = await _refresh(http, LEGACY_CLIENT, successor)
    assert after.json()["error_description"] == "refresh token was revoked"

    await store.purge_expired(datetime.now(UTC) + timedelta(minutes=30))
    async with store.engine.connect() as connection:
        legacy_left = (
            await connection.execute(select(func.count()).select_from(legacy_refresh_tokens))
        ).scalar()
    assert legacy_left == 3  # the expired one's hash is gone; fam-c's family too
    assert await _family_rows(store, "fam-c") == []


async def test_an_already_rotated_older_token_is_reuse_after_the_migration(
    migrated_from_0001: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, values = migrated_from_0001
    replay = await _refresh(http, LEGACY_CLIENT, values["rotated"])
    assert replay.status_code == 400
    assert replay.json()["error_description"] == "refresh token was already used; its family has been revoked"
    current = await _refresh(http, LEGACY_CLIENT, values["current"])
    assert current.json()["error_description"] == "refresh token was revoked"


async def test_a_downgrade_keeps_each_familys_current_token_by_its_hash(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Downgrading to 0001 turns each family into its current token's row: a token issued before the
    upgrade (its whole value hashed) keeps working on the older release."""
    engine = create_engine(_fresh_settings(backend, tmp_path, request))
    older = new_opaque_token()
    try:
        await migrate_to(engine, "0001")
        async with engine.begin() as connection:
            await connection.execute(insert(_LEGACY), [_legacy_row(older, "fam-old", datetime.now(UTC))])
        await migrate_to(engine, "head")
        await migrate_to(engine, "0001", downgrade=True)
        async with engine.connect() as connection:
            rows = (await connection.execute(select(_LEGACY))).all()
    finally:
        await engine.dispose()
    assert len(rows) == 1
    row = rows[0]
    assert (row.token_hash, row.family_id, row.client_id) == (token_hash(older), "fam-old", LEGACY_CLIENT)
    assert row.rotated_at is None and not row.revoked
