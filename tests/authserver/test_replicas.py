"""Many replicas behave as one: real servers behind a real HAProxy, on one PostgreSQL behind a real PgBouncer
(``harness.replicas``, deployed the way the operator renders an AuthServer).

One deployment for the whole module (starting replicas is the slow part), grown and shrunk by the tests in
file order: the per-client limit with 1, then 2, then 4 replicas; a replica added and one removed under load;
a revocation across every replica; and, sampled all along, PostgreSQL's connections against the budget.

The load is bounded in time, on loopback, paced (pacing is not synchronisation: it keeps the offered rate
a known multiple of the budget on a shared machine) and spread over several connections, which HAProxy
balances request by request.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import jwt
import pytest

from harness.authserver import run_cli
from harness.polling import wait_for
from harness.postgres import PostgresCluster, postgres_available
from harness.replicas import Replicas, running_replicas
from tests.support.oauth import admin_headers, basic
from tests.support.programs import require_program

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not postgres_available(), reason="PostgreSQL server binaries not found"),
]

MAX_REPLICAS = 5
MAX_CONNECTIONS = 20  # the AuthServer's spec.database.maxConnections: PgBouncer gets 90% of it
BUDGET = 20.0  # the per-client budget, requests per second for the whole server
# The offered load: several times the budget, so that every worker (up to 10) sees more than its share.
OFFERED_PER_SECOND = 120.0
CONNECTIONS = 8
WARM_UP_SECONDS = 1.0  # the buckets' bursts spent
WINDOW_SECONDS = 4.0
TOLERANCE = 0.15
# README "Rate limits": a worker counts the others on every revocation sync (500 ms); a worker that left
# is gone from every count within one period, one that was killed within four.
CONVERGENCE_SECONDS = 10.0
# A revocation is refused by every worker once it has synced: one period (500 ms) plus the sync's query;
# three periods allow for a machine shared with other work.
REVOCATION_BOUND_SECONDS = 1.5
# The server re-reads its key file within a second or two of a change; the client cache lives 2 s
# (AUTHSERVER_CLIENT_CACHE_TTL). Both bounds leave room for a loaded machine.
KEY_RELOAD_BOUND_SECONDS = 10.0
CLIENT_CACHE_BOUND_SECONDS = 4.0


FORM = {"grant_type": "client_credentials"}


@dataclass
class Outcome:
    at: float
    status: int | None  # None: a transport error
    detail: str = ""


@dataclass
class TokenLoad:
    """``CONNECTIONS`` clients asking for tokens of one client at ``OFFERED_PER_SECOND`` in all, from a
    thread of their own (the test's own thread may block on starting and stopping replicas meanwhile)."""

    url: str
    client_id: str
    secret: str
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    async def _connection(self, offset: float) -> None:
        interval = CONNECTIONS / OFFERED_PER_SECOND
        headers = basic(self.client_id, self.secret)
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            next_at = time.monotonic() + offset
            while not self._stop.is_set():
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += interval
                try:
                    response = await http.post(
                        "/token", data={"grant_type": "client_credentials"}, headers=headers
                    )
                    self.outcomes.append(Outcome(time.monotonic(), response.status_code, response.text[:200]))
                except httpx.HTTPError as error:
                    self.outcomes.append(Outcome(time.monotonic(), None, repr(error)))

    async def _run(self) -> None:
        spacing = 1 / OFFERED_PER_SECOND
        await asyncio.gather(*(self._connection(index * spacing) for index in range(CONNECTIONS)))

    def __enter__(self) -> TokenLoad:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(30)

    def admitted_per_second(self, start: float, end: float) -> float:
        return sum(1 for o in self.outcomes if start <= o.at < end and o.status == 200) / (end - start)

    def failures(self) -> list[Outcome]:
        """Anything but a token or a rate limit's 429."""
        return [o for o in list(self.outcomes) if o.status not in (200, 429)]


class ConnectionSampler:
    """The most connections PostgreSQL ever had from the deployment's database, sampled every 50 ms from a
    thread of its own (directly, not through PgBouncer, and from another database: it never counts itself)."""

    def __init__(self, cluster: PostgresCluster, database: str) -> None:
        self.cluster = cluster
        self.database = database
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        connection = await asyncpg.connect(self.cluster.dsn("postgres"))
        try:
            while not self._stop.is_set():
                count = await connection.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = $1 AND backend_type = 'client backend'",
                    self.database,
                )
                self.samples.append(int(count))
                await asyncio.sleep(0.05)
        finally:
            await connection.close()

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class Deployment:
    replicas: Replicas
    client_id: str
    secret: str
    connections: ConnectionSampler


