"""The storage ports' contract, run against the in-memory store and the SQL stores on both databases.

The protocol's unit tests (``tests/authserver/protocol``) run on ``MemoryStore``; these checks are what
make it a stand-in for the real thing: every outcome the protocol branches on, the same on all three.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from authserver.crypto.opaque_tokens import new_opaque_token, token_hash
from authserver.crypto.refresh_token_values import grant_id_of_family, new_family_id
from authserver.protocol.client_registration import register_client
from authserver.protocol.models import (
    AuthorizationCode,
    Client,
    ClientType,
    CodeBinding,
    GrantType,
    LoginFailures,
    NewRefreshToken,
    RedemptionOutcome,
    RegisteredClient,
    SignInSession,
    TokenEndpointAuthMethod,
    TokenExchangePolicy,
    UsageCount,
    User,
)
from authserver.protocol.session_end import EndedSession, EndReason
from authserver.protocol.sessions import new_session_id
from authserver.protocol.store import ClientRegistry, Store, UserDirectory, WorkloadTaken
from tests.conftest import BACKENDS
from tests.support.claims import with_standard_claims
from tests.support.memory_store import MemoryStore

CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
REDIRECT = "https://app.example.com/callback"


@pytest.fixture(scope="module", params=["memory", *BACKENDS])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def ports(backend: str, request: pytest.FixtureRequest) -> tuple[Store, ClientRegistry]:
    if backend == "memory":
        memory = MemoryStore()
        return memory, memory
    app_client: httpx.AsyncClient = request.getfixturevalue("app_client")
    services = app_client.app.state.services  # type: ignore[attr-defined]  # set by the app's lifespan
    return services.store, services.registry


@pytest.fixture
def store(ports: tuple[Store, ClientRegistry]) -> Store:
    return ports[0]


@pytest.fixture
def registry(ports: tuple[Store, ClientRegistry]) -> ClientRegistry:
    return ports[1]


def _client_id() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


async def _user(store: Store) -> User:
    user = User(user_id=str(uuid.uuid4()), username=f"u-{uuid.uuid4().hex[:8]}", password_hash="x", name="U")
    await store.create_user(user)  # type: ignore[attr-defined]  # every store has it; the protocol needs none
    stored = await store.get_user_by_username(user.username)
    assert stored is not None and stored.updated_at is not None  # a new user's change time is its creation
    return stored


async def _code(
    store: Store,
    client_id: str,
    user_id: str,
    *,
    expires_in: float = 60,
    session_id: str | None = None,
    scope: str = "openid read",
) -> str:
    code_hash = token_hash(new_opaque_token())
    await store.save_authorization_code(
        code_hash,
        AuthorizationCode(
            client_id=client_id,
            user_id=user_id,
            redirect_uri=REDIRECT,
            scope=scope,
            audience="https://api.example.com",
            code_challenge=CHALLENGE,
            auth_time=1_700_000_000,
            expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
            nonce="n-1",
            session_id=session_id,
        ),
    )
    return code_hash


def _refresh(expires_in: float = 3600) -> NewRefreshToken:
    return NewRefreshToken(
        new_family_id(), token_hash(new_opaque_token()), datetime.now(UTC) + timedelta(seconds=expires_in)
    )


async def test_a_code_redeems_once_and_its_replay_names_the_family_it_issued(store: Store) -> None:
    client_id, user = _client_id(), await _user(store)
    code_hash, refresh = await _code(store, client_id, user.user_id), _refresh()
    binding = CodeBinding(client_id, REDIRECT, CHALLENGE)

    first = await store.redeem_authorization_code(code_hash, datetime.now(UTC), binding, refresh)
    assert first.outcome is RedemptionOutcome.OK and first.record is not None
    assert first.record.code.user_id == user.user_id and first.record.code.nonce == "n-1"
    assert first.record.user is not None
    assert first.record.user == replace(user, updated_at=first.record.user.updated_at)
    issued = first.record.refresh
    assert issued is not None and issued.family_id == refresh.family_id
    assert (issued.client_id, issued.user_id, issued.scope) == (client_id, user.user_id, "openid read")
    assert issued.auth_time == 1_700_000_000

    replay = await store.redeem_authorization_code(code_hash, datetime.now(UTC), binding, _refresh())
    assert replay.outcome is RedemptionOutcome.REPLAYED
    assert replay.extra["family_id"] == refresh.family_id
    assert replay.extra["client_id"] == client_id  # whose access-token TTL bounds the revocation
    stored = await store.get_refresh_token(refresh.family_id, refresh.secret_hash)
    assert stored is not None and not stored.rotated and not stored.revoked


async def test_a_users_standard_claims_and_a_claims_request_round_trip(store: Store) -> None:
    """OIDC Core §5.1 claims come back from every user lookup, the code's redemption included; a code's claims
    request comes back with it and with its refresh family, and each rotation returns it."""
    before = datetime.now(UTC) - timedelta(seconds=1)
    user = with_standard_claims(
        User(user_id=str(uuid.uuid4()), username=f"u-{uuid.uuid4().hex[:8]}", password_hash="x")
    )
    await store.create_user(user)  # type: ignore[attr-defined]  # every store has it; the protocol needs none
    found = await store.get_user(user.user_id)
    assert found is not None and found.updated_at is not None
    assert before <= found.updated_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert found == replace(user, updated_at=found.updated_at)
    assert await store.get_user_by_username(user.username) == found

    client_id, claims = _client_id(), '{"userinfo":{"given_name":{"essential":true}}}'
    code_hash, refresh = token_hash(new_opaque_token()), _refresh()
    await store.save_authorization_code(
        code_hash,
        AuthorizationCode(
            client_id=client_id,
            user_id=user.user_id,
            redirect_uri=REDIRECT,
            scope="openid",
            audience="https://api.example.com",
            code_challenge=CHALLENGE,
            auth_time=1_700_000_000,
            expires_at=datetime.now(UTC) + timedelta(seconds=60),
            claims=claims,
        ),
    )
    redeemed = await store.redeem_authorization_code(
        code_hash, datetime.now(UTC), CodeBinding(client_id, REDIRECT, CHALLENGE), refresh
    )
    assert redeemed.record is not None and redeemed.record.refresh is not None
    assert redeemed.record.user == found
    assert redeemed.record.code.claims == claims and redeemed.record.refresh.claims == claims
    rotated = await store.rotate_refresh_token(
        refresh.family_id, refresh.secret_hash, client_id, _refresh(), datetime.now(UTC)
    )
    assert rotated.record is not None and rotated.record.claims == claims

    # A user and a code without any of it: nothing comes back but what they have.
    plain = await _user(store)
    stored = await store.get_user(plain.user_id)
    assert stored is not None and stored.address is None and stored.phone_number is None
    assert stored.given_name is None and stored.phone_number_verified is False


async def test_a_mismatched_redemption_uses_the_code_up_and_issues_nothing(store: Store) -> None:
    client_id, user = _client_id(), await _user(store)
    for binding in (
        CodeBinding("someone-else", REDIRECT, CHALLENGE),
        CodeBinding(client_id, "https://app.example.com/other", CHALLENGE),
        CodeBinding(client_id, None, CHALLENGE),
        CodeBinding(client_id, REDIRECT, None),
    ):
        code_hash, refresh = await _code(store, client_id, user.user_id), _refresh()
        first = await store.redeem_authorization_code(code_hash, datetime.now(UTC), binding, refresh)
        assert first.outcome is RedemptionOutcome.OK and first.record is not None, binding
        assert first.record.refresh is None, binding
        assert await store.get_refresh_token(refresh.family_id, refresh.secret_hash) is None
        good = CodeBinding(client_id, REDIRECT, CHALLENGE)
        again = await store.redeem_authorization_code(code_hash, datetime.now(UTC), good, _refresh())
        assert again.outcome is RedemptionOutcome.REPLAYED and again.extra["family_id"] == "", binding


async def test_expired_unknown_and_refresh_less_redemptions(store: Store) -> None:
    client_id, user = _client_id(), await _user(store)
    binding = CodeBinding(client_id, REDIRECT, CHALLENGE)
    expired = await _code(store, client_id, user.user_id, expires_in=-1)
    result = await store.redeem_authorization_code(expired, datetime.now(UTC), binding, _refresh())
    assert result.outcome is RedemptionOutcome.EXPIRED
    again = await store.redeem_authorization_code(expired, datetime.now(UTC), binding, _refresh())
    assert again.outcome is RedemptionOutcome.REPLAYED and again.extra["family_id"] == ""

    unknown = await store.redeem_authorization_code(
        token_hash("never-issued"), datetime.now(UTC), binding, _refresh()
    )
    assert unknown.outcome is RedemptionOutcome.UNKNOWN

    plain = await _code(store, client_id, user.user_id)
    without = await store.redeem_authorization_code(plain, datetime.now(UTC), binding, None)
    assert without.outcome is RedemptionOutcome.OK and without.record is not None
    assert without.record.refresh is None
    assert (await store.redeem_authorization_code(plain, datetime.now(UTC), binding, None)).extra == {
        "family_id": "",
        "client_id": client_id,
    }


async def test_a_redeemed_code_of_a_deleted_user_has_no_user(store: Store) -> None:
    client_id = _client_id()
    code_hash = await _code(store, client_id, "no-such-user")
    result = await store.redeem_authorization_code(
        code_hash, datetime.now(UTC), CodeBinding(client_id, REDIRECT, CHALLENGE), None
    )
    assert result.outcome is RedemptionOutcome.OK and result.record is not None
    assert result.record.user is None


async def _family(store: Store) -> tuple[str, NewRefreshToken]:
    client_id, user = _client_id(), await _user(store)
    code_hash, refresh = await _code(store, client_id, user.user_id), _refresh()
    await store.redeem_authorization_code(
        code_hash, datetime.now(UTC), CodeBinding(client_id, REDIRECT, CHALLENGE), refresh
    )
    return client_id, refresh


async def test_a_refresh_token_rotates_once(store: Store) -> None:
    client_id, first = await _family(store)
    family_id = first.family_id
    second = _refresh(7200)
    rotated = await store.rotate_refresh_token(
        family_id, first.secret_hash, client_id, second, datetime.now(UTC)
    )
    assert rotated.outcome is RedemptionOutcome.OK and rotated.record is not None
    assert rotated.record.expires_at == second.expires_at and rotated.record.scope == "openid read"

    # The same secret again (a replay, or the loser of a race): refused, and seen as used.
    again = await store.rotate_refresh_token(
        family_id, first.secret_hash, client_id, _refresh(), datetime.now(UTC)
    )
    assert again.outcome is RedemptionOutcome.REFUSED and again.record is not None
    assert again.record.rotated and not again.record.revoked
    current = await store.get_refresh_token(family_id, second.secret_hash)
    assert current is not None and not current.rotated and current.expires_at == second.expires_at

    refused = await store.rotate_refresh_token(
        family_id, second.secret_hash, "another", _refresh(), datetime.now(UTC)
    )
    assert refused.outcome is RedemptionOutcome.REFUSED and refused.record is not None
    assert refused.record.client_id == client_id  # the caller tells "not yours" from the record

    late = datetime.now(UTC) + timedelta(hours=3)
    expired = await store.rotate_refresh_token(family_id, second.secret_hash, client_id, _refresh(), late)
    assert expired.outcome is RedemptionOutcome.REFUSED and expired.record is not None
    assert not expired.record.rotated and expired.record.expires_at <= late

    unknown = await store.rotate_refresh_token(
        new_family_id(), "0" * 64, client_id, _refresh(), datetime.now(UTC)
    )
    assert unknown.outcome is RedemptionOutcome.REFUSED and unknown.record is None


async def test_a_revoked_family_refuses_its_current_token(store: Store) -> None:
    client_id, first = await _family(store)
    await store.revoke_grant(first.family_id, _grant_id(), datetime.now(UTC) + timedelta(minutes=5))
    seen = await store.get_refresh_token(first.family_id, first.secret_hash)
    assert seen is not None and seen.revoked and not seen.rotated
    refused = await store.rotate_refresh_token(
        first.family_id, first.secret_hash, client_id, _refresh(), datetime.now(UTC)
    )
    assert refused.outcome is RedemptionOutcome.REFUSED and refused.record is not None
    assert refused.record.revoked
    # An unknown family, or none: only the grant's access tokens are recorded; no error.
    await store.revoke_grant(new_family_id(), _grant_id(), datetime.now(UTC) + timedelta(minutes=5))
    await store.revoke_grant(None, _grant_id(), datetime.now(UTC) + timedelta(minutes=5))


def _grant_id() -> str:
    return uuid.uuid4().hex


async def test_grant_revocations_are_listed_until_their_access_tokens_expire(store: Store) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    live, gone = _grant_id(), _grant_id()
    expiry = (datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=0)
    await store.revoke_grant(None, live, expiry)
    await store.revoke_grant(None, gone, datetime.now(UTC) - timedelta(seconds=1))
    revoked = await store.revoked_since(before)
    assert (live, expiry) in revoked.grants and all(grant != gone for grant, _ in revoked.grants)
    assert all(jti != live for jti, _ in revoked.access_tokens)  # a grant is not a jti
    assert before < revoked.newest <= datetime.now(UTC)
    assert all(grant != live for grant, _ in (await store.revoked_since(revoked.newest)).grants)

    # Revoked again with a later expiry (a longer TTL since): extended, and listed again for the sync;
    # with an earlier one: unchanged.
    await store.revoke_grant(None, live, expiry + timedelta(minutes=5))
    await store.revoke_grant(None, live, expiry - timedelta(minutes=1))
    again = await store.revoked_since(revoked.newest)
    extended = expiry + timedelta(minutes=5)
    assert [(grant, at) for grant, at in again.grants if grant == live] == [(live, extended)]


async def test_unknown_legacy_tokens_have_no_family(store: Store) -> None:
    assert await store.legacy_refresh_family(token_hash("never-issued")) is None


async def test_access_token_revocations_are_listed_once_and_until_they_expire(store: Store) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    live, gone = f"jti-{uuid.uuid4().hex}", f"jti-{uuid.uuid4().hex}"
    expiry = (datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=0)
    await store.revoke_access_token(live, expiry)
    await store.revoke_access_token(live, expiry + timedelta(minutes=5))  # again: no change, no error
    await store.revoke_access_token(gone, datetime.now(UTC) - timedelta(seconds=1))
    revoked = await store.revoked_since(before)
    entries, newest = revoked.access_tokens, revoked.newest
    assert (live, expiry) in entries and all(jti != gone for jti, _ in entries)
    assert before < newest <= datetime.now(UTC)
    later = (await store.revoked_since(newest)).access_tokens
    assert all(jti != live for jti, _ in later)


def _desired(client_id: str, **fields: Any) -> Client:
    client = Client(client_id, "Orders", ClientType.CONFIDENTIAL, ("client_credentials",), ("read", "write"))
    return replace(client, audiences=("https://api.example.com",), **fields)


async def test_the_registry_stores_what_a_change_decides_and_nothing_else(
    store: Store, registry: ClientRegistry
) -> None:
    client_id = _client_id()
    created = await register_client(registry, _desired(client_id), "s" * 43, None)
    assert created.created
    stored = await registry.get_registered_client(client_id)
    assert stored == created.registered
    assert await store.get_client(client_id) == created.registered.client

    seen: list[RegisteredClient | None] = []

    def unchanged(current: RegisteredClient | None) -> RegisteredClient | None:
        seen.append(current)
        return current

    assert await registry.change_registered_client(client_id, unchanged) == stored
    assert seen == [stored]
    assert await registry.change_registered_client(_client_id(), lambda current: None) is None

    updated = await register_client(registry, _desired(client_id, scopes=("read",)), None, None)
    assert updated.changed and (await registry.get_registered_client(client_id)) == updated.registered
    assert await store.get_client(client_id) == updated.registered.client


async def test_every_client_change_is_listed_for_the_workers_syncs(
    store: Store, registry: ClientRegistry
) -> None:
    """Creating, changing and deleting a client are each listed by revoked_since (the workers' client caches
    drop those clients); a change that writes nothing, and deleting an unknown client, are not."""
    client_id = _client_id()

    async def changed_after(since: datetime) -> tuple[bool, datetime]:
        synced = await store.revoked_since(since)
        return client_id in synced.changed_clients, synced.newest

    start = datetime.now(UTC) - timedelta(seconds=1)
    await register_client(registry, _desired(client_id), None, None)
    listed, newest = await changed_after(start)
    assert listed and start < newest <= datetime.now(UTC)
    assert not (await changed_after(newest))[0]
    await registry.change_registered_client(client_id, lambda current: current)  # writes nothing
    assert not (await changed_after(newest))[0]
    await register_client(registry, _desired(client_id, scopes=("read",)), None, None)
    listed, newest = await changed_after(newest)
    assert listed
    assert await registry.delete_registered_client(client_id, timedelta(minutes=15))
    listed, newest = await changed_after(newest)
    assert listed
    assert not await registry.delete_registered_client(client_id, timedelta(minutes=15))
    assert not (await changed_after(newest))[0]


async def test_the_registry_keeps_a_clients_backchannel_logout_registration(
    store: Store, registry: ClientRegistry
) -> None:
    """Back-Channel Logout 1.0 §2.2's URI (with its query) and session flag are read back as registered,
    changed, and removed."""
    client_id = _client_id()
    uri = "https://rp.example.com/logout/backchannel?tenant=a&x=1"
    desired = _desired(client_id, backchannel_logout_uri=uri, backchannel_logout_session_required=True)
    await register_client(registry, desired, None, None)
    stored = await store.get_client(client_id)
    assert stored is not None
    assert (stored.backchannel_logout_uri, stored.backchannel_logout_session_required) == (uri, True)
    await register_client(registry, replace(desired, backchannel_logout_session_required=False), None, None)
    stored = await store.get_client(client_id)
    assert stored is not None and stored.backchannel_logout_session_required is False
    await register_client(registry, _desired(client_id), None, None)
    registered = await registry.get_registered_client(client_id)
    assert registered is not None and registered.client.backchannel_logout_uri is None


async def test_the_registry_lists_in_pages_and_deletes_with_the_clients_families(
    store: Store, registry: ClientRegistry
) -> None:
    prefix = f"p-{uuid.uuid4().hex[:6]}"
    for suffix in ("a", "b", "c"):
        await register_client(registry, _desired(f"{prefix}-{suffix}"), None, None)
    ids = [c.client.client_id for c in await registry.list_registered_clients(f"{prefix}-", 1000)]
    mine = [client_id for client_id in ids if client_id.startswith(prefix)]
    assert mine == [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]
    page = await registry.list_registered_clients(f"{prefix}-a", 1)
    assert [c.client.client_id for c in page] == [f"{prefix}-b"]

    client_id, family = await _family(store)
    await register_client(registry, _desired(client_id), None, None)
    before = datetime.now(UTC) - timedelta(seconds=1)
    assert await registry.delete_registered_client(client_id, timedelta(minutes=15))
    assert await store.get_client(client_id) is None
    seen = await store.get_refresh_token(family.family_id, family.secret_hash)
    assert seen is not None and seen.revoked
    # The family's access tokens too, until the last one it may have issued (just now) has expired.
    grants = dict((await store.revoked_since(before)).grants)
    expiry = grants[grant_id_of_family(family.family_id)]
    assert datetime.now(UTC) + timedelta(minutes=14) < expiry < datetime.now(UTC) + timedelta(minutes=16)
    assert not await registry.delete_registered_client(client_id, timedelta(minutes=15))


async def test_consent_is_remembered_per_user_client_and_scope(store: Store) -> None:
    alice, bob, client_id, other = str(uuid.uuid4()), str(uuid.uuid4()), _client_id(), _client_id()
    assert await store.granted_scopes(alice, client_id) == frozenset()
    first = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    await store.grant_consent(alice, client_id, ["openid", "read"], first)
    later = first + timedelta(minutes=1)
    await store.grant_consent(alice, client_id, ["read", "email"], later)  # one already granted: no error
    await store.grant_consent(alice, other, ["openid"], later)
    await store.grant_consent(alice, other, [], later)  # nothing to remember
    assert await store.granted_scopes(alice, client_id) == {"openid", "read", "email"}
    assert await store.granted_scopes(bob, client_id) == frozenset()  # per user

    listed = {consent.client_id: consent for consent in await store.list_consents(alice)}
    assert set(listed) == {client_id, other}
    assert sorted(listed[client_id].scopes) == ["email", "openid", "read"]
    assert listed[client_id].granted_at == later  # the latest grant
    assert listed[other].scopes == ("openid",)
    assert await store.list_consents(bob) == []

    assert await store.revoke_consents(alice, client_id)
    assert await store.granted_scopes(alice, client_id) == frozenset()
    assert await store.granted_scopes(alice, other) == {"openid"}  # only that client's
    assert not await store.revoke_consents(alice, client_id)
    await store.grant_consent(alice, client_id, ["read"], later)
    assert await store.revoke_consents(alice, None)
    assert await store.list_consents(alice) == []
    assert not await store.revoke_consents(alice, None)


async def test_deleting_a_client_forgets_the_consents_given_to_it(
    store: Store, registry: ClientRegistry
) -> None:
    client_id, user_id = _client_id(), str(uuid.uuid4())
    await register_client(registry, _desired(client_id), None, None)
    await store.grant_consent(user_id, client_id, ["read"], datetime.now(UTC))
    await store.grant_consent(user_id, "kept-client", ["read"], datetime.now(UTC))
    assert await registry.delete_registered_client(client_id, timedelta(minutes=15))
    assert await store.granted_scopes(user_id, client_id) == frozenset()
    assert [consent.client_id for consent in await store.list_consents(user_id)] == ["kept-client"]


def _directory(store: Store) -> UserDirectory:
    return store  # type: ignore[return-value]  # every store is the user directory too


async def test_users_are_added_once_listed_in_pages_changed_and_deleted(store: Store) -> None:
    directory = _directory(store)
    prefix = f"d-{uuid.uuid4().hex[:6]}"
    users = [
        User(str(uuid.uuid4()), f"{prefix}-{suffix}", "", email=f"{suffix}@example.com") for suffix in "cab"
    ]
    for user in users:
        assert await directory.add_user(user)
    assert not await directory.add_user(replace(users[0], user_id=str(uuid.uuid4())))  # the name is taken
    listed = [
        u.username for u in await directory.list_users(f"{prefix}-", 1000) if u.username.startswith(prefix)
    ]
    assert listed == [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]
    assert [u.username for u in await directory.list_users(f"{prefix}-a", 1)] == [f"{prefix}-b"]

    added = await store.get_user_by_username(f"{prefix}-a")
    assert added is not None and added.updated_at is not None  # never changed: its creation time
    assert await directory.change_user(f"{prefix}-a", lambda u: u) == added  # no change, no new updated_at
    changed = await directory.change_user(f"{prefix}-a", lambda u: replace(u, name="A", disabled=True))
    assert changed is not None and changed.updated_at is not None and changed.updated_at > added.updated_at
    assert (changed.name, changed.disabled, changed.password_set) == (
        "A",
        True,
        False,
    )
    assert await store.get_user_by_username(f"{prefix}-a") == changed
    assert await directory.change_user(f"{prefix}-zzz", lambda u: u) is None
    assert await directory.delete_user(f"{prefix}-a", timedelta(minutes=15))
    assert await store.get_user_by_username(f"{prefix}-a") is None
    assert not await directory.delete_user(f"{prefix}-a", timedelta(minutes=15))


async def test_a_users_groups_round_trip_and_change(store: Store) -> None:
    directory = _directory(store)
    user = User(str(uuid.uuid4()), f"g-{uuid.uuid4().hex[:8]}", "", groups=("admins", "dev ops"))
    assert await directory.add_user(user)
    stored = await store.get_user(user.user_id)
    assert stored is not None and stored.groups == ("admins", "dev ops")
    changed = await directory.change_user(user.username, lambda u: replace(u, groups=()))
    assert changed is not None and changed.groups == ()
    assert (await store.get_user_by_username(user.username)) == changed


async def test_a_federated_user_is_linked_once_found_by_the_link_refreshed_and_unlinked_on_delete(
    store: Store,
) -> None:
    directory = _directory(store)
    provider, subject = f"p-{uuid.uuid4().hex[:6]}", f"sub-{uuid.uuid4().hex}"
    assert await directory.federated_user(provider, subject) is None
    assert await directory.federated_sign_in(provider, subject, lambda u: u) is None  # no link: nothing
    person = User(str(uuid.uuid4()), f"f-{uuid.uuid4().hex[:8]}", "", email="a@corp.example", groups=("g1",))
    assert await directory.add_federated_user(provider, subject, person)
    found = await directory.federated_user(provider, subject)
    assert found is not None and (found.user_id, found.groups, found.password_set) == (
        person.user_id,
        ("g1",),
        False,
    )
    # The same link again (a concurrent first sign-in) and a taken username: refused, nothing written.
    twin = User(str(uuid.uuid4()), f"f-{uuid.uuid4().hex[:8]}", "")
    assert not await directory.add_federated_user(provider, subject, twin)
    assert await store.get_user(twin.user_id) is None
    taken = User(str(uuid.uuid4()), person.username, "")
    assert not await directory.add_federated_user(provider, f"other-{subject}", taken)
    assert await directory.federated_user(provider, f"other-{subject}") is None
    # Another provider's same subject is someone else.
    assert await directory.federated_user(f"{provider}x", subject) is None

    refreshed = await directory.federated_sign_in(
        provider, subject, lambda u: replace(u, name="New Name", groups=("g2", "g3"))
    )
    assert refreshed is not None and (refreshed.name, refreshed.groups) == ("New Name", ("g2", "g3"))
    assert refreshed.updated_at is not None and found.updated_at is not None
    assert refreshed.updated_at > found.updated_at
    assert await directory.federated_user(provider, subject) == refreshed

    assert await directory.delete_user(person.username, timedelta(minutes=15))
    assert await directory.federated_user(provider, subject) is None
    # The link went with the user: the person's next first sign-in provisions afresh.
    assert await directory.add_federated_user(provider, subject, replace(person, user_id=str(uuid.uuid4())))


async def test_revoking_a_users_grants_revokes_every_family_of_theirs_and_no_other(store: Store) -> None:
    directory = _directory(store)
    owner, other = await _user(store), await _user(store)
    families = []
    for user in (owner, owner, other):
        client_id = _client_id()
        code_hash, refresh = await _code(store, client_id, user.user_id), _refresh()
        redeemed = await store.redeem_authorization_code(
            code_hash, datetime.now(UTC), CodeBinding(client_id, REDIRECT, CHALLENGE), refresh
        )
        assert redeemed.record is not None and redeemed.record.user == user  # every column, disabled too
        families.append(refresh)
    before = datetime.now(UTC) - timedelta(seconds=1)
    disabled = await directory.change_user(
        owner.username, lambda u: replace(u, disabled=True), timedelta(minutes=15)
    )
    assert disabled is not None and disabled.disabled
    seen = [await store.get_refresh_token(f.family_id, f.secret_hash) for f in families]
    assert [s.revoked for s in seen if s] == [True, True, False]
    grants = dict((await store.revoked_since(before)).grants)
    assert set(grants) >= {grant_id_of_family(f.family_id) for f in families[:2]}
    assert grant_id_of_family(families[2].family_id) not in grants

    # A code redeemed after the user was disabled says so.
    client_id = _client_id()
    code_hash = await _code(store, client_id, owner.user_id)
    late = await store.redeem_authorization_code(
        code_hash, datetime.now(UTC), CodeBinding(client_id, REDIRECT, CHALLENGE), None
    )
    assert late.record is not None and late.record.user is not None and late.record.user.disabled


async def test_login_failures_count_up_and_start_over_once_expired(store: Store) -> None:
    key, other = f"u:{uuid.uuid4().hex}", f"a:{uuid.uuid4().hex}"
    now, window = datetime.now(UTC).replace(microsecond=0), timedelta(minutes=15)
    assert await store.login_failures([key, other]) == {}
    for step in range(3):
        await store.record_login_failure(
            [key, other] if step == 0 else [key], now + timedelta(seconds=step), window
        )
    counted = await store.login_failures([key, other])
    assert counted[key] == LoginFailures(3, now + timedelta(seconds=2), now + timedelta(seconds=2) + window)
    assert counted[other].failures == 1
    later = now + timedelta(seconds=2) + window  # its expiry passed: the count starts over
    await store.record_login_failure([key], later, window)
    assert (await store.login_failures([key]))[key] == LoginFailures(1, later, later + window)
    await store.forget_login_failures([key, f"u:{uuid.uuid4().hex}"])  # an uncounted key is no error
    assert (await store.login_failures([key, other])).keys() == {other}  # only the named key is gone


# Sign-in sessions: a session round-trips and records each client once, in the order first signed into;
# ending it (by id, by user, by expiry) claims it once and revokes exactly the refresh families it issued.
TTL = timedelta(minutes=15)


async def _session(
    store: Store, user_id: str, *, age: timedelta = timedelta(0), life: timedelta = TTL
) -> str:
    at = (datetime.now(UTC) - age).replace(microsecond=0)
    session = SignInSession(new_session_id(), user_id, int(at.timestamp()), at, at, at + life)
    await store.create_session(session)
    return session.session_id


async def _family_in(
    store: Store, session_id: str | None, client_id: str, user_id: str, scope: str = "openid read"
) -> tuple[str, str]:
    """A code issued in ``session_id`` and redeemed: (family_id, its secret's hash)."""
    code_hash = await _code(store, client_id, user_id, session_id=session_id, scope=scope)
    refresh = _refresh()
    redemption = await store.redeem_authorization_code(
        code_hash, datetime.now(UTC), CodeBinding(client_id, REDIRECT, CHALLENGE), refresh
    )
    assert redemption.outcome is RedemptionOutcome.OK and redemption.record is not None
    assert redemption.record.code.session_id == session_id
    assert redemption.record.refresh is not None and redemption.record.refresh.session_id == session_id
    return refresh.family_id, refresh.secret_hash


async def test_a_session_round_trips_and_records_each_client_once_in_order(store: Store) -> None:
    user = await _user(store)
    session_id = await _session(store, user.user_id)
    first, second = _client_id(), _client_id()
    now = datetime.now(UTC)
    for client_id in (second, first, second):
        await store.add_session_client(session_id, client_id, now)
        now += timedelta(seconds=1)
    stored = await store.get_session(session_id)
    assert stored is not None and stored.user_id == user.user_id and stored.ended_at is None
    assert stored.client_ids == (second, first)
    later = stored.last_seen_at + timedelta(minutes=3)
    await store.touch_session(session_id, later)
    touched = await store.get_session(session_id)
    assert touched is not None and touched.last_seen_at == later
    assert await store.get_session(new_session_id()) is None
    assert [s.session_id for s in await store.list_sessions(user.user_id)] == [session_id]


async def test_ending_a_session_revokes_only_its_families_and_happens_once(store: Store) -> None:
    user = await _user(store)
    ending, other = await _session(store, user.user_id), await _session(store, user.user_id)
    client_id = _client_id()
    await store.add_session_client(ending, client_id, datetime.now(UTC))
    ended_family, ended_secret = await _family_in(store, ending, client_id, user.user_id)
    kept_family, kept_secret = await _family_in(store, other, client_id, user.user_id)
    # OIDC Core §11: granted offline_access, it outlives the session (only that exact scope token counts).
    offline_family, offline_secret = await _family_in(
        store, ending, client_id, user.user_id, "openid offline_access read"
    )
    lookalike_family, lookalike_secret = await _family_in(
        store, ending, client_id, user.user_id, "openid offline_accessible"
    )
    since = datetime.now(UTC) - timedelta(seconds=1)

    ended = await store.end_session(ending, EndReason.SIGNED_OUT, datetime.now(UTC), TTL)
    assert ended == EndedSession(ending, user.user_id, (client_id,), EndReason.SIGNED_OUT)
    assert await store.end_session(ending, EndReason.REVOKED, datetime.now(UTC), TTL) is None  # once
    gone = await store.get_session(ending)
    assert gone is not None and gone.ended_at is not None and gone.end_reason == "signed_out"
    seen = await store.get_refresh_token(ended_family, ended_secret)
    assert seen is not None and seen.revoked
    kept = await store.get_refresh_token(kept_family, kept_secret)
    assert kept is not None and not kept.revoked
    offline = await store.get_refresh_token(offline_family, offline_secret)
    assert offline is not None and not offline.revoked
    lookalike = await store.get_refresh_token(lookalike_family, lookalike_secret)
    assert lookalike is not None and lookalike.revoked
    revoked = {grant for grant, _ in (await store.revoked_since(since)).grants}
    assert grant_id_of_family(ended_family) in revoked and grant_id_of_family(kept_family) not in revoked
    assert [s.session_id for s in await store.list_sessions(user.user_id)] == [other]
    # An unknown session does not end.
    assert await store.end_session(new_session_id(), EndReason.REVOKED, datetime.now(UTC), TTL) is None
    await _family_in(store, None, client_id, user.user_id)  # a code of no session: a family of none


async def test_ending_a_users_sessions_ends_every_live_one_oldest_first(store: Store) -> None:
    user, someone_else = await _user(store), await _user(store)
    older = await _session(store, user.user_id, age=timedelta(minutes=2))
    newer = await _session(store, user.user_id, age=timedelta(minutes=1))
    theirs = await _session(store, someone_else.user_id)
    ended = await store.end_user_sessions(user.user_id, EndReason.REVOKED, datetime.now(UTC), TTL)
    assert [(e.session_id, e.reason) for e in ended] == [
        (older, EndReason.REVOKED),
        (newer, EndReason.REVOKED),
    ]
    assert await store.list_sessions(user.user_id) == []
    assert [s.session_id for s in await store.list_sessions(someone_else.user_id)] == [theirs]
    assert await store.end_user_sessions(user.user_id, EndReason.REVOKED, datetime.now(UTC), TTL) == []


async def test_the_sweep_ends_expired_and_idle_sessions_and_revokes_their_families(store: Store) -> None:
    user = await _user(store)
    client_id = _client_id()
    expired = await _session(store, user.user_id, age=timedelta(hours=2), life=timedelta(hours=1))
    idle = await _session(store, user.user_id, age=timedelta(minutes=40), life=timedelta(hours=8))
    live = await _session(store, user.user_id, age=timedelta(minutes=5), life=timedelta(hours=8))
    family, secret = await _family_in(store, expired, client_id, user.user_id)
    now = datetime.now(UTC)

    # Without an idle timeout only the lifetime counts.
    swept = await store.end_expired_sessions(now, None, TTL)
    assert [(e.session_id, e.reason) for e in swept] == [(expired, EndReason.EXPIRED)]
    seen = await store.get_refresh_token(family, secret)
    assert seen is not None and seen.revoked
    swept = await store.end_expired_sessions(now, timedelta(minutes=30), TTL)
    assert [e.session_id for e in swept] == [idle]
    assert [s.session_id for s in await store.list_sessions(user.user_id)] == [live]


async def test_a_client_assertion_is_spent_once_until_it_expires(store: Store) -> None:
    """RFC 7523 §3 item 7: the first spend of a jti wins, a second one (any worker) is a replay; once its
    assertion expired the key may be spent again (the purge may not have run yet)."""
    key, other = uuid.uuid4().hex * 2, uuid.uuid4().hex * 2
    now = datetime.now(UTC).replace(microsecond=0)
    expires = now + timedelta(minutes=5)
    assert await store.spend_client_assertion(key, expires, now) is True
    assert await store.spend_client_assertion(key, expires, now + timedelta(minutes=4)) is False
    assert await store.spend_client_assertion(other, expires, now) is True
    assert await store.spend_client_assertion(key, expires + timedelta(minutes=5), expires) is True
    assert await store.spend_client_assertion(key, expires, expires - timedelta(seconds=1)) is False


async def test_the_registry_keeps_a_private_key_jwt_clients_keys_and_no_secret(
    store: Store, registry: ClientRegistry
) -> None:
    """A private_key_jwt client (RFC 7523 §2.2) is stored with its JWK Set or jwks_uri and its algorithm, and
    without any secret: none generated on creation, and a secret client switched to it loses its secret."""
    client_id = _client_id()
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"  # RFC 8037 §A.2's public key
    jwks = f'{{"keys":[{{"crv":"Ed25519","kid":"k1","kty":"OKP","x":"{x}"}}]}}'
    method = TokenEndpointAuthMethod.PRIVATE_KEY_JWT
    desired = _desired(
        client_id, token_endpoint_auth_method=method, jwks=jwks, token_endpoint_auth_signing_alg="EdDSA"
    )
    created = await register_client(registry, desired, None, None)
    assert created.generated_secret is None
    stored = await store.get_client(client_id)
    assert stored is not None and stored.secret_hash is None
    assert (stored.jwks, stored.jwks_uri, stored.token_endpoint_auth_signing_alg) == (jwks, None, "EdDSA")
    uri = "https://svc.example.com/.well-known/jwks.json"
    await register_client(registry, replace(desired, jwks=None, jwks_uri=uri), None, None)
    stored = await store.get_client(client_id)
    assert stored is not None and (stored.jwks, stored.jwks_uri) == (None, uri)

    secret_client = _client_id()
    await register_client(registry, _desired(secret_client), "s" * 43, None)
    await register_client(registry, replace(desired, client_id=secret_client), None, None)
    switched = await store.get_client(secret_client)
    assert switched is not None and switched.secret_hash is None and switched.jwks == jwks


async def test_the_registry_keeps_a_clients_token_exchange_policy(
    store: Store, registry: ClientRegistry
) -> None:
    """RFC 8693: the token-exchange policy is read back as registered (lists in order), changed, and removed
    (None: the defaults)."""
    client_id = _client_id()
    policy = TokenExchangePolicy(
        audiences=("https://b.example.com", "orders"),
        subject_audiences=("https://a.example.com",),
        allow_impersonation=True,
    )
    grants = ("client_credentials", GrantType.TOKEN_EXCHANGE.value)
    desired = _desired(client_id, grant_types=grants, token_exchange=policy)
    await register_client(registry, desired, "s" * 43, None)
    stored = await store.get_client(client_id)
    assert stored is not None and stored.token_exchange == policy
    narrower = replace(policy, audiences=("orders",), allow_impersonation=False)
    changed = await register_client(registry, replace(desired, token_exchange=narrower), None, None)
    assert changed.changed
    stored = await store.get_client(client_id)
    assert stored is not None and stored.token_exchange == narrower
    await register_client(registry, replace(desired, token_exchange=None), None, None)
    registered = await registry.get_registered_client(client_id)
    assert registered is not None and registered.client.token_exchange is None


def _usage(
    client_id: str,
    hour: datetime,
    tokens: int,
    errors: int = 0,
    last_token_at: datetime | None = None,
    error: tuple[str, datetime] | None = None,
) -> UsageCount:
    return UsageCount(
        client_id,
        hour,
        tokens,
        errors,
        last_token_at,
        error[0] if error else None,
        error[1] if error else None,
    )


async def test_usage_flushes_add_up_and_the_latest_last_use_wins(store: Store) -> None:
    """Several workers flush the same client and hour: tokens and errors sum per hourly bucket; the last token
    and the last error are the latest ones flushed, whatever order the flushes arrive in."""
    prefix = f"u-{uuid.uuid4().hex[:6]}"
    first, second = f"{prefix}-a", f"{prefix}-b"
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    earlier = hour - timedelta(hours=1)
    late, early = hour + timedelta(minutes=30), hour + timedelta(minutes=10)
    # Worker 1: two hours of the first client, and one error.
    await store.record_client_usage(
        [
            _usage(first, earlier, 5, 0, earlier + timedelta(minutes=59)),
            _usage(first, hour, 3, 1, late, ("invalid_grant", late)),
            _usage(second, hour, 0, 2, None, ("invalid_client", early)),
        ]
    )
    # Worker 2, flushing later with older last-use times: they must not win.
    await store.record_client_usage(
        [
            _usage(first, hour, 4, 1, early, ("invalid_scope", early)),
            _usage(second, hour, 0, 1, None, ("unauthorized_client", late)),
        ]
    )
    since = earlier - timedelta(hours=1)
    used = await store.get_client_usage(first, since)
    assert used is not None
    assert used.hours == ((earlier, 5, 0), (hour, 7, 2))
    assert (used.last_token_at, used.last_error, used.last_error_at) == (late, "invalid_grant", late)
    errored = await store.get_client_usage(second, since)
    assert errored is not None
    assert errored.hours == ((hour, 0, 3),)
    assert errored.last_token_at is None
    assert (errored.last_error, errored.last_error_at) == ("unauthorized_client", late)
    # Buckets before buckets_since are left out; the last use stays.
    recent = await store.get_client_usage(first, hour)
    assert recent is not None and recent.hours == ((hour, 7, 2),) and recent.last_token_at == late
    assert await store.get_client_usage(f"{prefix}-none", since) is None


async def test_a_flush_of_thousands_of_clients_stores_every_count(store: Store) -> None:
    """A worker serving 10,000 clients flushes thousands of counts at once: more than one batch of the write,
    every one of them stored, and a second flush adds to each."""
    prefix = f"m-{uuid.uuid4().hex[:6]}"
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    ids = [f"{prefix}-{n:05d}" for n in range(2500)]
    used_at = hour + timedelta(minutes=5)
    await store.record_client_usage([_usage(client, hour, 2, 0, used_at) for client in ids])
    await store.record_client_usage([_usage(client, hour, 1, 1, used_at) for client in ids])
    since = hour - timedelta(hours=1)
    seen: list[tuple[str, tuple[tuple[datetime, int, int], ...]]] = []
    after = f"{prefix}-"
    while page := await store.list_client_usage(after, 1000, since):
        page = [u for u in page if u.client_id.startswith(prefix)]
        if not page:
            break
        seen += [(u.client_id, u.hours) for u in page]
        after = page[-1].client_id
    assert [client for client, _ in seen] == ids
    assert {hours for _, hours in seen} == {((hour, 3, 1),)}


async def test_usage_lists_in_pages_and_filters_by_activity(store: Store) -> None:
    prefix = f"v-{uuid.uuid4().hex[:6]}"
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    old, new = hour - timedelta(days=3), hour + timedelta(minutes=1)
    await store.record_client_usage(
        [
            _usage(f"{prefix}-a", hour, 1, 0, old),
            _usage(f"{prefix}-b", hour, 1, 0, new),
            _usage(f"{prefix}-c", hour, 0, 1, None, ("invalid_client", new)),
        ]
    )
    since = hour - timedelta(hours=1)
    listed = [u.client_id for u in await store.list_client_usage(f"{prefix}-", 1000, since)]
    assert [c for c in listed if c.startswith(prefix)] == [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]
    page = await store.list_client_usage(f"{prefix}-a", 1, since)
    assert [u.client_id for u in page] == [f"{prefix}-b"] and page[0].hours == ((hour, 1, 0),)
    active = await store.list_client_usage(f"{prefix}-", 1000, since, active_since=hour)
    assert [u.client_id for u in active if u.client_id.startswith(prefix)] == [f"{prefix}-b", f"{prefix}-c"]


async def test_the_usage_purge_drops_old_hours_and_unregistered_clients(
    store: Store, registry: ClientRegistry
) -> None:
    registered, gone = _client_id(), _client_id()
    await register_client(registry, _desired(registered), None, None)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    old = hour - timedelta(hours=49)
    await store.record_client_usage(
        [
            _usage(registered, old, 2, 0, old),
            _usage(registered, hour, 1, 0, hour),
            _usage(gone, hour, 1, 0, hour),
        ]
    )
    await store.purge_client_usage(hour - timedelta(hours=48))
    kept = await store.get_client_usage(registered, old - timedelta(hours=1))
    assert kept is not None and kept.hours == ((hour, 1, 0),) and kept.last_token_at == hour
    assert await store.get_client_usage(gone, old) is None


async def test_one_workload_is_one_client_found_by_its_issuer_and_subject(
    store: Store, registry: ClientRegistry
) -> None:
    """A workload_identity client is found by (trusted issuer, subject); a second client for the same
    workload is refused (WorkloadTaken) and nothing of it is written, while other workloads, and clients
    with none, are not constrained."""
    subject = f"system:serviceaccount:shop:{uuid.uuid4().hex[:8]}"
    method = TokenEndpointAuthMethod.WORKLOAD_IDENTITY
    first = _desired(
        _client_id(),
        token_endpoint_auth_method=method,
        workload_issuer="kubernetes",
        workload_subject=subject,
    )
    created = await register_client(registry, first, None, None)
    assert created.generated_secret is None
    found = await store.get_client_by_workload("kubernetes", subject)
    assert found is not None and found.client_id == first.client_id and found.secret_hash is None
    assert await store.get_client_by_workload("other-cluster", subject) is None
    assert await store.get_client_by_workload("kubernetes", subject + "x") is None
    twin = replace(first, client_id=_client_id())
    with pytest.raises(WorkloadTaken):
        await register_client(registry, twin, None, None)
    assert await registry.get_registered_client(twin.client_id) is None
    # Re-registering the same client for its own workload is no conflict; a neighbour's workload is free.
    await register_client(registry, replace(first, name="renamed"), None, None)
    neighbour = replace(first, client_id=_client_id(), workload_subject=subject + "-b")
    await register_client(registry, neighbour, None, None)
    found = await store.get_client_by_workload("kubernetes", subject + "-b")
    assert found is not None and found.client_id == neighbour.client_id
    for _ in range(2):  # clients without a workload never collide
        await register_client(registry, _desired(_client_id()), None, None)


async def test_the_worker_census_counts_live_workers_and_deletes_dead_ones(store: Store) -> None:
    # Far ahead of the clock: the running app's own worker, beating meanwhile, is never among the live.
    start = datetime.now(UTC) + timedelta(days=30)
    window = timedelta(seconds=1.5)
    first, second, third = (f"w-{uuid.uuid4().hex[:12]}" for _ in range(3))

    async def beat(worker: str, seconds: float) -> int:
        now = start + timedelta(seconds=seconds)
        return await store.worker_heartbeat(worker, now, now - window)

    assert await beat(first, 0) == 1
    assert await beat(second, 0.5) == 2
    assert await beat(first, 1.0) == 2  # a second beat of the same worker is still one worker
    # first was last seen at 1.0: by 3.0 it is more than a window ago, so it is gone, and its row too ...
    assert await beat(second, 3.0) == 1
    # ... which a wider window shows: third counts second and itself, not first.
    assert await store.worker_heartbeat(third, start + timedelta(seconds=3.1), start) == 2
    assert await beat(first, 3.2) == 3  # a worker seen again counts again
    await store.forget_worker(first)  # a worker shutting down leaves at once
    await store.forget_worker(f"w-{uuid.uuid4().hex[:12]}")  # an unknown worker: nothing to forget
    assert await beat(second, 3.5) == 2
