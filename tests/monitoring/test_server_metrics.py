"""The auth server's metrics hold what the chart's alerts and dashboard read, also when a request never
reaches a route, and from the moment a worker starts.

Both were found by the real Prometheus (test_prometheus_scrape.py): the token endpoint's 5xx ratio had no
data under an overload, because the edge's refusals (503, 413, 431) were not counted; and a counter born with
its first increment loses that increment to rate(), so a label value known in advance is exported at 0.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from authserver.observability import metrics
from authserver.storage import sql_store
from authserver.web.app import create_app
from harness.authserver import running_server
from tests.conftest import make_settings


@pytest.fixture
async def app_http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", max_in_flight=1)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http:
            http.app = app  # type: ignore[attr-defined]
            yield http


def _requests(method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value("authserver_http_requests_total", labels) or 0.0


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("POST", "/token", "/token"),  # a fast route
        ("GET", "/admin/clients/c-1", "/admin/clients/{client_id}"),  # a framework route: its template
        ("DELETE", "/.well-known/jwks.json", "/.well-known/jwks.json"),  # another method: still that route
        ("GET", "/no/such/path", "unmatched"),
    ],
)
async def test_an_overload_503_is_counted_under_the_route_it_was_for(
    app_http: httpx.AsyncClient, method: str, path: str, route: str
) -> None:
    edge = app_http.app.edge  # type: ignore[attr-defined]
    before = _requests(method, route, 503)
    edge.in_flight.count = edge.in_flight.limit  # as if a slow request were running
    try:
        response = await app_http.request(method, path)
    finally:
        edge.in_flight.count = 0
    assert response.status_code == 503
    assert _requests(method, route, 503) == before + 1


async def test_oversized_requests_are_counted_too(app_http: httpx.AsyncClient) -> None:
    before_413, before_431 = _requests("POST", "/token", 413), _requests("POST", "/token", 431)
    too_long = await app_http.post("/token", content=b"x", headers={"content-length": "99999999"})
    too_many_headers = await app_http.post("/token", headers={"x-padding": "p" * 20000})
    assert (too_long.status_code, too_many_headers.status_code) == (413, 431)
    assert _requests("POST", "/token", 413) == before_413 + 1
    assert _requests("POST", "/token", 431) == before_431 + 1


def test_the_batched_writes_named_in_the_store_are_the_ones_exported_from_the_start() -> None:
    assert set(sql_store._WRITE_NAMES.values()) == set(metrics.BATCHED_WRITES)


def test_known_label_sets_are_exported_at_zero_before_any_request(tmp_path: Path) -> None:
    with running_server(tmp_path / "server", workers=2) as server:
        text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    for limit in metrics.RATE_LIMITS:
        assert samples[("authserver_rate_limited_total", (("limit", limit),))] == 0
    for write in metrics.BATCHED_WRITES:
        assert samples[("authserver_db_write_batch_size_count", (("write", write),))] == 0