@pytest.fixture(scope="module")
def deployment(
    postgres_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    require_program("haproxy", "AUTHYARD_REQUIRE_HAPROXY")
    require_program("pgbouncer", "AUTHYARD_REQUIRE_PGBOUNCER")
    directory = tmp_path_factory.mktemp("replicas")
    spec = {
        "rateLimits": {
            "perClient": {"requestsPerSecond": 200, "burst": 400},
            "perAddress": {"requestsPerSecond": 0, "burst": 1},  # every client is 127.0.0.1 here
        }
    }
    with running_replicas(
        directory, postgres_cluster, 1, max_replicas=MAX_REPLICAS, max_connections=MAX_CONNECTIONS, spec=spec
    ) as replicas:
        with ConnectionSampler(postgres_cluster, replicas.database_name) as connections:
            # The client's own budget, as an OAuthClient's spec.rateLimit registers it.
            registered = httpx.put(
                f"{replicas.base_url}/admin/clients/limited",
                json={
                    "name": "limited",
                    "grant_types": ["client_credentials"],
                    "rate_limit": {"requests_per_second": BUDGET, "burst": int(BUDGET)},
                },
                headers=admin_headers(),
                timeout=10,
            )
            assert registered.status_code == 201, registered.text
            yield Deployment(replicas, "limited", registered.json()["client_secret"], connections)


def _live_worker_counts(replicas: Replicas) -> list[float]:
    """``authserver_live_workers`` of every worker of every replica, from each replica's /metrics."""
    counts = []
    for replica in replicas.replicas:
        text = httpx.get(f"{replica.server.base_url}/metrics", timeout=5).text
        counts += [
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("authserver_live_workers{")
        ]
    return counts


async def _converged(replicas: Replicas) -> None:
    """Every worker of every replica counts exactly the workers running."""
    workers = 2 * len(replicas.replicas)
    await wait_for(
        lambda: _live_worker_counts(replicas) == [workers] * workers,
        CONVERGENCE_SECONDS,
        message=lambda: f"live worker counts {_live_worker_counts(replicas)}, expected {workers} each",
    )


async def _measure(deployment: Deployment) -> tuple[float, TokenLoad]:
    """Admitted tokens per second over a window that starts once the first answer is in and the buckets'
    bursts (filled while idle) are spent."""
    replicas = deployment.replicas
    await _converged(replicas)
    with TokenLoad(replicas.base_url, deployment.client_id, deployment.secret) as load:
        await wait_for(lambda: load.outcomes, 30)
        first = load.outcomes[0]
        start = first.at + WARM_UP_SECONDS
        end = start + WINDOW_SECONDS
        await wait_for(lambda: load.outcomes[-1].at >= end, 2 * (end - first.at) + 10)
    return load.admitted_per_second(start, end), load


@pytest.mark.parametrize("replica_count", [1, 2, 4])
async def test_the_per_client_limit_holds_for_the_whole_server_with_any_number_of_replicas(
    deployment: Deployment, replica_count: int
) -> None:
    replicas = deployment.replicas
    missing = replica_count - len(replicas.replicas)
    if missing > 0:
        replicas.add_replicas(missing)
    assert len(replicas.replicas) == replica_count
    admitted, load = await _measure(deployment)
    assert load.failures() == [], load.failures()[:5]
    offered = len(load.outcomes) / (load.outcomes[-1].at - load.outcomes[0].at)
    assert offered > 3 * BUDGET, f"the machine offered only {offered:.0f}/s: the limit was not exercised"
    # Per worker the old limit would have admitted the budget each: 2, 4 and 8 times as many.
    assert abs(admitted - BUDGET) <= TOLERANCE * BUDGET, (
        f"{admitted:.1f}/s admitted with {replica_count} replicas; budget {BUDGET}/s"
    )
    # Every replica took its part (HAProxy balances each request).
    for replica in replicas.replicas:
        assert sum(replica.server.requests_by_worker("/token").values()) > 0


async def test_a_replica_added_and_one_removed_under_load_fail_no_request(deployment: Deployment) -> None:
    replicas = deployment.replicas
    before = len(replicas.replicas)
    with TokenLoad(replicas.base_url, deployment.client_id, deployment.secret) as load:
        await wait_for(lambda: len(load.outcomes) > 50, 10)
        added = replicas.add_replica()
        await _converged(replicas)
        assert replicas.remove_replica(replicas.replicas[0]) == 0  # SIGTERM: drained, then a clean exit
        await _converged(replicas)
        settled = time.monotonic()
        await wait_for(lambda: load.outcomes[-1].at >= settled + WARM_UP_SECONDS + WINDOW_SECONDS, 30)
    assert len(replicas.replicas) == before and added in replicas.replicas
    assert load.failures() == [], f"{len(load.failures())} failed requests, e.g. {load.failures()[:5]}"
    assert sum(added.server.requests_by_worker("/token").values()) > 0
    # Shares converged again after both changes: the budget holds.
    window = (settled + WARM_UP_SECONDS, settled + WARM_UP_SECONDS + WINDOW_SECONDS)
    assert abs(load.admitted_per_second(*window) - BUDGET) <= TOLERANCE * BUDGET


async def test_a_revocation_is_refused_by_every_replica_within_the_bound(deployment: Deployment) -> None:
    replicas = deployment.replicas
    async with httpx.AsyncClient(base_url=replicas.base_url, timeout=10) as http:
        # Another client: the limited one may still be over its budget from the test before.
        created = await http.put(
            "/admin/clients/revoker",
            json={"name": "r", "grant_types": ["client_credentials"]},
            headers=admin_headers(),
        )
        secret = created.json()["client_secret"]
        token = (
            await http.post(
                "/token", data={"grant_type": "client_credentials"}, headers=basic("revoker", secret)
            )
        ).json()["access_token"]
    # Four kept-alive connections to each replica: its connection balancing spreads them over both workers.
    probes = [
        httpx.AsyncClient(
            base_url=replica.server.base_url, timeout=10, limits=httpx.Limits(max_connections=1)
        )
        for replica in replicas.replicas
        for _ in range(4)
    ]
    async with contextlib.AsyncExitStack() as stack:
        for probe in probes:
            await stack.enter_async_context(probe)

        async def active(probe: httpx.AsyncClient) -> bool:
            response = await probe.post(
                "/introspect", data={"token": token}, headers=basic("revoker", secret)
            )
            return bool(response.json()["active"])

        assert all(await asyncio.gather(*(active(probe) for probe in probes)))
        async with httpx.AsyncClient(base_url=replicas.base_url, timeout=10) as http:
            revoked = await http.post(
                "/revoke",
                data={"token": token, "token_type_hint": "access_token"},
                headers=basic("revoker", secret),
            )
        assert revoked.status_code == 200
        revoked_at = time.monotonic()

        async def refused_everywhere() -> bool:
            return not any(await asyncio.gather(*(active(probe) for probe in probes)))

        await wait_for(
            refused_everywhere,  # type: ignore[arg-type]  # wait_for's annotation does not fit an async bool
            REVOCATION_BOUND_SECONDS,
            interval=0.02,
            message=lambda: "some replica still answers active",
        )
        assert time.monotonic() - revoked_at <= REVOCATION_BOUND_SECONDS


ONE_CONNECTION = httpx.Limits(max_connections=1)


async def _new_client(replicas: Replicas, client_id: str, scopes: list[str]) -> str:
    """A client of its own (the rate-limited one may still be over budget); its secret."""
    async with httpx.AsyncClient(base_url=replicas.base_url, timeout=10) as http:
        created = await http.put(
            f"/admin/clients/{client_id}",
            json={"name": client_id, "grant_types": ["client_credentials"], "scopes": scopes},
            headers=admin_headers(),
        )
    assert created.status_code in (200, 201), created.text
    return str(created.json()["client_secret"])


def _replica_probes(replicas: Replicas, per_replica: int = 2) -> list[httpx.AsyncClient]:
    """Kept-alive connections straight to each replica (several: its balancing spreads them over both
    workers), around the load balancer."""
    return [
        httpx.AsyncClient(
            base_url=replica.server.base_url, timeout=10, limits=httpx.Limits(max_connections=1)
        )
        for replica in replicas.replicas
        for _ in range(per_replica)
    ]


async def test_a_signing_key_rotation_reaches_every_replica_and_every_token_verifies_everywhere(
    deployment: Deployment, tmp_path: Path
) -> None:
    """The key file replaced as a Secret update replaces it (``authserver keys rotate``: the next key, already
    published, becomes active): every replica signs with the new key within the bound, and meanwhile every
    token any replica signs is active at every replica (no verification fails while they switch one by
    one)."""
    replicas = deployment.replicas
    secret = await _new_client(replicas, "rotation-probe", [])
    probes = _replica_probes(replicas)
    failed: list[str] = []

    async def kid_minted_by(probe: httpx.AsyncClient) -> str:
        answer = await probe.post("/token", data=FORM, headers=basic("rotation-probe", secret))
        token = answer.json()["access_token"]
        for checker in probes:
            checked = await checker.post(
                "/introspect", data={"token": token}, headers=basic("rotation-probe", secret)
            )
            if not checked.json()["active"]:
                failed.append(f"{probe.base_url} signed, {checker.base_url} refused")
        return str(jwt.get_unverified_header(token)["kid"])

    async with contextlib.AsyncExitStack() as stack:
        for probe in probes:
            await stack.enter_async_context(probe)
        before = set(await asyncio.gather(*(kid_minted_by(probe) for probe in probes)))
        assert len(before) == 1
        rotated = run_cli(["keys", "rotate"], replicas.environment(tmp_path), tmp_path)
        assert rotated.returncode == 0, rotated.stderr
        started = time.monotonic()

        async def all_switched() -> bool:
            kids = set(await asyncio.gather(*(kid_minted_by(probe) for probe in probes)))
            return kids.isdisjoint(before) and len(kids) == 1

        await wait_for(all_switched, KEY_RELOAD_BOUND_SECONDS, interval=0.05)  # type: ignore[arg-type]
        assert time.monotonic() - started <= KEY_RELOAD_BOUND_SECONDS
    assert failed == [], failed[:5]


async def test_a_client_update_is_seen_by_every_replica_within_the_cache_bound(
    deployment: Deployment,
) -> None:
    """A client given a new scope through the admin API (as the operator does after an OAuthClient edit):
    every worker of every replica, each with a cached copy, grants it within the client cache's lifetime."""
    replicas = deployment.replicas
    secret = await _new_client(replicas, "updated-client", ["orders.read"])
    probes = _replica_probes(replicas)
    credentials = basic("updated-client", secret)
    async with contextlib.AsyncExitStack() as stack:
        for probe in probes:
            await stack.enter_async_context(probe)
        wider = {**FORM, "scope": "orders.write"}
        refusals = await asyncio.gather(
            *(probe.post("/token", data=wider, headers=credentials) for probe in probes)
        )
        assert all(answer.status_code == 400 for answer in refusals)  # every worker now caches the client
        await _new_client(replicas, "updated-client", ["orders.read", "orders.write"])
        updated = time.monotonic()

        async def granted_everywhere() -> bool:
            answers = await asyncio.gather(
                *(probe.post("/token", data=wider, headers=credentials) for probe in probes)
            )
            return all(answer.status_code == 200 for answer in answers)

        await wait_for(granted_everywhere, CLIENT_CACHE_BOUND_SECONDS, interval=0.05)  # type: ignore[arg-type]
        assert time.monotonic() - updated <= CLIENT_CACHE_BOUND_SECONDS


def test_postgresql_never_had_more_connections_than_the_budget(deployment: Deployment) -> None:
    """All along the module (four and five replicas of two workers under load, each worker's pool sized for
    PgBouncer), PostgreSQL saw no more connections than the pool the operator computed for PgBouncer."""
    sizing = deployment.replicas.sizing
    samples = deployment.connections.samples
    assert len(samples) > 100 and max(samples) > 0
    assert max(samples) <= sizing.aggregate_max <= 0.9 * MAX_CONNECTIONS, (max(samples), sizing)
    # What PgBouncer saved: the workers' pools together could have opened more than the database allows.
    assert MAX_REPLICAS * sizing.per_pod_max > sizing.aggregate_max
