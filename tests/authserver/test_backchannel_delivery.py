"""Back-channel logout deliveries (OpenID Connect Back-Channel Logout 1.0 §2.5) from a real application to
real HTTP receivers on loopback, on both databases.

Sessions are announced as the sessions code announces them (``protocol.session_end.announce`` over the
application's ``Services.session_end_listeners``), for clients registered through the admin API. Each
receiver is a small HTTP server in a thread that answers as its test scripts it (200, 500 then 200, 400, a
redirect, or not at all); one test's receiver is a port nobody listens on. The logout token is verified with
PyJWT against the server's JWKS, as an RP does (§2.6). The application runs with short timeouts and retry
waits (its settings), so giving up takes a fraction of a second, observed by polling, never slept.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from prometheus_client import REGISTRY

from authserver.config import Settings
from authserver.protocol.backchannel_logout import BACKCHANNEL_LOGOUT_EVENT, RetryPolicy
from authserver.protocol.session_end import EndedSession, EndReason, announce
from authserver.web.app import create_app
from authserver.web.backchannel_delivery import SHUTDOWN_GRACE_SECONDS, BackchannelLogout
from authserver.web.services import Services
from harness.polling import wait_for
from tests.conftest import settings_for
from tests.support.backchannel_receiver import HANG, receiving
from tests.support.oauth import register

TIMEOUT = 0.4  # each POST (the application's setting below)
ATTEMPTS = 3


@pytest.fixture(scope="module")
def settings(backend: str, request: pytest.FixtureRequest) -> Settings:
    return settings_for(
        backend,
        request,
        backchannel_logout_timeout=timedelta(seconds=TIMEOUT),
        backchannel_logout_first_retry=timedelta(milliseconds=50),
        backchannel_logout_max_attempts=ATTEMPTS,
        backchannel_logout_retry_deadline=timedelta(seconds=20),
    )


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _services(app_client: httpx.AsyncClient) -> Services:
    return app_client.app.state.services  # type: ignore[attr-defined,no-any-return]


def _count(outcome: str) -> float:
    labels = {"outcome": outcome}
    return REGISTRY.get_sample_value("authserver_backchannel_logout_deliveries_total", labels) or 0.0


class Counts:
    """The deliveries counter's change since this was made, per outcome."""

    def __init__(self) -> None:
        self.before = {o: _count(o) for o in ("delivered", "retried", "gave_up", "dropped")}

    def __call__(self) -> dict[str, float]:
        return {outcome: _count(outcome) - before for outcome, before in self.before.items()}


async def _client(app_client: httpx.AsyncClient, uri: str | None, **fields: Any) -> str:
    extra = {"backchannel_logout_uri": uri} if uri else {}
    client_id, _ = await register(
        app_client,
        grant_types=["authorization_code"],
        scopes=["openid"],
        redirect_uris=["https://rp.example.com/cb"],
        **extra,
        **fields,
    )
    return client_id


def _session(*client_ids: str) -> EndedSession:
    return EndedSession(
        f"sid-{uuid.uuid4().hex}", f"user-{uuid.uuid4().hex[:8]}", client_ids, EndReason.SIGNED_OUT
    )


async def _jwks(app_client: httpx.AsyncClient) -> jwt.PyJWKSet:
    return jwt.PyJWKSet.from_dict((await app_client.get("/.well-known/jwks.json")).json())


