"""PostgreSQL faults under a real ``authserver serve`` process, on a cluster of its own (the tests stop it).

* An outage during load: readiness goes false, liveness stays true, every request that needs the database
  answers a clean 503 ``temporarily_unavailable`` with ``Retry-After`` within a bound (never hangs); the
  documented exception is a client the worker has cached (``client_cache_ttl``, 2 s by default), whose
  client_credentials requests may keep succeeding since they need no database. When PostgreSQL is back the
  same process recovers (same pid, readiness true) and nothing acknowledged before or during the outage is
  lost: clients registered, refresh tokens issued.
* A restart in the middle of an authorization code exchange and of a refresh rotation: the request is held
  inside the database (another session locks the row the server's statement must update), PostgreSQL is
  stopped under it, the request answers 503, and after the restart the retry succeeds exactly once. The
  refresh family is never half-rotated: the database holds exactly one live token per family, the one the
  client was given, and introspection agrees.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import psycopg
import pytest

from harness.authserver import AuthServer, running_server
from harness.postgres import PostgresCluster, postgres_available
from tests.support.oauth import admin_headers, authorize_code, basic, redeem_code
from tests.support.oauth import refresh as refresh_grant
from tests.support.refresh_tokens import presented

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not postgres_available(), reason="needs the PostgreSQL server binaries"),
]

REDIRECT_URI = "http://127.0.0.1:9/callback"
DATABASE = "faults"
FAIL_FAST_BOUND_SECONDS = 5.0  # a request during the outage answers within this (pool timeout is 1 s)
STATE_DEADLINE_SECONDS = 15.0  # readiness flips, the retry gets through, ...
LOAD_WORKERS = 6


@dataclass
class Stack:
    cluster: PostgresCluster
    server: AuthServer
    web_client: tuple[str, str]
    username: str
    password: str

    def sql(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host="127.0.0.1", port=self.cluster.port, user="postgres", dbname=DATABASE, connect_timeout=5
        )

    def live_tokens_of_family(self, refresh_token: str) -> set[str]:
        """Secret hashes of the tokens of this token's family that could still be used: its current one,
        unless the family is revoked."""
        with self.sql() as connection:
            rows = connection.execute(
                "SELECT secret_hash FROM refresh_families WHERE family_id = %s AND NOT revoked",
                (presented(refresh_token)[0],),
            ).fetchall()
        return {row[0] for row in rows}

    async def stop_database(self, mode: str = "fast") -> None:
        await asyncio.to_thread(self.cluster.stop, mode)

    async def start_database(self) -> None:
        await asyncio.to_thread(self.cluster.start)
        await asyncio.to_thread(self.cluster.wait_until_accepting)


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    cluster = PostgresCluster()  # its own cluster: these tests stop it
    cluster.start()
    try:
        url = cluster.create_database(DATABASE)
        directory = tmp_path_factory.mktemp("faults")
        with running_server(
            directory, url, AUTHSERVER_DB_POOL_TIMEOUT="1s", AUTHSERVER_LOG_LEVEL="warning"
        ) as server:
            response = httpx.put(
                f"{server.base_url}/admin/clients/faults-web",
                json={
                    "name": "faults web",
                    "grant_types": ["authorization_code", "refresh_token"],
                    "scopes": ["openid", "profile", "email", "read"],
                    "redirect_uris": [REDIRECT_URI],
                },
                headers=admin_headers(),
                timeout=10,
            )
            assert response.status_code in (200, 201), response.text
            username, password = f"faults-{uuid.uuid4().hex[:8]}", "faults-password-0123456789"
            server.create_user(username, password, email=f"{username}@example.com", name="Fault Tester")
            yield Stack(cluster, server, ("faults-web", response.json()["client_secret"]), username, password)
    finally:
        cluster.destroy()


@pytest.fixture
async def http(stack: Stack) -> Any:
    async with httpx.AsyncClient(base_url=stack.server.base_url, timeout=30) as client:
        yield client


# Helpers ---------------------------------------------------------------------------------------------------


async def register(http: httpx.AsyncClient, client_id: str) -> str:
    response = await http.put(
        f"/admin/clients/{client_id}",
        json={"name": client_id, "grant_types": ["client_credentials"], "scopes": ["read"]},
        headers=admin_headers(),
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["client_secret"])


async def client_credentials(http: httpx.AsyncClient, client_id: str, secret: str) -> httpx.Response:
    return await http.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret)
    )


async def refresh(http: httpx.AsyncClient, stack: Stack, token: str) -> httpx.Response:
    return await refresh_grant(http, token, headers=basic(*stack.web_client))


async def exchange(http: httpx.AsyncClient, stack: Stack, code: str, verifier: str) -> httpx.Response:
    return await redeem_code(http, code, verifier, REDIRECT_URI, headers=basic(*stack.web_client))


async def new_refresh_token(stack: Stack) -> str:
    """A fresh family: the real login and consent pages, then the code exchange."""
    async with httpx.AsyncClient(base_url=stack.server.base_url, timeout=30) as browser:
        # A previous test's restart may leave a stale pooled connection (one 503, then the pool is renewed).
        await retry_through_stale_connections(lambda: introspect_raw(browser, stack, "warm-up"))
        code, verifier = await authorize_code(
            browser, stack.web_client[0], REDIRECT_URI, stack.username, stack.password, scope="openid read"
        )
        response = await exchange(browser, stack, code, verifier)
    assert response.status_code == 200, response.text
    return str(response.json()["refresh_token"])


async def introspect_raw(http: httpx.AsyncClient, stack: Stack, token: str) -> httpx.Response:
    """Introspection of a refresh-token-shaped value: it needs the database."""
    return await http.post(
        "/introspect",
        data={"token": token, "token_type_hint": "refresh_token"},
        headers=basic(*stack.web_client),
    )


async def introspect(http: httpx.AsyncClient, stack: Stack, token: str) -> dict[str, Any]:
    response = await http.post(
        "/introspect",
        data={"token": token, "token_type_hint": "refresh_token"},
        headers=basic(*stack.web_client),
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def assert_clean_503(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "temporarily_unavailable"
    assert response.headers["retry-after"] == "1"
    assert response.headers["cache-control"] == "no-store"


async def poll(check, what: str, deadline_seconds: float = STATE_DEADLINE_SECONDS):  # type: ignore[no-untyped-def]
    """Call ``check`` until it returns something truthy, or fail after the deadline with the last value."""
    deadline = time.monotonic() + deadline_seconds
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} not seen within {deadline_seconds}s (last: {last!r})")


def condition(predicate):  # type: ignore[no-untyped-def]
    """A synchronous predicate as a check for :func:`poll`."""

    async def check() -> bool:
        return bool(predicate())

    return check


async def retry_through_stale_connections(request) -> httpx.Response:  # type: ignore[no-untyped-def]
    """After a restart the pool's old connections fail their first statement (a 503 each): retry past them."""

    async def attempt() -> httpx.Response | None:
        response = await request()
        return None if response.status_code == 503 else response

    return await poll(attempt, "an answer other than 503 after the restart")  # type: ignore[no-any-return]


