"""The token metrics' client_id label is bounded (AUTHSERVER_METRICS_MAX_CLIENTS): a fresh application with
a bound of 10, and 11 clients getting a token each."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from authserver.config import Settings
from tests.conftest import settings_for
from tests.support.oauth import basic, register

METRICS_MAX_CLIENTS = 10
_SERIES = re.compile(
    r'^authserver_tokens_issued_total\{client_id="([^"]*)",grant_type="client_credentials"\} (\S+)$', re.M
)


@pytest.fixture(scope="module")
def settings(backend: str, request: pytest.FixtureRequest) -> Settings:
    return settings_for(backend, request, metrics_max_clients=METRICS_MAX_CLIENTS)


def _tokens_by_client(text: str) -> dict[str, float]:
    return {client_id: float(value) for client_id, value in _SERIES.findall(text)}


async def test_eleven_clients_with_a_bound_of_ten_make_ten_series_and_other(
    app_client: httpx.AsyncClient,
) -> None:
    """The first ten clients this application sees get a series each; the eleventh is counted under
    client_id="other". (Series of other modules' clients, in the same registry, are left out.)"""
    before = _tokens_by_client((await app_client.get("/metrics")).text)
    prefix = f"m-{uuid.uuid4().hex[:6]}"
    for n in range(11):
        client_id, body = await register(app_client, f"{prefix}-{n:02}")
        response = await app_client.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers=basic(client_id, body["client_secret"]),
        )
        assert response.status_code == 200, response.text
    after = _tokens_by_client((await app_client.get("/metrics")).text)
    assert {client_id: after[client_id] for client_id in after if client_id.startswith(prefix)} == {
        f"{prefix}-{n:02}": 1.0 for n in range(10)
    }
    assert after["other"] - before.get("other", 0.0) == 1.0
