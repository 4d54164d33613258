"""The migrations build exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from authserver.config import Settings
from authserver.migrations.runner import migrate
from authserver.storage.engine import create_engine
from tests.support.migrations import MigratingDatabase


async def test_migrated_schema_matches_the_models(settings: Settings) -> None:
    await migrate(settings)  # idempotent: the app fixture may have migrated already
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), SQLModel.metadata)
            )
    finally:
        await engine.dispose()
    assert differences == []


def _fresh(settings: Settings, request: pytest.FixtureRequest, name: str) -> Settings:
    """``settings`` on an empty database of its own, on the same backend."""
    if settings.is_sqlite:
        url = settings.database_url.replace(".db", f"-{name}.db")
    else:
        url = request.getfixturevalue("postgres_cluster").create_database(name)
    return settings.model_copy(update={"database_url": url})


async def test_concurrent_migrations_are_serialised(
    settings: Settings, request: pytest.FixtureRequest
) -> None:
    """Init containers of several pods may run `authserver migrate` at once, on an empty database."""
    fresh = _fresh(settings, request, "concurrent_migrations")
    await asyncio.gather(*(migrate(fresh) for _ in range(4)))
    engine = create_engine(fresh)
    try:
        async with engine.connect() as connection:
            version = (
                await connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            ).scalar_one()
    finally:
        await engine.dispose()
    assert version == "0018"


def test_ssl_override_replaces_the_urls_ssl_mode() -> None:
    from authserver.storage.engine import database_url

    url = database_url(
        Settings(
            database_url="postgresql+asyncpg://u:p@db.example:5432/auth?ssl=require&sslmode=verify-full",
            database_host_override="auth-pgbouncer",
            database_port_override=6432,
            database_ssl_override="disable",
        )
    )
    assert (url.host, url.port, dict(url.query)) == ("auth-pgbouncer", 6432, {"ssl": "disable"})
    assert url.password == "p" and url.database == "auth"


@pytest.fixture
async def db(settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[MigratingDatabase]:
    """An empty database of this test's own (named for it) on the module's backend, disposed after."""
    name = request.node.originalname.removeprefix("test_")[:48]
    engine = create_engine(_fresh(settings, request, name))
    try:
        yield MigratingDatabase(engine)
    finally:
        await engine.dispose()


async def test_the_consents_migration_upgrades_and_downgrades(db: MigratingDatabase) -> None:
    """0003 adds the remembered-consent table; its downgrade removes it and 0002's schema is whole again."""
    assert "consents" in await db.to("0003")
    await db.execute(
        "INSERT INTO consents (user_id, client_id, scope, granted_at)"
        " VALUES ('u-1', 'c-1', 'openid', CURRENT_TIMESTAMP)"
    )
    tables = set(await db.to("0002", downgrade=True))
    assert "consents" not in tables and {"clients", "refresh_families"} <= tables
    assert "consents" in await db.to("0003")  # and up again, empty
    async with db.engine.connect() as connection:
        assert (await connection.exec_driver_sql("SELECT count(*) FROM consents")).scalar_one() == 0


async def test_the_skip_consent_migration_upgrades_and_downgrades(db: MigratingDatabase) -> None:
    """0008 adds clients.skip_consent, false for a client registered before it; its downgrade drops it."""
    assert "skip_consent" not in (await db.to("0006"))["clients"]
    await db.add_old_client()
    assert "skip_consent" in (await db.to("0008"))["clients"]
    async with db.engine.connect() as connection:
        trusted = await connection.exec_driver_sql("SELECT skip_consent FROM clients WHERE client_id = 'old'")
        assert trusted.scalar_one() in (False, 0)
    assert "skip_consent" not in (await db.to("0006", downgrade=True))["clients"]


