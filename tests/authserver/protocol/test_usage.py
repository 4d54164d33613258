"""Usage per client (``protocol.usage``): what the token endpoint counts, how a worker's counts reach the
store, and how the last hour and day are told from hourly buckets."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from authserver.protocol.errors import (
    InvalidClient,
    InvalidRequest,
    SlowDown,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from authserver.protocol.models import Client, ClientUsage, TokenEndpointAuthMethod, UsageCount
from authserver.protocol.store import StoreUnavailable
from authserver.protocol.usage import UsageCounter, flush, hour_of, summarize
from tests.support.client_assertions import JWT_BEARER, ec_key, public_jwk, sign
from tests.support.memory_store import MemoryStore
from tests.support.oauth import basic
from tests.support.protocol_server import TOKEN_ENDPOINT, ProtocolServer, RegisteredForTest, form

T0 = datetime(2026, 12, 7, 14, 0, tzinfo=UTC).timestamp()


def _by_client(counts: Sequence[UsageCount]) -> dict[str, tuple[int, int, str | None]]:
    return {count.client_id: (count.tokens, count.errors, count.last_error) for count in counts}


async def test_the_token_endpoint_counts_tokens_and_errors_of_registered_clients(
    server: ProtocolServer,
) -> None:
    """Each token and each refusal is counted for the registered client the request named, a wrong secret
    included (the client's owner wants to see it); a client_id nobody registered is counted for no one."""
    client = server.confidential_client()
    other = server.confidential_client()
    for _ in range(3):
        await server.token(client, grant_type="client_credentials")
    with pytest.raises(UnauthorizedClient):
        await server.token(client, grant_type="refresh_token", refresh_token="x")
    with pytest.raises(InvalidClient):
        await server.token(RegisteredForTest(other.client, "not-the-secret"), grant_type="client_credentials")
    nobody = RegisteredForTest(replace(other.client, client_id="nobody"), other.secret)
    with pytest.raises(InvalidClient):
        await server.token(nobody, grant_type="client_credentials")

    assert _by_client(server.usage.drain()) == {
        client.client_id: (3, 1, "unauthorized_client"),
        other.client_id: (0, 1, "invalid_client"),
    }
    assert server.usage.drain() == []  # a drain starts the counts over


async def test_refusals_after_the_client_is_known_are_counted_for_it_and_those_before_for_no_one(
    server: ProtocolServer,
) -> None:
    """Counted for the client: a public client sending a secret, a replayed private_key_jwt assertion, the
    rate limit refusing it. Counted for no one: a request refused before any client was looked up (an
    unknown grant type, a client_id contradicting the Basic header)."""
    public = server.web_client()
    with pytest.raises(InvalidClient, match="public clients do not authenticate with a secret"):
        await server.token(RegisteredForTest(public.client, "a-secret"), grant_type="authorization_code")

    private = ec_key()
    signer = server.store.add_client(
        replace(
            server.confidential_client().client,
            client_id="pk-usage",
            token_endpoint_auth_method=TokenEndpointAuthMethod.PRIVATE_KEY_JWT,
            jwks=json.dumps({"keys": [public_jwk(private)]}),
        )
    )
    assertion = sign(private, "ES256", signer.client_id, TOKEN_ENDPOINT)
    params = form(
        grant_type="client_credentials", client_assertion_type=JWT_BEARER, client_assertion=assertion
    )
    await server.token_endpoint.handle(params, None)
    with pytest.raises(InvalidClient, match="already used"):
        await server.token_endpoint.handle(params, None)

    limited = server.confidential_client()

    def refuse(client: Client) -> None:
        raise SlowDown("too many token requests for this client", 1)

    with pytest.raises(SlowDown):
        await server.token_endpoint.handle(
            form(grant_type="client_credentials", **limited.credentials()), limited.authorization, refuse
        )

    before = server.confidential_client()
    with pytest.raises(UnsupportedGrantType):
        await server.token(before, grant_type="password")
    with pytest.raises(InvalidRequest, match="does not match"):
        await server.token_endpoint.handle(
            form(grant_type="client_credentials", client_id="someone-else"),
            basic(before.client_id, "x")["Authorization"],
        )

    assert _by_client(server.usage.drain()) == {
        public.client_id: (0, 1, "invalid_client"),
        signer.client_id: (1, 1, "invalid_client"),
        limited.client_id: (0, 1, SlowDown.error),
    }


def test_counts_are_kept_per_client_and_clock_hour_with_the_latest_times() -> None:
    counter = UsageCounter()
    counter.token("a", T0 + 10)
    counter.token("a", T0 + 3599)
    counter.token("a", T0 + 3600)  # the next hour
    counter.error("a", "invalid_scope", T0 + 20)
    counter.error("a", "invalid_grant", T0 + 30)
    counts = sorted(counter.drain(), key=lambda count: count.hour)
    hour = datetime.fromtimestamp(T0, UTC)
    assert counts == [
        UsageCount(
            "a",
            hour,
            2,
            2,
            datetime.fromtimestamp(T0 + 3599, UTC),
            "invalid_grant",
            datetime.fromtimestamp(T0 + 30, UTC),
        ),
        UsageCount("a", hour + timedelta(hours=1), 1, 0, datetime.fromtimestamp(T0 + 3600, UTC), None, None),
    ]


def test_a_full_counter_drops_new_clients_and_says_how_many() -> None:
    counter = UsageCounter(max_entries=2)
    counter.token("a", T0)
    counter.token("b", T0)
    counter.token("c", T0)
    counter.error("c", "invalid_client", T0)
    counter.token("a", T0 + 1)  # a known (client, hour) is still counted
    assert len(counter) == 2 and counter.take_dropped() == 2 and counter.take_dropped() == 0
    assert _by_client(counter.drain()) == {"a": (2, 0, None), "b": (1, 0, None)}


async def test_a_flush_the_store_refuses_keeps_the_counts_for_the_next_one() -> None:
    counter, store = UsageCounter(), MemoryStore()
    counter.token("a", T0)
    counter.error("a", "invalid_grant", T0 + 5)

    async def down(counts: Sequence[UsageCount]) -> None:
        raise StoreUnavailable("database down")

    with pytest.raises(StoreUnavailable):
        await flush(counter, down)
    counter.token("a", T0 + 10)  # counted while the database was down
    assert await flush(counter, store.record_client_usage) == 1
    assert await flush(counter, store.record_client_usage) == 0  # nothing new: no write
    stored = await store.get_client_usage("a", datetime.fromtimestamp(T0, UTC))
    assert stored is not None
    assert stored.hours == ((datetime.fromtimestamp(T0, UTC), 2, 1),)
    assert stored.last_token_at == datetime.fromtimestamp(T0 + 10, UTC)
    assert (stored.last_error, stored.last_error_at) == ("invalid_grant", datetime.fromtimestamp(T0 + 5, UTC))


async def test_a_flush_cancelled_mid_write_lets_the_write_finish_and_keeps_nothing_back() -> None:
    """A shutdown cancels the periodic flush while its write is in flight: the write still commits, and its
    counts are not taken back (the shutdown's last flush would store them a second time)."""
    counter, store = UsageCounter(), MemoryStore()
    counter.token("a", T0)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(counts: Sequence[UsageCount]) -> None:
        started.set()
        await release.wait()
        await store.record_client_usage(counts)

    flushing = asyncio.create_task(flush(counter, slow))
    await started.wait()
    flushing.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    assert len(counter) == 0
    stored = await store.get_client_usage("a", datetime.fromtimestamp(T0, UTC))
    assert stored is not None and stored.hours == ((datetime.fromtimestamp(T0, UTC), 1, 0),)


def test_the_last_hour_and_day_are_sliding_windows_over_the_hourly_buckets() -> None:
    now = datetime(2026, 12, 7, 14, 15, tzinfo=UTC)  # a quarter into the 14:00 bucket
    hour = hour_of(now)
    assert hour == datetime(2026, 12, 7, 14, tzinfo=UTC)
    usage = ClientUsage(
        "a",
        now,
        None,
        None,
        hours=(
            (hour - timedelta(hours=25), 1000, 0),  # outside the day
            (hour - timedelta(hours=24), 400, 40),  # three quarters of its hour inside the day
            (hour - timedelta(hours=5), 50, 0),
            (hour - timedelta(hours=1), 100, 8),  # three quarters inside the last hour
            (hour, 20, 1),
        ),
    )
    summary = summarize(usage, now)
    assert (summary.tokens_last_hour, summary.errors_last_hour) == (20 + 75, 1 + 6)
    assert (summary.tokens_last_day, summary.errors_last_day) == (20 + 100 + 50 + 300, 1 + 8 + 30)
    # On the hour the previous bucket counts whole; a client idle for a day shows zeros.
    assert summarize(usage, hour).tokens_last_hour == 120
    assert summarize(usage, hour + timedelta(days=2)).tokens_last_day == 0