def _verified(token: str, jwks: jwt.PyJWKSet, issuer: str, client_id: str) -> tuple[dict[str, Any], str]:
    """§2.6, as an RP validates a logout token: the signature with the OP's published key, iss, aud, iat (and
    exp), typ, the event, sid and sub, no nonce. The claims and the algorithm."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "logout+jwt"
    key = next(key for key in jwks.keys if key.key_id == header["kid"])
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=[header["alg"]],
        audience=client_id,
        issuer=issuer,
        options={"require": ["iss", "aud", "iat", "exp", "jti", "sid", "sub"]},
    )
    assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
    assert "nonce" not in claims
    assert claims["iat"] <= time.time() + 5 and claims["exp"] - claims["iat"] <= 120
    return claims, str(header["alg"])


async def test_every_client_of_the_session_with_a_uri_is_posted_a_token_its_rp_accepts(
    app_client: httpx.AsyncClient,
) -> None:
    counts = Counts()
    with receiving(200) as first, receiving(204) as second:
        es256 = await _client(app_client, first.uri)
        rs256 = await _client(app_client, second.uri, id_token_signed_response_alg="RS256")
        silent = await _client(app_client, None)  # registered no URI: sent nothing
        ended = _session(es256, silent, rs256)
        announce(_services(app_client).session_end_listeners, [ended])
        await wait_for(lambda: counts()["delivered"] == 2, message=lambda: str(counts()))
        jwks = await _jwks(app_client)
        issuer = _services(app_client).issuer
        for receiver, client_id, alg in ((first, es256, "ES256"), (second, rs256, "RS256")):
            [(path, content_type, form)] = receiver.requests
            assert path == "/backchannel-logout?tenant=a"  # the registered query is kept
            assert content_type == "application/x-www-form-urlencoded"  # §2.5
            assert list(form) == ["logout_token"]
            claims, used = _verified(form["logout_token"][0], jwks, issuer, client_id)
            assert used == alg  # the client's ID-token algorithm
            assert (claims["sid"], claims["sub"]) == (ended.session_id, ended.user_id)
    assert counts() == {"delivered": 2, "retried": 0, "gave_up": 0, "dropped": 0}


async def test_an_rp_that_answers_500_is_sent_a_fresh_token_again_and_then_delivered(
    app_client: httpx.AsyncClient,
) -> None:
    counts = Counts()
    with receiving(500, 200) as receiver:
        client_id = await _client(app_client, receiver.uri)
        announce(_services(app_client).session_end_listeners, [_session(client_id)])
        await wait_for(lambda: counts()["delivered"] == 1, message=lambda: str(counts()))
        first, second = receiver.tokens()
    assert first != second  # each attempt its own token (jti, iat): a late retry is never expired
    jtis = {jwt.decode(token, options={"verify_signature": False})["jti"] for token in (first, second)}
    assert len(jtis) == 2
    assert counts() == {"delivered": 1, "retried": 1, "gave_up": 0, "dropped": 0}


async def test_an_rp_that_refuses_the_token_with_400_is_given_up_at_once_and_logged_without_it(
    app_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    counts = Counts()
    with caplog.at_level(logging.WARNING), receiving(400) as receiver:
        client_id = await _client(app_client, receiver.uri)
        announce(_services(app_client).session_end_listeners, [_session(client_id)])
        await wait_for(lambda: counts()["gave_up"] == 1, message=lambda: str(counts()))
        [token] = receiver.tokens()
    assert counts() == {"delivered": 0, "retried": 0, "gave_up": 1, "dropped": 0}
    assert f"client {client_id} given up: HTTP 400" in caplog.text
    assert token not in caplog.text and token.split(".")[1] not in caplog.text


async def test_a_redirect_is_not_followed_and_the_delivery_given_up(app_client: httpx.AsyncClient) -> None:
    counts = Counts()
    with receiving(302) as receiver:
        client_id = await _client(app_client, receiver.uri)
        announce(_services(app_client).session_end_listeners, [_session(client_id)])
        await wait_for(lambda: counts()["gave_up"] == 1, message=lambda: str(counts()))
        assert [path for path, _, _ in receiver.requests] == [
            "/backchannel-logout?tenant=a"
        ]  # not /elsewhere
    assert counts()["delivered"] == counts()["retried"] == 0


async def test_an_rp_that_is_down_is_retried_then_given_up(
    app_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    counts = Counts()
    client_id = await _client(app_client, f"http://127.0.0.1:{_unused_port()}/backchannel-logout")
    with caplog.at_level(logging.WARNING):
        announce(_services(app_client).session_end_listeners, [_session(client_id)])
        await wait_for(lambda: counts()["gave_up"] == 1, message=lambda: str(counts()))
    assert counts() == {"delivered": 0, "retried": ATTEMPTS - 1, "gave_up": 1, "dropped": 0}
    assert f"client {client_id} given up: not reached (ConnectError)" in caplog.text


async def test_an_rp_slower_than_the_timeout_is_tried_again(app_client: httpx.AsyncClient) -> None:
    counts = Counts()
    with receiving(HANG, 200) as receiver:
        client_id = await _client(app_client, receiver.uri)
        announce(_services(app_client).session_end_listeners, [_session(client_id)])
        await wait_for(lambda: counts()["delivered"] == 1, message=lambda: str(counts()))
        assert len(receiver.tokens()) == 2 and not receiver.release.is_set()  # the first is still held
    assert counts() == {"delivered": 1, "retried": 1, "gave_up": 0, "dropped": 0}


async def test_the_sign_out_never_waits_for_a_hanging_rp(app_client: httpx.AsyncClient) -> None:
    """session_ended only queues: announcing many sessions to an RP that never answers returns in far less
    than one request's timeout, before the RP has been sent anything."""
    counts = Counts()
    with receiving(HANG) as receiver:
        client_id = await _client(app_client, receiver.uri)
        sessions = [_session(client_id) for _ in range(20)]
        started = time.monotonic()
        announce(_services(app_client).session_end_listeners, sessions)
        assert time.monotonic() - started < TIMEOUT / 4
        assert receiver.requests == []  # nothing was sent while the sign-out waited
        assert _services(app_client).backchannel_logout.pending >= 1
        await wait_for(lambda: len(receiver.requests) >= 20, message=lambda: str(len(receiver.requests)))
        receiver.release.set()  # answer the held requests from now on (the ones timed out are retried)
        await wait_for(lambda: counts()["delivered"] == 20, message=lambda: str(counts()))
    assert counts()["gave_up"] == 0


