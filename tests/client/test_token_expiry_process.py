"""Token lifetimes as a workload lives them, against a real ``authserver serve --workers 2`` issuing
short-lived access tokens: steady use refreshes ahead of expiry and never serves an expired token; through a
server outage callers keep the still-valid token, then get a clear error once it has expired, then new
tokens when the server is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest

from authyard_client import AsyncTokenSource, RefreshPolicy, TokenRequestError, TokenSource, TokenUnavailable
from harness.authserver import AuthServer
from harness.polling import wait_for
from tests.conftest import server_process
from tests.support.client_kit import register_service, secret_settings

TTL_SECONDS = 4
STEADY_REFRESHES = 3


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[AuthServer]:
    with server_process("sqlite", request, AUTHSERVER_ACCESS_TOKEN_TTL=f"{TTL_SECONDS}s") as started:
        yield started


def _unexpired(token: str) -> str:
    """The token, after checking against the wall clock that the server's exp has not passed."""
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert time.time() < exp, f"served a token that expired {time.time() - exp:.2f}s ago"
    return token


def test_steady_use_refreshes_before_the_last_tenth_of_life_and_never_serves_an_expired_token(
    server: AuthServer,
) -> None:
    client = register_service(server)
    with TokenSource.from_settings(secret_settings(server, client)) as source:

        def use() -> set[str]:
            served = set()
            while source.stats.count("proactive", "success") < STEADY_REFRESHES:
                served.add(_unexpired(source.token()))
            return served

        deadline = TTL_SECONDS * (STEADY_REFRESHES + 2)
        with ThreadPoolExecutor(max_workers=8) as pool:
            seen = set().union(*pool.map(lambda _: use(), range(8), timeout=deadline))
    assert len(seen) == STEADY_REFRESHES + 1
    assert source.stats.count("initial", "success") == 1
    assert source.stats.count("emergency") == 0 and source.stats.count("proactive", "failure") == 0
    assert source.stats.proactive_ratio() == 1.0


async def test_an_outage_serves_the_valid_token_then_a_clear_error_then_recovers(
    request: pytest.FixtureRequest,
) -> None:
    # Long enough that stopping the server (a graceful drain) ends well before the token does.
    ttl = 10
    with server_process("sqlite", request, AUTHSERVER_ACCESS_TOKEN_TTL=f"{ttl}s") as server:
        client = register_service(server)
        policy = RefreshPolicy(backoff_initial=0.2, backoff_max=0.5)
        async with AsyncTokenSource.from_settings(secret_settings(server, client), policy=policy) as source:
            first = await source.token()
            server.stop()
            served: list[tuple[str, float, int]] = []  # (token, seconds to its exp, failed refreshes so far)

            async def refused() -> TokenUnavailable | None:
                try:
                    token = await source.token()
                except TokenUnavailable as error:
                    return error
                exp = jwt.decode(token, options={"verify_signature": False})["exp"]
                served.append((token, exp - time.time(), source.stats.count("proactive", "failure")))
                return None

            error = await wait_for(refused, timeout=ttl + 5, interval=0.05)
            assert served and {token for token, _, _ in served} == {first}
            assert min(left for _, left, _ in served) > 0, "an expired token was served"
            assert served[-1][2] >= 1, "the still-valid token was served while refreshes failed"
            assert "the last token expired" in str(error) and "ConnectError" in str(error)
            assert isinstance(error.__cause__, TokenRequestError)

            # While it is down, callers get the error at once, and attempts stay spaced by the backoff.
            tries_before, started = source.stats.count("emergency", "failure"), time.monotonic()
            for _ in range(20):
                with pytest.raises(TokenUnavailable):
                    await source.token()
                await asyncio.sleep(0.05)  # paced calls, as an application makes them
            tries = source.stats.count("emergency", "failure") - tries_before
            assert tries <= (time.monotonic() - started) / (policy.backoff_initial / 2) + 1

            server.start()

            async def recovered() -> str | None:
                try:
                    return _unexpired(await source.token())
                except TokenUnavailable:
                    return None

            fresh = await wait_for(recovered, timeout=30, interval=0.1)
            assert fresh != first
        assert source.stats.count("emergency", "success") == 1
