"""Fetching a private_key_jwt client's jwks_uri (``web/client_jwks.py``) from a real loopback HTTP server:
the cache, the refresh on an unknown kid (rate limited), and every way a jwks_uri can fail, each a clear
reason and never a long wait."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest

from authserver.protocol.client_assertion import ClientKeysUnavailable
from authserver.protocol.models import Client, ClientType, TokenEndpointAuthMethod
from authserver.web.client_jwks import ClientKeySource
from tests.support.client_assertions import ec_key, public_jwk
from tests.support.jwks_server import JwksServer, serving_jwks


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def served() -> Iterator[JwksServer]:
    with serving_jwks() as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def source(clock: Clock) -> AsyncIterator[ClientKeySource]:
    keys = ClientKeySource(timeout=0.5, cache_seconds=300, refresh_interval=5, max_bytes=4096, clock=clock)
    yield keys
    await keys.close()


def _client(uri: str | None = None, jwks: dict[str, Any] | None = None) -> Client:
    return Client(
        client_id=f"pk-{uuid.uuid4().hex[:8]}",
        name="signer",
        client_type=ClientType.CONFIDENTIAL,
        grant_types=("client_credentials",),
        scopes=(),
        token_endpoint_auth_method=TokenEndpointAuthMethod.PRIVATE_KEY_JWT,
        jwks_uri=uri,
        jwks=json.dumps(jwks) if jwks is not None else None,
    )


def _path(served: JwksServer, document: Any) -> str:
    path = f"/{uuid.uuid4().hex[:8]}"
    served.documents[path] = document
    return path


async def test_a_fetched_set_is_cached_and_refreshed_at_most_every_interval(
    served: JwksServer, source: ClientKeySource, clock: Clock
) -> None:
    first = public_jwk(ec_key(), "one")
    path = _path(served, {"keys": [first]})
    client = _client(served.uri(path))
    assert [key["kid"] for key in await source(client, False)] == ["one"]
    assert [key["kid"] for key in await source(client, False)] == ["one"]
    assert served.hits[path] == 1
    served.documents[path] = {"keys": [first, public_jwk(ec_key(), "two")]}
    # An unknown kid asks for a refresh: not within the interval of the last fetch, then once.
    assert len(await source(client, True)) == 1 and served.hits[path] == 1
    clock.now += 5
    assert len(await source(client, True)) == 2 and served.hits[path] == 2
    assert len(await source(client, True)) == 2 and served.hits[path] == 2
    # Without a refresh asked, the set is kept until the cache time runs out.
    served.documents[path] = {"keys": [first]}
    clock.now += 200
    assert len(await source(client, False)) == 2 and served.hits[path] == 2
    clock.now += 100
    assert len(await source(client, False)) == 1 and served.hits[path] == 3
    # A registration moved to another jwks_uri is fetched there at once.
    other = _path(served, {"keys": [public_jwk(ec_key(), "moved")]})
    moved = replace(client, jwks_uri=served.uri(other))
    assert [key["kid"] for key in await source(moved, False)] == ["moved"]


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ("hang", "its jwks_uri did not answer within 0.5 s"),
        ("garbage", "its jwks_uri did not serve a JWK Set of public keys: not JSON"),
        ("redirect", "its jwks_uri answered HTTP 302"),
        (None, "its jwks_uri answered HTTP 404"),
        ({"keys": [{**public_jwk(ec_key()), "d": "c2VjcmV0"}]}, "private members (d)"),
        ({"keys": [public_jwk(ec_key())], "padding": "x" * 5000}, "served more than 4096 bytes"),
    ],
)
async def test_a_broken_jwks_uri_fails_with_a_reason_and_is_not_asked_again_at_once(
    served: JwksServer, source: ClientKeySource, clock: Clock, document: Any, reason: str
) -> None:
    path = _path(served, document)
    client = _client(served.uri(path))
    started = time.monotonic()
    with pytest.raises(ClientKeysUnavailable) as failed:
        await source(client, False)
    assert reason in failed.value.description
    assert time.monotonic() - started < 3  # bounded by the timeout, however the server behaves
    with pytest.raises(ClientKeysUnavailable):
        await source(client, True)
    assert served.hits[path] == 1  # the failure is remembered for the refresh interval
    served.documents[path] = {"keys": [public_jwk(ec_key(), "fixed")]}
    clock.now += 5
    assert [key["kid"] for key in await source(client, False)] == ["fixed"]


async def test_inline_keys_need_no_fetch_and_a_client_without_keys_has_none(source: ClientKeySource) -> None:
    jwk = public_jwk(ec_key(), "inline")
    assert list(await source(_client(jwks={"keys": [jwk]}), False)) == [jwk]
    with pytest.raises(ClientKeysUnavailable, match="neither jwks nor jwks_uri"):
        await source(_client(), False)
