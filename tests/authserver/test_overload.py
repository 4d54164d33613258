"""Overload: a real single-worker server driven far past capacity answers fast 503/429, never times out.

The server runs with a small in-flight limit and per-IP / per-client rate limits on. The load is bounded in
time (``LOAD_SECONDS``) and count (``MAX_REQUESTS``), on loopback: ``CONCURRENCY`` keep-alive connections,
each sending its next request as soon as the previous one is answered. The mix is what a busy
authorization server sees: client_credentials token requests from a handful of clients, and a resource
server introspecting refresh tokens (a database read, so requests really overlap inside the worker and the
in-flight limit bites).

The load speaks HTTP/1.1 over plain asyncio streams: httpx's connection pool collapses to a few dozen
requests per second at this concurrency (the client, not the server, would be measured). Latency is from
writing the request to reading the whole answer on an open connection.

Loopback is a single source address, so every token request shares one per-IP bucket; its 429s count as
rejections like the in-flight 503s.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import httpx

from harness.authserver import running_server
from tests.support.oauth import admin_headers, basic

CONCURRENCY = 200
LOAD_SECONDS = 4.0
MAX_REQUESTS = 60_000
CLIENT_TIMEOUT_SECONDS = 10.0
CLIENTS = 4
ACCEPTED_P99_BOUND_SECONDS = 2.0
REJECTED_P99_BOUND_SECONDS = 1.0
RECOVERY_DEADLINE_SECONDS = 5.0

SERVER_ENV = {
    "AUTHSERVER_MAX_IN_FLIGHT": "8",
    # Loopback is one address: the per-IP bucket is shared by the whole load. The per-client rate is
    # set low so that token requests that get past the in-flight limit still meet a rate limit.
    "AUTHSERVER_TOKEN_RATE_PER_IP": "300",
    "AUTHSERVER_TOKEN_BURST_PER_IP": "150",
    "AUTHSERVER_TOKEN_RATE_PER_CLIENT": "10",
    "AUTHSERVER_TOKEN_BURST_PER_CLIENT": "10",
    "AUTHSERVER_LOG_LEVEL": "warning",
}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Outcome:
    accepted: list[float] = field(default_factory=list)
    rejected: dict[int, list[float]] = field(default_factory=dict)
    bad_rejections: list[str] = field(default_factory=list)  # rejections without the documented form
    unexpected: list[str] = field(default_factory=list)  # any other status
    transport_errors: list[str] = field(default_factory=list)  # timeouts, resets, refused connections

    @property
    def rejected_count(self) -> int:
        return sum(len(latencies) for latencies in self.rejected.values())

    @property
    def rejected_latencies(self) -> list[float]:
        return [value for values in self.rejected.values() for value in values]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Connection:
    """One HTTP/1.1 keep-alive connection: write a request, read its whole answer (Content-Length)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post_form(self, path: str, form: dict[str, str], authorization: str) -> Answer:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        body = urlencode(form).encode()
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nAuthorization: {authorization}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return Answer(int(status_line.split()[1]), headers, body)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def rejection_problem(answer: Answer) -> str | None:
    """None when a rejection is the documented fast answer; otherwise what is wrong with it."""
    expected = {503: "temporarily_unavailable", 429: "slow_down"}[answer.status]
    try:
        error = json.loads(answer.body).get("error")
    except ValueError:
        return f"{answer.status} with a non-JSON body {answer.body[:80]!r}"
    retry_after = answer.headers.get("retry-after", "")
    if error != expected or not retry_after.isdigit() or int(retry_after) < 1:
        return f"{answer.status} error={error!r} retry-after={retry_after!r}"
    return None