async def wait_ready(http: httpx.AsyncClient) -> None:
    async def ready() -> bool:
        return (await http.get("/readyz")).status_code == 200

    await poll(ready, "readiness after the restart")


async def wait_blocked_on_lock(stack: Stack, table: str) -> None:
    """Until a session of the server waits for a row lock on ``table`` (pg_stat_activity, polled from a
    session of its own: inside a transaction the view is a snapshot)."""
    deadline = time.monotonic() + STATE_DEADLINE_SECONDS
    with stack.sql() as observer:
        observer.autocommit = True
        while time.monotonic() < deadline:
            waiting = observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE %s",
                (f"%{table}%",),
            ).fetchone()
            if waiting and waiting[0] > 0:
                return
            await asyncio.sleep(0.02)
    raise AssertionError(f"the server's statement never reached the lock on {table}")


# An outage during load -------------------------------------------------------------------------------------


@dataclass
class Load:
    """Background traffic during the outage; every answer is recorded with its latency."""

    http: httpx.AsyncClient
    cached_client: tuple[str, str]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    answers: list[tuple[str, int, float, str]] = field(default_factory=list)  # kind, status, seconds, error
    transport_errors: list[str] = field(default_factory=list)
    registered: dict[str, str] = field(default_factory=dict)  # acknowledged (201) during the load

    async def _record(self, kind: str, request) -> httpx.Response | None:  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            response = await request()
        except httpx.TransportError as error:
            self.transport_errors.append(f"{kind}: {type(error).__name__} {error}")
            return None
        error = ""
        if response.status_code >= 400:
            error = response.json().get("error", "") if response.content else ""
        self.answers.append((kind, response.status_code, time.perf_counter() - started, error))
        return response

    async def tokens(self) -> None:
        while not self.stop.is_set():
            await self._record(
                "client_credentials", lambda: client_credentials(self.http, *self.cached_client)
            )
            await asyncio.sleep(0.01)

    async def registrations(self, worker: int) -> None:
        number = 0
        while not self.stop.is_set():
            client_id = f"during-{worker}-{number}"
            number += 1
            body = {"name": client_id, "grant_types": ["client_credentials"], "scopes": ["read"]}
            response = await self._record(
                "register",
                partial(self.http.put, f"/admin/clients/{client_id}", json=body, headers=admin_headers()),
            )
            if response is not None and response.status_code == 201:
                self.registered[client_id] = response.json()["client_secret"]
            await asyncio.sleep(0.02)

    async def reads(self) -> None:
        while not self.stop.is_set():
            await self._record("admin_list", lambda: self.http.get("/admin/clients", headers=admin_headers()))
            await asyncio.sleep(0.02)


