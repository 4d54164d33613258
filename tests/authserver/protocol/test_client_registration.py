"""Client registration (an idempotent upsert) and client-secret rotation with a grace period."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from authserver.crypto.client_secrets import hash_secret
from authserver.protocol.client_authentication import authenticate_client
from authserver.protocol.client_registration import register_client, registration_change
from authserver.protocol.client_secret_rotation import rotate_client_secret, rotate_secret
from authserver.protocol.errors import InvalidClient, InvalidRequest
from authserver.protocol.models import Client, ClientType, RegisteredClient, TokenEndpointAuthMethod
from tests.support.oauth import basic
from tests.support.protocol_server import ProtocolServer

OLD, NEW, NEWEST = "o" * 43, "n" * 43, "r" * 43
NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


ORDERS = Client("orders", "Orders", ClientType.CONFIDENTIAL, ("client_credentials",), ("read",))
PUBLIC = replace(
    ORDERS, client_type=ClientType.PUBLIC, token_endpoint_auth_method=TokenEndpointAuthMethod.NONE
)


def _desired(**fields: Any) -> Client:
    return replace(ORDERS, **fields)


async def _accepts(server: ProtocolServer, client_id: str, secret: str, now: datetime | None = None) -> bool:
    """Whether the token endpoint's client authentication accepts ``secret`` for ``client_id`` at ``now``."""
    try:
        header = basic(client_id, secret)["Authorization"]
        await authenticate_client({}, header, server.store.get_client, now=now or datetime.now(UTC))
    except InvalidClient:
        return False
    return True


async def test_registering_creates_once_and_repeating_changes_nothing(server: ProtocolServer) -> None:
    created = await register_client(server.store, _desired(), None, None)
    assert created.created and created.changed and created.generated_secret
    assert created.registered.client.secret_hash == hash_secret(created.generated_secret)
    assert await _accepts(server, "orders", created.generated_secret)

    again = await register_client(server.store, _desired(), None, None)
    assert not again.created and not again.changed and again.generated_secret is None
    assert again.registered == created.registered  # same secret, same updated_at
    assert await _accepts(server, "orders", created.generated_secret)

    renamed = await register_client(server.store, _desired(name="Orders v2"), None, None)
    assert renamed.changed and renamed.registered.client.name == "Orders v2"
    assert renamed.registered.updated_at >= created.registered.updated_at
    assert renamed.registered.client.secret_hash == created.registered.client.secret_hash


async def test_a_supplied_secret_is_kept_and_never_echoed(server: ProtocolServer) -> None:
    created = await register_client(server.store, _desired(), OLD, None)
    assert created.generated_secret is None and await _accepts(server, "orders", OLD)
    repeated = await register_client(server.store, _desired(), OLD, None)
    assert not repeated.changed


async def test_a_new_secret_with_a_grace_period_is_an_idempotent_rotation(server: ProtocolServer) -> None:
    await register_client(server.store, _desired(), OLD, None)
    for _ in range(2):  # a retry after a lost response must not push OLD out of its grace period
        rotated = await register_client(server.store, _desired(), NEW, timedelta(hours=1))
        assert rotated.registered.client.previous_secret_expires_at is not None
    assert await _accepts(server, "orders", OLD) and await _accepts(server, "orders", NEW)
    assert not await _accepts(server, "orders", OLD, now=datetime.now(UTC) + timedelta(hours=1, seconds=1))
    assert await _accepts(server, "orders", NEW, now=datetime.now(UTC) + timedelta(hours=2))


async def test_a_new_secret_without_a_grace_period_replaces_the_current_one_at_once(
    server: ProtocolServer,
) -> None:
    await register_client(server.store, _desired(), OLD, None)
    replaced = await register_client(server.store, _desired(), NEW, None)
    assert replaced.changed and replaced.registered.secret_rotated_at is not None
    assert await _accepts(server, "orders", NEW) and not await _accepts(server, "orders", OLD)


async def test_a_replacement_without_grace_also_ends_an_earlier_rotations_grace(
    server: ProtocolServer,
) -> None:
    await register_client(server.store, _desired(), OLD, None)
    await register_client(server.store, _desired(), NEW, timedelta(hours=1))  # OLD in its grace period
    replaced = await register_client(server.store, _desired(), NEWEST, None)
    assert replaced.registered.client.previous_secret_hash is None
    assert await _accepts(server, "orders", NEWEST)
    assert not await _accepts(server, "orders", NEW) and not await _accepts(server, "orders", OLD)