def basic_header(client: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{client[0]}:{client[1]}".encode()).decode()


async def drive(port: int, clients: list[tuple[str, str]], introspector: tuple[str, str]) -> Outcome:
    outcome = Outcome()
    deadline = time.monotonic() + LOAD_SECONDS
    budget = MAX_REQUESTS
    client_headers = [basic_header(client) for client in clients]
    introspector_header = basic_header(introspector)

    async def one(connection: Connection, index: int) -> Answer:
        if index % 2:
            return await connection.post_form(
                "/token", {"grant_type": "client_credentials"}, client_headers[index % len(clients)]
            )
        token = secrets.token_urlsafe(32)  # unknown: looked up by hash in the database, then inactive
        return await connection.post_form(
            "/introspect", {"token": token, "token_type_hint": "refresh_token"}, introspector_header
        )

    async def user(index: int) -> None:
        nonlocal budget
        connection = Connection(port)
        try:
            while time.monotonic() < deadline and budget > 0:
                budget -= 1
                started = time.perf_counter()
                try:
                    answer = await asyncio.wait_for(one(connection, index), CLIENT_TIMEOUT_SECONDS)
                except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
                    outcome.transport_errors.append(f"{type(error).__name__}: {error}")
                    await connection.close()
                    continue
                elapsed = time.perf_counter() - started
                if answer.status == 200:
                    outcome.accepted.append(elapsed)
                elif answer.status in (429, 503):
                    outcome.rejected.setdefault(answer.status, []).append(elapsed)
                    problem = rejection_problem(answer)
                    if problem:
                        outcome.bad_rejections.append(problem)
                else:
                    outcome.unexpected.append(f"{answer.status} {answer.body[:120]!r}")
        finally:
            await connection.close()

    await asyncio.gather(*(user(index) for index in range(CONCURRENCY)))
    return outcome


async def register(http: httpx.AsyncClient, client_id: str) -> tuple[str, str]:
    response = await http.put(
        f"/admin/clients/{client_id}",
        json={"name": client_id, "grant_types": ["client_credentials"], "scopes": ["read"]},
        headers=admin_headers(),
    )
    assert response.status_code in (200, 201), response.text
    return client_id, response.json()["client_secret"]


async def wait_until_answering(http: httpx.AsyncClient, client: tuple[str, str]) -> float:
    """Seconds until a token request answers 200 again after the load stopped (polled, with a deadline)."""
    stopped = time.monotonic()
    last = "nothing yet"
    while time.monotonic() - stopped < RECOVERY_DEADLINE_SECONDS:
        response = await http.post(
            "/token", data={"grant_type": "client_credentials"}, headers=basic(*client)
        )
        if response.status_code == 200:
            return time.monotonic() - stopped
        last = f"{response.status_code} {response.text[:120]}"
        await asyncio.sleep(0.05)
    raise AssertionError(f"no 200 within {RECOVERY_DEADLINE_SECONDS}s after the load stopped: {last}")


def report(outcome: Outcome, duration: float) -> None:
    total = len(outcome.accepted) + outcome.rejected_count
    by_status = ", ".join(f"{status}: {len(v)}" for status, v in sorted(outcome.rejected.items()))
    print(
        f"\noverload: {total} answers in {duration:.1f}s over {CONCURRENCY} connections; "
        f"accepted {len(outcome.accepted)}, rejected {outcome.rejected_count} ({by_status})"
    )
    for name, values in (("accepted", outcome.accepted), ("rejected", outcome.rejected_latencies)):
        if values:
            print(
                f"overload: {name} p50 {statistics.median(values) * 1000:.1f} ms, "
                f"p99 {percentile(values, 0.99) * 1000:.1f} ms, max {max(values) * 1000:.1f} ms"
            )


async def test_overload_is_refused_fast_and_recovers_at_once(tmp_path: Path) -> None:
    with running_server(tmp_path / "server", **SERVER_ENV) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            clients = [await register(http, f"load-{number}") for number in range(CLIENTS)]
            introspector = await register(http, "load-introspector")

            started = time.monotonic()
            outcome = await drive(server.port, clients, introspector)
            report(outcome, time.monotonic() - started)

            assert not outcome.transport_errors, (
                f"{len(outcome.transport_errors)} requests timed out or lost their connection: "
                f"{outcome.transport_errors[:5]}"
            )
            assert not outcome.unexpected, f"unexpected answers: {outcome.unexpected[:5]}"
            assert not outcome.bad_rejections, f"malformed rejections: {outcome.bad_rejections[:5]}"
            assert outcome.rejected.get(503), "the in-flight limit never refused anything"
            assert outcome.rejected.get(429), "the rate limits never refused anything"
            assert len(outcome.accepted) > 0, "the server accepted nothing under load"
            assert percentile(outcome.accepted, 0.99) < ACCEPTED_P99_BOUND_SECONDS
            assert percentile(outcome.rejected_latencies, 0.99) < REJECTED_P99_BOUND_SECONDS

            recovered_after = await wait_until_answering(http, clients[0])
            print(f"overload: answering 200 again {recovered_after * 1000:.0f} ms after the load stopped")
            assert (await http.get("/readyz")).status_code == 200
            metrics = (await http.get("/metrics")).text
        counted = [
            float(line.split()[-1])
            for line in metrics.splitlines()
            if line.startswith("authserver_overload_rejected_total")
        ]
        assert counted and counted[0] >= len(outcome.rejected[503]), "the refusals are not in /metrics"