async def test_outage_under_load_fails_fast_and_recovers_without_losing_anything(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    server = stack.server
    pid = server.process.pid if server.process else None
    before = {f"before-{number}": await register(http, f"before-{number}") for number in range(5)}
    reserve = [await new_refresh_token(stack) for _ in range(3)]  # issued, not used until after the outage
    cached = ("cached-svc", await register(http, "cached-svc"))
    assert (await client_credentials(http, *cached)).status_code == 200  # now in the worker's client cache

    load = Load(http, cached)
    tasks = [
        asyncio.create_task(load.tokens()),
        asyncio.create_task(load.reads()),
        *(asyncio.create_task(load.registrations(worker)) for worker in range(LOAD_WORKERS - 2)),
    ]
    try:
        await poll(condition(lambda: len(load.registered) >= 4), "registrations under load")
        await stack.stop_database("fast")
        stopped_at = len(load.answers)

        async def not_ready() -> bool:
            return (await http.get("/readyz")).status_code == 503

        await poll(not_ready, "readiness going false")
        assert (await http.get("/healthz")).status_code == 200, "liveness must not depend on the database"

        # Everything that needs the database: a clean, fast 503.
        fresh = ("fresh-svc", "x" * 43)  # never looked up, so not cached: its lookup needs the database
        for name, request in {
            "admin read": lambda: http.get("/admin/clients/before-0", headers=admin_headers()),
            "admin write": lambda: http.put(
                "/admin/clients/while-down",
                json={"name": "x", "grant_types": ["client_credentials"]},
                headers=admin_headers(),
            ),
            "token for an uncached client": lambda: client_credentials(http, *fresh),
            "refresh rotation": lambda: refresh(http, stack, reserve[0]),
            "refresh introspection": lambda: http.post(
                "/introspect", data={"token": reserve[0]}, headers=basic(*stack.web_client)
            ),
        }.items():
            started = time.perf_counter()
            response = await request()
            elapsed = time.perf_counter() - started
            assert response.status_code == 503, f"{name}: {response.status_code} {response.text}"
            assert_clean_503(response)
            assert elapsed < FAIL_FAST_BOUND_SECONDS, f"{name} took {elapsed:.1f}s during the outage"

        # The cached client's tokens need no database until its cache entry expires; then 503 too.
        async def cached_client_refused() -> bool:
            return (await client_credentials(http, *cached)).status_code == 503

        await poll(cached_client_refused, "the cached client's requests reaching the database")
        await poll(condition(lambda: len(load.answers) > stopped_at + 20), "load during the outage")

        await stack.start_database()
        await wait_ready(http)
        restarted_at = len(load.answers)
        await poll(
            condition(lambda: any(a[:2] == ("register", 201) for a in load.answers[restarted_at:])),
            "the load's registrations acknowledged again after the restart",
        )
    finally:
        load.stop.set()
        await asyncio.gather(*tasks)

    assert server.running and server.process is not None and server.process.pid == pid, "no restart"
    assert not load.transport_errors, load.transport_errors[:5]
    slowest = max(seconds for _, _, seconds, _ in load.answers)
    assert slowest < FAIL_FAST_BOUND_SECONDS, f"a request took {slowest:.1f}s: requests must not hang"
    answers = {(kind, status, error) for kind, status, _, error in load.answers}
    allowed = {
        ("client_credentials", 200, ""),
        ("client_credentials", 503, "temporarily_unavailable"),
        ("admin_list", 200, ""),
        ("admin_list", 503, "temporarily_unavailable"),
        ("register", 201, ""),
        ("register", 503, "temporarily_unavailable"),
    }
    assert answers <= allowed, f"unexpected answers under the outage: {answers - allowed}"
    assert ("register", 503, "temporarily_unavailable") in answers, "the outage was never seen by the load"
    print(
        f"\ndatabase outage: {len(load.answers)} answers under load, slowest {slowest * 1000:.0f} ms, "
        f"{sum(1 for _, status, _, _ in load.answers if status == 503)} clean 503s, "
        f"{len(load.registered)} registrations acknowledged"
    )

    # Nothing acknowledged is lost: every client registered before and during the outage works ...
    listed = (await http.get("/admin/clients", params={"limit": 1000}, headers=admin_headers())).json()
    listed_ids = {client["client_id"] for client in listed}
    acknowledged = {**before, **load.registered}
    assert set(acknowledged) <= listed_ids, f"lost registrations: {set(acknowledged) - listed_ids}"
    for client_id, secret in acknowledged.items():
        response = await retry_through_stale_connections(partial(client_credentials, http, client_id, secret))
        assert response.status_code == 200, f"{client_id}: {response.text}"
    assert (await http.get("/admin/clients/while-down", headers=admin_headers())).status_code == 404
    # ... and every refresh token issued before the outage still rotates, once.
    for token in reserve:
        response = await retry_through_stale_connections(partial(refresh, http, stack, token))
        assert response.status_code == 200, response.text
        assert stack.live_tokens_of_family(token) == {presented(response.json()["refresh_token"])[1]}


# A restart in the middle of a code exchange and of a refresh rotation -------------------------------------


async def test_restart_during_a_code_exchange_leaves_the_code_usable_exactly_once(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    async with httpx.AsyncClient(base_url=stack.server.base_url, timeout=30) as browser:
        code, verifier = await authorize_code(
            browser, stack.web_client[0], REDIRECT_URI, stack.username, stack.password, scope="openid read"
        )
    holder = stack.sql()  # holds the code's row, so the server's redemption waits inside the database
    holder.execute("SELECT 1 FROM authorization_codes WHERE code_hash = %s FOR UPDATE", (sha256(code),))
    try:
        in_flight = asyncio.create_task(exchange(http, stack, code, verifier))
        await wait_blocked_on_lock(stack, "authorization_codes")
        started = time.perf_counter()
        await stack.stop_database("fast")  # terminates every session: the held one and the server's
        response = await asyncio.wait_for(in_flight, FAIL_FAST_BOUND_SECONDS + 10)
        elapsed = time.perf_counter() - started
    finally:
        holder.close()
    assert elapsed < FAIL_FAST_BOUND_SECONDS + 10  # pg_ctl stop itself waits for the shutdown
    # The stop terminates the lock holder and the server's session in some order: the redemption either
    # committed first (200) or was cut (a clean 503, and the code is untouched). Never anything else.
    assert response.status_code in (200, 503), response.text
    if response.status_code == 503:
        assert_clean_503(response)

    await stack.start_database()
    await wait_ready(http)
    redeemed = response
    if response.status_code == 503:
        redeemed = await retry_through_stale_connections(lambda: exchange(http, stack, code, verifier))
    assert redeemed.status_code == 200, redeemed.text
    refresh_token = redeemed.json()["refresh_token"]
    assert redeemed.json()["id_token"]
    assert stack.live_tokens_of_family(refresh_token) == {presented(refresh_token)[1]}
    assert (await introspect(http, stack, refresh_token))["active"] is True

    replay = await retry_through_stale_connections(lambda: exchange(http, stack, code, verifier))
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"


async def test_restart_during_a_refresh_rotation_never_half_rotates_the_family(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    old = await new_refresh_token(stack)
    holder = stack.sql()
    holder.execute("SELECT 1 FROM refresh_families WHERE family_id = %s FOR UPDATE", (presented(old)[0],))
    try:
        in_flight = asyncio.create_task(refresh(http, stack, old))
        await wait_blocked_on_lock(stack, "refresh_families")
        await stack.stop_database("immediate")  # a crash: no shutdown checkpoint, sessions cut
        response = await asyncio.wait_for(in_flight, FAIL_FAST_BOUND_SECONDS + 10)
    finally:
        holder.close()
    # Either the rotation committed before the stop (200) or it was cut (a clean 503, nothing changed).
    assert response.status_code in (200, 503), response.text

    await stack.start_database()
    await wait_ready(http)
    if response.status_code == 503:
        assert_clean_503(response)
        # Not rotated by the failed attempt: the old token is still the family's one live token.
        assert stack.live_tokens_of_family(old) == {presented(old)[1]}
        rotated = await retry_through_stale_connections(lambda: refresh(http, stack, old))
    else:
        rotated = response
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["refresh_token"]
    assert new != old
    assert stack.live_tokens_of_family(old) == {presented(new)[1]}, "exactly one live token: the new one"
    assert (await introspect(http, stack, old)) == {"active": False}
    assert (await introspect(http, stack, new))["active"] is True
    # And the new one rotates normally.
    again = await retry_through_stale_connections(lambda: refresh(http, stack, new))
    assert again.status_code == 200, again.text
    assert stack.live_tokens_of_family(old) == {presented(again.json()["refresh_token"])[1]}
