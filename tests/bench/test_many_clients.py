"""``python -m bench --clients N``: the seeded clients are ones a real server issues tokens to, each with its
own secret, and the option's bounds."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from bench import seed, wrk
from bench.__main__ import MAX_SEEDED, parse_args
from harness.authserver import ADMIN_TOKEN, running_server
from harness.polling import wait_for


def test_rows_have_distinct_ids_and_secrets_and_store_only_a_hash() -> None:
    rows, basics = seed.service_client_rows(50, datetime.now(UTC))
    pairs = [base64.b64decode(basic).decode().split(":", 1) for basic in basics]
    assert [row["client_id"] for row in rows] == [client_id for client_id, _ in pairs]
    assert len({client_id for client_id, _ in pairs}) == len({secret for _, secret in pairs}) == 50
    assert all(secret not in str(row) for row, (_, secret) in zip(rows, pairs, strict=True))


def test_a_server_issues_tokens_to_the_seeded_clients_and_only_with_their_own_secret(tmp_path: Path) -> None:
    directory = tmp_path / "server"
    with running_server(directory) as server:
        path = tmp_path / "clients.txt"
        seed.seed_service_clients(f"sqlite+aiosqlite:///{directory / 'authserver.db'}", 20, path)
        basics = path.read_text().split()
        assert len(basics) == 20
        for basic in (basics[0], basics[19]):
            response = httpx.post(
                f"{server.base_url}/token",
                data={"grant_type": "client_credentials", "scope": seed.SERVICE_SCOPE},
                headers={"Authorization": f"Basic {basic}"},
            )
            assert response.status_code == 200, response.text
        first_id = base64.b64decode(basics[0]).decode().split(":")[0]
        other_secret = base64.b64decode(basics[1]).decode().split(":", 1)[1]
        response = httpx.post(
            f"{server.base_url}/token",
            data={"grant_type": "client_credentials"},
            auth=(first_id, other_secret),
        )
        assert response.status_code == 401


def test_wrk_spreads_the_requests_over_every_seeded_client(tmp_path: Path) -> None:
    """client_credentials_many.lua: every client gets tokens, none fails (the usage API counts them)."""
    if shutil.which("wrk") is None:
        if os.environ.get("AUTHYARD_REQUIRE_WRK"):
            pytest.fail("wrk is not installed; AUTHYARD_REQUIRE_WRK is set")
        pytest.skip("wrk is not installed (apt-get install wrk; scripts/bench.sh installs it)")
    directory = tmp_path / "server"
    limits_off = {"AUTHSERVER_TOKEN_RATE_PER_CLIENT": "0", "AUTHSERVER_TOKEN_RATE_PER_IP": "0"}  # as bench
    with running_server(directory, AUTHSERVER_USAGE_FLUSH_INTERVAL="1s", **limits_off) as server:
        path = tmp_path / "clients.txt"
        seed.seed_service_clients(f"sqlite+aiosqlite:///{directory / 'authserver.db'}", 30, path)
        env = {"BENCH_TOKEN_FILE": str(path), "BENCH_SCOPE": seed.SERVICE_SCOPE}
        result = wrk.run("client_credentials_many.lua", server.base_url, 4, 2, env)
        assert result["requests"] >= 60 and result["errors"] == 0, result

        def used() -> set[str]:
            response = httpx.get(
                f"{server.base_url}/admin/usage",
                params={"limit": 1000},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            response.raise_for_status()
            return {usage["client_id"] for usage in response.json()["clients"] if usage["tokens_last_hour"]}

        wanted = {f"{seed.MANY_CLIENTS_PREFIX}{index:06d}" for index in range(30)}
        asyncio.run(wait_for(lambda: used() >= wanted, 15, interval=0.2, message="a seeded client got none"))


def test_the_option_is_bounded() -> None:
    assert parse_args(["--clients", "10000"]).clients == 10000
    assert parse_args([]).clients is None
    for bad in ("0", str(MAX_SEEDED + 1)):
        with pytest.raises(SystemExit):
            parse_args(["--clients", bad])