async def test_the_backchannel_logout_migration_upgrades_and_downgrades(db: MigratingDatabase) -> None:
    """0011 adds the clients' back-channel logout URI (NULL: none) and session flag (false) to the clients
    registered before it; its downgrade drops both and keeps the clients."""
    columns = {"backchannel_logout_uri", "backchannel_logout_session_required"}
    assert not columns & (await db.to("0010"))["clients"]
    await db.add_old_client()
    assert columns <= (await db.to("0011"))["clients"]
    async with db.engine.begin() as connection:
        old = await connection.exec_driver_sql(
            "SELECT backchannel_logout_uri, backchannel_logout_session_required FROM clients"
            " WHERE client_id = 'old'"
        )
        uri, required = old.one()
        assert uri is None and required in (False, 0)
        await connection.exec_driver_sql(
            "UPDATE clients SET backchannel_logout_uri = 'https://rp.example.com/bc' WHERE client_id = 'old'"
        )
    assert not columns & (await db.to("0010", downgrade=True))["clients"]
    async with db.engine.connect() as connection:
        kept = await connection.exec_driver_sql("SELECT client_id FROM clients")
        assert kept.scalars().all() == ["old"]


async def test_the_private_key_jwt_migration_upgrades_and_downgrades(db: MigratingDatabase) -> None:
    """0012 adds the clients' jwks, jwks_uri and assertion algorithm (NULL for the clients registered before
    it, which keep their secrets) and the spent-assertion table; its downgrade drops them and keeps the
    clients."""
    columns = {"jwks", "jwks_uri", "token_endpoint_auth_signing_alg"}
    before = await db.to("0011")
    assert not columns & before["clients"] and "used_client_assertions" not in before
    await db.add_old_client()
    after = await db.to("0012")
    assert columns <= after["clients"] and after["used_client_assertions"] == {"key", "expires_at"}
    async with db.engine.begin() as connection:
        old = await connection.exec_driver_sql(
            "SELECT jwks, jwks_uri, token_endpoint_auth_signing_alg, secret_hash FROM clients"
            " WHERE client_id = 'old'"
        )
        assert old.one() == (None, None, None, "hash")
        await connection.exec_driver_sql(
            "INSERT INTO used_client_assertions (key, expires_at) VALUES ('k', CURRENT_TIMESTAMP)"
        )
        await connection.exec_driver_sql(
            "UPDATE clients SET jwks_uri = 'https://svc.example.com/jwks' WHERE client_id = 'old'"
        )
    downgraded = await db.to("0011", downgrade=True)
    assert not columns & downgraded["clients"] and "used_client_assertions" not in downgraded
    async with db.engine.connect() as connection:
        kept = await connection.exec_driver_sql("SELECT client_id FROM clients")
        assert kept.scalars().all() == ["old"]


async def test_the_token_exchange_migration_upgrades_and_downgrades(db: MigratingDatabase) -> None:
    """0013 adds the clients' token-exchange policy (NULL for the clients registered before it: the
    defaults), which holds a JSON object; its downgrade drops it and keeps the clients."""
    assert "token_exchange" not in (await db.to("0012"))["clients"]
    await db.add_old_client()
    assert "token_exchange" in (await db.to("0013"))["clients"]
    policy = {
        "audiences": ["https://b.example.com"],
        "subject_audiences": [],
        "allow_impersonation": True,
    }
    async with db.engine.begin() as connection:
        old = await connection.exec_driver_sql("SELECT token_exchange FROM clients WHERE client_id = 'old'")
        assert old.scalar_one() is None
        await connection.execute(
            sa.text("UPDATE clients SET token_exchange = :policy WHERE client_id = 'old'").bindparams(
                sa.bindparam("policy", type_=sa.JSON())
            ),
            {"policy": policy},
        )
        stored = await connection.execute(
            sa.select(sa.column("token_exchange", sa.JSON())).select_from(sa.table("clients"))
        )
        assert stored.scalar_one() == policy
    assert "token_exchange" not in (await db.to("0012", downgrade=True))["clients"]
    async with db.engine.connect() as connection:
        kept = await connection.exec_driver_sql("SELECT client_id, secret_hash FROM clients")
        assert kept.all() == [("old", "hash")]