async def test_a_full_queue_drops_and_counts_the_sessions_logouts(app_client: httpx.AsyncClient) -> None:
    services = _services(app_client)
    counts = Counts()
    listener = BackchannelLogout(services.clients.get, services.minter, queue_size=1)  # not started
    try:
        listener.session_ended(_session("a", "b"))
        listener.session_ended(_session("c", "d", "e"))  # the queue holds one session: dropped
        assert listener.pending == 1 and counts()["dropped"] == 3
        assert REGISTRY.get_sample_value("authserver_backchannel_logout_queue_size") == 1
    finally:
        await listener.close(grace=0)
    assert counts()["dropped"] == 5  # the queued one, lost when the worker stops
    assert REGISTRY.get_sample_value("authserver_backchannel_logout_queue_size") == 0


async def test_a_stopping_worker_finishes_pending_deliveries_within_the_grace(
    app_client: httpx.AsyncClient,
) -> None:
    services = _services(app_client)
    counts = Counts()
    policy = RetryPolicy(max_attempts=1)
    with receiving(200) as quick, receiving(HANG) as stuck:
        quick_id = await _client(app_client, quick.uri)
        stuck_id = await _client(app_client, stuck.uri)
        listener = BackchannelLogout(services.clients.get, services.minter, policy=policy, timeout=30)
        listener.start()
        listener.session_ended(_session(quick_id))
        listener.session_ended(_session(stuck_id))
        started = time.monotonic()
        await listener.close(grace=0.5)
        assert time.monotonic() - started < 5  # bounded by the grace, not by the 30 s request timeout
        listener.session_ended(_session(quick_id))  # after the stop: dropped, never sent
    assert len(quick.requests) == 1 and len(stuck.requests) == 1
    assert counts() == {"delivered": 1, "retried": 0, "gave_up": 0, "dropped": 2}


