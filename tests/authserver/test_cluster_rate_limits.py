"""Token-endpoint rate limits through the application, on both databases: a client's registered budget wins
over the server default (admin API and CLI), and the per-address budget keys on the real client address
(X-Forwarded-For only from a trusted proxy, never from anyone else)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from authserver.config import Settings
from tests.conftest import settings_for
from tests.support.oauth import admin_headers, basic, register

TRUSTED_PROXY = ("10.1.2.3", 1234)  # the peer of conftest's app_client
PER_ADDRESS = 3


@pytest.fixture(scope="module")
def settings(backend: str, request: pytest.FixtureRequest) -> Settings:
    return settings_for(
        backend,
        request,
        token_rate_per_client=1000.0,
        token_burst_per_client=1000,
        token_rate_per_ip=0.5,  # slow enough that no request refills a bucket during a test
        token_burst_per_ip=PER_ADDRESS,
        trusted_proxies=["10.0.0.0/8"],
    )


def _address() -> str:
    return f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(256)}"


async def _statuses(
    http: httpx.AsyncClient, client_id: str, secret: str, forwarded_for: Sequence[str]
) -> list[int]:
    statuses = []
    for address in forwarded_for:
        response = await http.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers={**basic(client_id, secret), "X-Forwarded-For": address},
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.json()["error"] == "slow_down" and int(response.headers["Retry-After"]) >= 1
    return statuses


async def test_a_clients_registered_rate_limit_wins_over_the_server_default(
    app_client: httpx.AsyncClient,
) -> None:
    limited, created = await register(app_client, rate_limit={"requests_per_second": 0.5, "burst": 2})
    assert created["rate_limit"] == {"requests_per_second": 0.5, "burst": 2}
    # Each request from its own address: only the client's budget can refuse.
    assert await _statuses(app_client, limited, created["client_secret"], [_address() for _ in range(4)]) == [
        200,
        200,
        429,
        429,
    ]
    default, other = await register(app_client)
    assert other["rate_limit"] is None
    assert (
        await _statuses(app_client, default, other["client_secret"], [_address() for _ in range(6)])
        == [200] * 6
    )
    # Dropping the registered limit gives the client the server's default again.
    again = await app_client.put(
        f"/admin/clients/{limited}",
        headers=admin_headers(),
        json={"name": limited, "grant_types": ["client_credentials"], "scopes": ["read", "write"]},
    )
    assert again.status_code == 200 and again.json()["rate_limit"] is None


@pytest.mark.parametrize(
    "rate_limit",
    [
        {"requests_per_second": 0, "burst": 1},
        {"requests_per_second": -1, "burst": 1},
        {"requests_per_second": 1, "burst": 0},
        {"requests_per_second": 1},
        {"requests_per_second": 1, "burst": 1, "per_address": True},
        {"requests_per_second": "fast", "burst": 1},
        [1, 1],
    ],
)
async def test_a_bad_rate_limit_is_refused(app_client: httpx.AsyncClient, rate_limit: object) -> None:
    response = await app_client.put(
        "/admin/clients/bad-limit",
        headers=admin_headers(),
        json={"name": "bad", "grant_types": ["client_credentials"], "rate_limit": rate_limit},
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_request", response.text


async def test_the_per_address_limit_keys_on_the_address_a_trusted_proxy_forwards(
    app_client: httpx.AsyncClient,
) -> None:
    client_id, created = await register(app_client)
    secret = created["client_secret"]
    first, second = _address(), _address()
    assert await _statuses(app_client, client_id, secret, [first] * (PER_ADDRESS + 1)) == [
        200
    ] * PER_ADDRESS + [429]
    # Another client address behind the same proxy has a budget of its own.
    assert await _statuses(app_client, client_id, secret, [second]) == [200]


async def test_the_per_address_limit_ignores_x_forwarded_for_from_an_untrusted_peer(
    app_client: httpx.AsyncClient,
) -> None:
    client_id, created = await register(app_client)
    app = app_client.app  # type: ignore[attr-defined]  # set by conftest's app_client
    direct = httpx.ASGITransport(app=app, client=("203.0.113.50", 4321))
    async with httpx.AsyncClient(transport=direct, base_url="http://testserver") as http:
        # A new X-Forwarded-For on every request does not buy a new budget: the peer is the client.
        statuses = await _statuses(http, client_id, created["client_secret"], [_address() for _ in range(5)])
    assert statuses == [200] * PER_ADDRESS + [429, 429]


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authserver", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        check=False,
    )


def test_the_cli_registers_a_clients_rate_limit(tmp_path: Path) -> None:
    base = ("clients", "create", "--name", "Batch", "--grant-type", "client_credentials")
    created = _cli(tmp_path, *base, "--client-id", "batch", "--rate-limit", "2.5")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["rate_limit"] == {"requests_per_second": 2.5, "burst": 5}
    explicit = _cli(tmp_path, *base, "--client-id", "batch2", "--rate-limit", "5", "--rate-limit-burst", "1")
    assert json.loads(explicit.stdout)["rate_limit"] == {"requests_per_second": 5.0, "burst": 1}
    plain = _cli(tmp_path, *base, "--client-id", "plain")
    assert "rate_limit" not in json.loads(plain.stdout)  # the server's default
    lone_burst = _cli(tmp_path, *base, "--rate-limit-burst", "3")
    assert lone_burst.returncode == 2 and "--rate-limit-burst needs --rate-limit" in lone_burst.stderr
    zero = _cli(tmp_path, *base, "--rate-limit", "0")
    assert zero.returncode == 2 and "invalid client" in zero.stderr