async def test_the_workload_identity_migration_upgrades_and_downgrades(db: MigratingDatabase) -> None:
    """0016 adds the clients' workload (NULL for the clients before it), unique per (issuer, subject) so
    one workload is one client while any number of other clients have none; its downgrade drops them and
    keeps the clients."""

    def insert(client_id: str, issuer: str | None = None, subject: str | None = None) -> sa.TextClause:
        workload = {"issuer": issuer, "subject": subject}
        return sa.text(
            "INSERT INTO clients (client_id, name, client_type, grant_types, scopes, audiences,"
            " redirect_uris, created_at, updated_at, workload_issuer, workload_subject)"
            " VALUES (:id, 'n', 'confidential',"
            " '[]', '[]', '[]', '[]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, :issuer, :subject)"
        ).bindparams(id=client_id, **workload)

    columns = {"workload_issuer", "workload_subject"}
    assert not columns & (await db.to("0015"))["clients"]
    await db.add_old_client()
    assert columns <= (await db.to("0016"))["clients"]
    async with db.engine.begin() as connection:
        await connection.execute(insert("another"))  # two clients without a workload
        await connection.execute(insert("sa", "kubernetes", "system:serviceaccount:a:b"))
        await connection.execute(insert("sa2", "kubernetes", "system:serviceaccount:a:c"))
        old = await connection.exec_driver_sql(
            "SELECT workload_issuer, workload_subject FROM clients WHERE client_id = 'old'"
        )
        assert old.one() == (None, None)
    with pytest.raises(sa.exc.IntegrityError):
        async with db.engine.begin() as connection:
            await connection.execute(insert("sa3", "kubernetes", "system:serviceaccount:a:b"))
    assert not columns & (await db.to("0015", downgrade=True))["clients"]
    async with db.engine.connect() as connection:
        kept = await connection.exec_driver_sql("SELECT client_id FROM clients ORDER BY client_id")
        assert kept.scalars().all() == ["another", "old", "sa", "sa2"]


async def test_the_standard_claims_migration_keeps_users_codes_and_families(db: MigratingDatabase) -> None:
    """0007 adds the users' standard-claim columns (a user from before reads as updated when created) and the
    claims request of codes and families; its downgrade drops them and keeps the rows."""
    from authserver.storage.backends import store_for

    before = await db.to("0006")
    assert "given_name" not in before["users"] and "claims" not in before["authorization_codes"]
    await db.execute(
        "INSERT INTO users (user_id, username, password_hash, email, email_verified, name, created_at)"
        " VALUES ('u-1', 'jane', 'x', 'jane@example.com', true, 'Jane Doe', '2026-01-02 03:04:05+00')"
    )
    await db.execute(
        "INSERT INTO refresh_families (family_id, secret_hash, client_id, user_id, scope, audience,"
        " auth_time, issued_at, expires_at, revoked) VALUES ('f-1', 'h', 'c-1', 'u-1', 'openid',"
        " 'api', 1, '2026-01-02 03:04:05+00', '2099-01-01 00:00:00+00', false)"
    )
    after = await db.to("0007")
    assert {"given_name", "address", "phone_number_verified", "updated_at"} <= after["users"]
    assert "claims" in after["authorization_codes"] and "claims" in after["refresh_families"]
    await db.to("head")  # the store reads the later migrations' columns too
    user = await store_for(db.engine).get_user("u-1")
    assert user is not None and user.name == "Jane Doe" and user.given_name is None
    assert user.updated_at is not None and int(user.updated_at.timestamp()) == 1767323045  # created_at
    await db.execute("UPDATE users SET given_name = 'Jane', locale = 'fr-FR' WHERE user_id = 'u-1'")
    await db.execute("UPDATE refresh_families SET claims = '{}' WHERE family_id = 'f-1'")

    assert await db.to("0006", downgrade=True) == before
    async with db.engine.connect() as connection:
        names = (await connection.exec_driver_sql("SELECT username, name FROM users")).all()
        families = (await connection.exec_driver_sql("SELECT count(*) FROM refresh_families")).scalar()
    assert [tuple(row) for row in names] == [("jane", "Jane Doe")] and families == 1