async def test_an_application_stopping_gives_its_pending_deliveries_the_shutdown_grace(
    settings: Settings,
) -> None:
    """The worker's shutdown (the lifespan's end, after uvicorn's graceful shutdown) waits for a delivery
    under way to finish (its RP answers only once the stop has begun), and for one that hangs only
    SHUTDOWN_GRACE_SECONDS, then drops it."""
    slow = settings.model_copy(update={"backchannel_logout_timeout": timedelta(seconds=30)})
    app = create_app(slow)
    counts = Counts()
    with receiving(HANG) as quick, receiving(HANG) as stuck:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                quick_id = await _client(http, quick.uri)
                stuck_id = await _client(http, stuck.uri)
            services: Services = app.state.services
            listener = services.backchannel_logout
            announce(services.session_end_listeners, [_session(quick_id, stuck_id)])
            await wait_for(lambda: len(quick.requests) == len(stuck.requests) == 1)  # both under way, held

            async def answer_once_stopping() -> None:
                await wait_for(lambda: listener.stopping)
                quick.release.set()

            answering = asyncio.create_task(answer_once_stopping())
            started = time.monotonic()
        stopped_in = time.monotonic() - started
        await answering
    assert SHUTDOWN_GRACE_SECONDS <= stopped_in < SHUTDOWN_GRACE_SECONDS + 3
    assert len(quick.requests) == 1
    assert counts() == {"delivered": 1, "retried": 0, "gave_up": 0, "dropped": 1}


async def test_deliveries_beyond_the_concurrency_wait_and_those_left_at_the_stop_are_counted(
    app_client: httpx.AsyncClient,
) -> None:
    """At most ``concurrency`` deliveries are under way: a session's further clients wait for a free slot,
    and when the worker stops first they are dropped, each counted."""
    services = _services(app_client)
    counts = Counts()
    with receiving(HANG) as stuck:
        client_ids = [await _client(app_client, stuck.uri) for _ in range(3)]
        listener = BackchannelLogout(services.clients.get, services.minter, concurrency=1, timeout=30)
        listener.start()
        listener.session_ended(_session(*client_ids))
        await wait_for(lambda: len(stuck.requests) == 1)
        assert listener.pending == 1  # one under way; the other two wait for its slot
        await listener.close(grace=0.2)
        assert len(stuck.requests) == 1
    assert counts() == {"delivered": 0, "retried": 0, "gave_up": 0, "dropped": 3}


@pytest.fixture
def private_ca(tmp_path: Path) -> Path:
    """A throwaway CA (ca.pem) and a certificate it signed for localhost (server.pem, with its key)."""
    tls_script = Path(__file__).resolve().parents[2] / "conformance" / "tls.sh"
    subprocess.run(["bash", str(tls_script), str(tmp_path), "localhost"], check=True, capture_output=True)
    return tmp_path


async def test_an_https_rp_behind_a_private_ca_is_reached_once_that_ca_is_trusted(
    app_client: httpx.AsyncClient, private_ca: Path
) -> None:
    """AUTHSERVER_BACKCHANNEL_LOGOUT_CA_FILE: an RP whose certificate a cluster-internal CA signed is refused
    (TLS verification never switched off) until that CA is trusted, beside the public ones."""
    services = _services(app_client)
    counts = Counts()
    one_attempt = RetryPolicy(max_attempts=1)
    with receiving(200, tls=private_ca / "server.pem") as receiver:
        client_id = await _client(app_client, receiver.uri)
        for ca_file, outcome in ((None, "gave_up"), (private_ca / "ca.pem", "delivered")):
            listener = BackchannelLogout(
                services.clients.get, services.minter, policy=one_attempt, ca_file=ca_file
            )
            listener.start()
            try:
                listener.session_ended(_session(client_id))
                await wait_for(lambda outcome=outcome: counts()[outcome] == 1, message=lambda: str(counts()))
            finally:
                await listener.close(grace=0)
        [token] = receiver.tokens()  # the untrusting listener's handshake failed before any request
    _verified(token, await _jwks(app_client), services.issuer, client_id)
    assert counts() == {"delivered": 1, "retried": 0, "gave_up": 1, "dropped": 0}


def test_a_ca_file_that_does_not_load_stops_the_server_at_startup(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    for path in (bad, tmp_path / "missing.pem"):
        with pytest.raises(ValueError, match="not a readable PEM file of certificates"):
            Settings(backchannel_logout_ca_file=path)