async def test_public_clients_have_no_secret_and_get_one_when_made_confidential(
    server: ProtocolServer,
) -> None:
    created = await register_client(server.store, PUBLIC, None, None)
    assert created.generated_secret is None and created.registered.client.secret_hash is None

    confidential = await register_client(server.store, _desired(), None, None)
    assert confidential.changed and confidential.generated_secret
    assert await _accepts(server, "orders", confidential.generated_secret)

    rotated = await register_client(server.store, _desired(), NEW, timedelta(hours=1))
    assert rotated.registered.client.previous_secret_hash is not None
    made_public = await register_client(server.store, PUBLIC, None, None)
    assert made_public.changed
    client = made_public.registered.client
    assert (client.secret_hash, client.previous_secret_hash, client.previous_secret_expires_at) == (None,) * 3


async def test_rotation_keeps_the_previous_secret_for_the_grace_period_only(server: ProtocolServer) -> None:
    created = await register_client(server.store, _desired(), OLD, None)
    rotated = await rotate_client_secret(server.store, "orders", None, timedelta(minutes=10))
    assert rotated is not None and rotated.changed and rotated.generated_secret
    new = rotated.generated_secret
    expiry = rotated.registered.client.previous_secret_expires_at
    assert expiry is not None and rotated.registered.secret_rotated_at is not None
    assert expiry - rotated.registered.secret_rotated_at == timedelta(minutes=10)
    assert rotated.registered.created_at == created.registered.created_at
    assert await _accepts(server, "orders", OLD) and await _accepts(server, "orders", new)
    assert not await _accepts(server, "orders", OLD, now=expiry + timedelta(seconds=1))
    assert await _accepts(server, "orders", new, now=expiry + timedelta(seconds=1))

    # Another rotation ends that grace: one previous secret at most.
    newest = await rotate_client_secret(server.store, "orders", NEWEST, timedelta(minutes=10))
    assert newest is not None and newest.generated_secret is None
    assert await _accepts(server, "orders", new) and not await _accepts(server, "orders", OLD)
    # A zero grace period retires the current secret at once.
    await rotate_client_secret(server.store, "orders", None, timedelta(0))
    assert not await _accepts(server, "orders", NEWEST)


async def test_rotating_to_the_current_secret_again_changes_nothing(server: ProtocolServer) -> None:
    await register_client(server.store, _desired(), OLD, None)
    first = await rotate_client_secret(server.store, "orders", NEW, timedelta(hours=1))
    second = await rotate_client_secret(server.store, "orders", NEW, timedelta(hours=1))
    assert first is not None and second is not None
    assert first.changed and not second.changed and second.registered == first.registered
    assert await _accepts(server, "orders", OLD)


async def test_rotation_of_a_public_or_unknown_client(server: ProtocolServer) -> None:
    await register_client(server.store, PUBLIC, None, None)
    with pytest.raises(InvalidRequest, match="public clients have no secret to rotate"):
        await rotate_client_secret(server.store, "orders", None, timedelta(hours=1))
    assert await rotate_client_secret(server.store, "nobody", None, timedelta(hours=1)) is None
    assert await server.store.get_registered_client("nobody") is None


def test_the_decisions_are_pure_functions_of_the_client_and_the_clock() -> None:
    current = RegisteredClient(
        _desired(secret_hash=hash_secret(OLD)), created_at=NOW - timedelta(days=1), updated_at=NOW
    )
    rotated = rotate_secret(current, NEW, timedelta(minutes=5), NOW)
    client = rotated.registered.client
    assert (client.secret_hash, client.previous_secret_hash) == (hash_secret(NEW), hash_secret(OLD))
    assert client.previous_secret_expires_at == NOW + timedelta(minutes=5)
    assert rotated.registered.secret_rotated_at == rotated.registered.updated_at == NOW
    unchanged = registration_change(rotated.registered, _desired(), None, None, NOW + timedelta(hours=1))
    assert unchanged.registered == rotated.registered and not unchanged.changed


async def test_deleting_a_client_revokes_its_refresh_tokens(server: ProtocolServer) -> None:
    client, user = server.web_client(), await server.user()
    code, verifier = await server.authorize(client, user)
    refresh = (await server.redeem(client, code, verifier))["refresh_token"]
    assert await server.store.delete_registered_client(client.client_id, timedelta(minutes=15))
    assert server.store.families[refresh.split(".")[0]].revoked
    assert await server.store.get_client(client.client_id) is None