async def test_the_user_accounts_migration_upgrades_and_downgrades(db: MigratingDatabase) -> None:
    """0009 adds users.disabled (existing users enabled) and the login throttle's counters; its downgrade
    removes both and the users keep everything else."""
    await db.to("0006")
    await db.execute(
        "INSERT INTO users (user_id, username, password_hash, email_verified, created_at)"
        " VALUES ('u-1', 'old', 'h', false, CURRENT_TIMESTAMP)"
    )
    after = await db.to("0009")
    assert "login_failures" in after and "disabled" in after["users"]
    async with db.engine.begin() as connection:
        assert (
            await connection.exec_driver_sql("SELECT disabled FROM users WHERE user_id = 'u-1'")
        ).scalar_one() in (False, 0)
        await connection.exec_driver_sql("UPDATE users SET disabled = true")
        await connection.exec_driver_sql(
            "INSERT INTO login_failures (key, failures, last_failure_at, expires_at)"
            " VALUES ('a:1', 3, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        )
    down = await db.to("0006", downgrade=True)
    assert "login_failures" not in down and "disabled" not in down["users"] and "username" in down["users"]
    async with db.engine.connect() as connection:
        assert (await connection.exec_driver_sql("SELECT username FROM users")).scalar_one() == "old"


async def test_the_sessions_migration_upgrades_and_downgrades_keeping_the_rows(db: MigratingDatabase) -> None:
    """0010 adds the sessions and session_clients tables, the session of codes and families, and the clients'
    post-logout redirect URIs (none for a client registered before); its downgrade drops them, rows kept."""
    before = await db.to("0009")
    assert "sessions" not in before and "session_id" not in before["refresh_families"]
    await db.add_old_client()
    await db.execute(
        "INSERT INTO refresh_families (family_id, secret_hash, client_id, user_id, scope, audience,"
        " auth_time, issued_at, expires_at, revoked) VALUES ('f-1', 'h', 'old', 'u-1', 'openid',"
        " 'api', 1, '2026-01-02 03:04:05+00', '2099-01-01 00:00:00+00', false)"
    )
    after = await db.to("0010")
    assert {"sessions", "session_clients"} <= set(after)
    assert "session_id" in after["refresh_families"] and "session_id" in after["authorization_codes"]
    async with db.engine.connect() as connection:
        uris = (
            await connection.exec_driver_sql(
                "SELECT post_logout_redirect_uris FROM clients WHERE client_id = 'old'"
            )
        ).scalar_one()
    assert uris in (None, "[]", [])  # read as no post-logout redirect URI (rows.client_from_row)
    await db.execute(
        "INSERT INTO sessions (session_id, user_id, auth_time, created_at, last_seen_at, expires_at)"
        " VALUES ('s-1', 'u-1', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
    await db.execute("UPDATE refresh_families SET session_id = 's-1' WHERE family_id = 'f-1'")

    assert await db.to("0009", downgrade=True) == before
    async with db.engine.connect() as connection:
        kept = await connection.exec_driver_sql("SELECT count(*) FROM refresh_families")
        assert kept.scalar_one() == 1
    assert "sessions" in await db.to("0010")  # and up again


async def test_the_upstream_sign_in_migration_upgrades_and_downgrades(db: MigratingDatabase) -> None:
    """0014 adds users.groups (NULL: no groups, for the users created before it) and the federated_identities
    links; its downgrade drops both and keeps the users."""
    from authserver.storage.rows import user_from_row
    from authserver.storage.statements import USER_COLUMNS

    before = await db.to("0013")
    assert "groups" not in before["users"] and "federated_identities" not in before
    await db.execute(
        "INSERT INTO users (user_id, username, password_hash, email_verified, created_at, disabled)"
        " VALUES ('u-1', 'old', 'hash', false, CURRENT_TIMESTAMP, false)"
    )
    after = await db.to("0014")
    assert "groups" in after["users"]
    assert after["federated_identities"] == {
        "provider",
        "subject",
        "user_id",
        "created_at",
        "last_sign_in_at",
    }
    async with db.engine.begin() as connection:
        old = (await connection.execute(sa.select(*USER_COLUMNS))).one()
        assert user_from_row(old).groups == ()  # read as no groups, not an error
        await connection.exec_driver_sql(
            "INSERT INTO federated_identities (provider, subject, user_id, created_at, last_sign_in_at)"
            " VALUES ('corp', 'sub-1', 'u-1', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
        )
    downgraded = await db.to("0013", downgrade=True)
    assert "groups" not in downgraded["users"] and "federated_identities" not in downgraded
    async with db.engine.connect() as connection:
        kept = await connection.exec_driver_sql("SELECT username FROM users")
        assert kept.scalars().all() == ["old"]


async def test_the_client_usage_migration_upgrades_and_downgrades(db: MigratingDatabase) -> None:
    """0015 adds the hourly usage and last-use tables, empty; its downgrade drops them and nothing else."""
    before = await db.to("0014")
    assert "client_usage" not in before and "client_last_use" not in before
    after = await db.to("0015")
    assert after["client_usage"] == {"client_id", "hour", "tokens", "errors"}
    assert after["client_last_use"] == {"client_id", "last_token_at", "last_error", "last_error_at"}
    await db.execute(
        "INSERT INTO client_usage (client_id, hour, tokens, errors) VALUES ('c', CURRENT_TIMESTAMP, 1, 0)"
    )
    await db.execute("INSERT INTO client_last_use (client_id, last_token_at) VALUES ('c', CURRENT_TIMESTAMP)")
    assert await db.to("0014", downgrade=True) == before


async def test_the_cluster_rate_limits_migration_upgrades_and_downgrades(db: MigratingDatabase) -> None:
    """0017 adds the worker census and the clients' own rate limits (NULL for the clients registered before
    it: the server's default); its downgrade drops them and keeps the clients."""
    columns = {"rate_limit_per_second", "rate_limit_burst"}
    before = await db.to("0016")
    assert not columns & before["clients"] and "worker_heartbeats" not in before
    await db.add_old_client()
    after = await db.to("0017")
    assert columns <= after["clients"] and after["worker_heartbeats"] == {"worker_id", "last_seen"}
    async with db.engine.begin() as connection:
        old = await connection.exec_driver_sql(
            "SELECT rate_limit_per_second, rate_limit_burst, secret_hash FROM clients WHERE client_id = 'old'"
        )
        assert old.one() == (None, None, "hash")
        await connection.exec_driver_sql(
            "INSERT INTO worker_heartbeats (worker_id, last_seen) VALUES ('w', CURRENT_TIMESTAMP)"
        )
        await connection.exec_driver_sql(
            "UPDATE clients SET rate_limit_per_second = 2.5, rate_limit_burst = 5 WHERE client_id = 'old'"
        )
    assert await db.to("0016", downgrade=True) == before
    async with db.engine.connect() as connection:
        kept = await connection.exec_driver_sql("SELECT client_id FROM clients")
        assert kept.scalars().all() == ["old"]


async def test_the_client_changes_migration_upgrades_and_downgrades(db: MigratingDatabase) -> None:
    """0018 adds the client changes the client caches follow; its downgrade drops them and keeps the clients
    (the caches then fall back to their TTL alone)."""
    before = await db.to("0017")
    assert "client_changes" not in before
    await db.add_old_client()
    after = await db.to("0018")
    assert after["client_changes"] == {"client_id", "changed_at"}
    await db.execute("INSERT INTO client_changes (client_id, changed_at) VALUES ('old', CURRENT_TIMESTAMP)")
    assert await db.to("0017", downgrade=True) == before
    async with db.engine.connect() as connection:
        kept = await connection.exec_driver_sql("SELECT client_id FROM clients")
        assert kept.scalars().all() == ["old"]
