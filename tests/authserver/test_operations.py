"""Discovery, keys and their reload, health, metrics, rate limits, overload, headers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from authserver.crypto.keyset import write_document_atomically
from authserver.crypto.keyset_document import rotate
from authserver.web.app import create_app
from tests.conftest import make_settings
from tests.support.oauth import basic, register


async def test_metadata_lists_every_endpoint(app_client: httpx.AsyncClient) -> None:
    metadata = (await app_client.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["issuer"] == "http://testserver"
    for name, path in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("revocation_endpoint", "/revoke"),
        ("introspection_endpoint", "/introspect"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/.well-known/jwks.json"),
    ]:
        assert metadata[name] == f"http://testserver{path}"
        assert (await app_client.get(path)).status_code != 404
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert set(metadata["grant_types_supported"]) == {
        "client_credentials",
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    }  # the JWT bearer grant only with a trusted issuer (none configured here)
    assert "password" not in metadata["grant_types_supported"]
    oidc = (await app_client.get("/.well-known/openid-configuration")).json()
    assert (
        oidc["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
        and oidc["issuer"] == metadata["issuer"]
    )


async def test_jwks_publishes_active_and_next_keys_without_private_parts(
    app_client: httpx.AsyncClient,
) -> None:
    response = await app_client.get("/.well-known/jwks.json")
    keys = response.json()["keys"]
    # Active and next of ES256 (access tokens) and of RS256 (ID tokens, OIDC Core §15.1).
    assert sorted(k["alg"] for k in keys) == ["ES256", "ES256", "RS256", "RS256"]
    assert all(k["use"] == "sig" and k["kid"] for k in keys)
    assert all("d" not in key for key in keys)
    assert response.headers["content-type"].startswith("application/jwk-set+json")


async def test_health_and_metrics(app_client: httpx.AsyncClient) -> None:
    assert (await app_client.get("/healthz")).json() == {"status": "ok"}
    ready = await app_client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    client_id, body = await register(app_client)
    await app_client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, body["client_secret"])
    )
    text = (await app_client.get("/metrics")).text
    assert (
        f'authserver_tokens_issued_total{{client_id="{client_id}",grant_type="client_credentials"}} 1.0'
        in text
    )
    assert 'authserver_http_requests_total{method="POST",route="/token",status="200"}' in text
    assert "authserver_http_request_duration_seconds_bucket" in text
    assert "authserver_db_pool_max_size" in text


async def test_security_headers_on_every_response(app_client: httpx.AsyncClient) -> None:
    for path in ("/.well-known/jwks.json", "/healthz", "/nope"):
        response = await app_client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    missing = await app_client.get("/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


@pytest.fixture
async def small_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """An app with tight limits and a fast key reload, on SQLite."""
    settings = make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        token_rate_per_client=1,
        token_burst_per_client=3,
        token_rate_per_ip=0,
        keys_reload_interval="50ms",
        max_in_flight=2,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            http.app = app  # type: ignore[attr-defined]
            yield http, settings


async def test_per_client_rate_limit_answers_429_with_retry_after(small_server) -> None:
    http, _ = small_server
    client_id, body = await register(http)
    statuses = []
    for _ in range(5):
        response = await http.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers=basic(client_id, body["client_secret"]),
        )
        statuses.append(response.status_code)
    assert statuses[:3] == [200, 200, 200] and statuses[3] == 429
    assert response.json()["error"] == "slow_down" and int(response.headers["retry-after"]) >= 1
    other_id, other = await register(http)
    assert (
        await http.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers=basic(other_id, other["client_secret"]),
        )
    ).status_code == 200


async def test_overload_is_a_fast_503(small_server) -> None:
    http, _ = small_server
    in_flight = http.app.edge.in_flight  # type: ignore[attr-defined]
    in_flight.count = in_flight.limit  # as if two slow requests were running
    try:
        started = time.perf_counter()
        response = await http.get("/.well-known/jwks.json")
        assert response.status_code == 503 and response.headers["retry-after"] == "1"
        assert response.json()["error"] == "temporarily_unavailable"
        assert time.perf_counter() - started < 1
        assert (await http.get("/healthz")).status_code == 200  # liveness is never refused
    finally:
        in_flight.count = 0
    assert (await http.get("/.well-known/jwks.json")).status_code == 200


async def test_an_unexpected_error_on_a_fast_route_is_a_json_500_that_leaks_nothing(
    small_server, caplog: pytest.LogCaptureFixture
) -> None:
    """The token route answers before FastAPI's own error middleware: a bug there must still end as
    RFC 6749 JSON with the security headers, the details only in the log."""
    http, _ = small_server
    client_id, body = await register(http)
    services = http.app.state.services  # type: ignore[attr-defined]

    async def broken(*_args: object) -> None:
        raise RuntimeError("internal detail 7f3a")

    services.token_endpoint.handle = broken
    response = await http.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, body["client_secret"])
    )
    assert response.status_code == 500
    assert response.json()["error"] == "server_error"
    assert "7f3a" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-type"] == "application/json"
    assert any("7f3a" in record.exc_text for record in caplog.records if record.exc_text)
    metrics_text = (await http.get("/metrics")).text
    assert 'route="/token",status="500"' in metrics_text


async def test_key_rotation_reloads_without_breaking_issued_tokens(small_server) -> None:
    http, settings = small_server
    client_id, body = await register(http)

    async def token() -> str:
        response = await http.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers=basic(client_id, body["client_secret"]),
        )
        return response.json()["access_token"]

    before = await token()
    old_kid = jwt.get_unverified_header(before)["kid"]
    document = json.loads(settings.signing_keys_file.read_text())
    rotated = rotate(document, "ES256", time.time(), 3600, ["RS256"])
    write_document_atomically(settings.signing_keys_file, rotated)

    deadline = time.monotonic() + 5
    services = http.app.state.services  # type: ignore[attr-defined]
    # The server's own file watcher picks the change up; poll for its effect with a deadline.
    while services.keyset().active_kid != rotated["active_kid"] and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert services.keyset().active_kid == rotated["active_kid"] != old_kid
    # The key that signs now was already published before the rotation (it was the 'next' key).
    assert rotated["active_kid"] in [k["kid"] for k in document["keys"]]
    after = await token()
    assert jwt.get_unverified_header(after)["kid"] == rotated["active_kid"]
    kids = [key["kid"] for key in (await http.get("/.well-known/jwks.json")).json()["keys"]]
    assert old_kid in kids and rotated["active_kid"] in kids and len(kids) == 6  # two algorithms' keys
    for issued in (before, after):
        introspection = await http.post(
            "/introspect", data={"token": issued}, headers=basic(client_id, body["client_secret"])
        )
        assert introspection.json()["active"] is True

    # A broken key file is ignored: the server keeps serving with the keys it has.
    settings.signing_keys_file.write_text("{not json")
    await asyncio.sleep(0.2)
    assert (await http.get("/.well-known/jwks.json")).json()["keys"]
    assert (
        await http.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers=basic(client_id, body["client_secret"]),
        )
    ).status_code == 200


async def test_cors_allows_only_configured_origins(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        cors_allowed_origins=["https://app.example.com"],
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as http:
            preflight = {
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization",
            }
            allowed = await http.options("/token", headers={"Origin": "https://app.example.com", **preflight})
            assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
            refused = await http.options(
                "/token", headers={"Origin": "https://evil.example.com", **preflight}
            )
            assert "access-control-allow-origin" not in refused.headers


def test_a_worker_loads_the_migration_tool_only_when_it_migrates() -> None:
    """alembic and mako cost each worker about 8 MiB: PostgreSQL workers (no auto-migration) skip them."""
    probe = (
        "import sys, authserver.web.app; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'mako'}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
