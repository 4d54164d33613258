"""``python -m bench --clients N``: the seeded clients are ones a real server issues tokens to, each with its
own secret, and the option's bounds."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from bench import seed
from bench.__main__ import MAX_SEEDED, parse_args
from harness.authserver import running_server


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


def test_the_option_is_bounded() -> None:
    assert parse_args(["--clients", "10000"]).clients == 10000
    assert parse_args([]).clients is None
    for bad in ("0", str(MAX_SEEDED + 1)):
        with pytest.raises(SystemExit):
            parse_args(["--clients", bad])
