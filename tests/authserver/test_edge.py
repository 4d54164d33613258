"""The edge: the fast routes are derived from the route declarations, a route that declares more than its
request is the framework's (its dependencies run), and both paths share the guards, the exception
handlers, the security headers and the request metrics, with or without CORS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends
from fastapi.routing import iter_route_contexts
from starlette.requests import Request
from starlette.responses import Response

from authserver.protocol.errors import AccessDenied
from authserver.web.app import AuthServerApp, create_app
from authserver.web.errors import json_response
from authserver.web.fast_routes import fast_routes
from tests.conftest import make_settings
from tests.support.oauth import basic, register

HOT_ROUTES = {
    ("POST", "/token"),
    ("POST", "/introspect"),
    ("POST", "/revoke"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/authorize"),
    ("POST", "/authorize/login"),
    ("POST", "/authorize/consent"),
    ("GET", "/userinfo"),
    ("POST", "/userinfo"),
}


def _app(tmp_path: Path, **overrides: Any) -> AuthServerApp:
    return create_app(make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", **overrides))


def _served_by(request: Request) -> str:
    # FastAPI's router marks the scope of every request it routes; the edge's fast routes never pass it.
    return "framework" if "router" in request.scope else "edge"


class Probes:
    """Routes added to the application before it starts, each answering which path served it."""

    def __init__(self, app: AuthServerApp) -> None:
        self.dependency_calls = 0

        async def counted() -> None:
            self.dependency_calls += 1

        async def refuse() -> None:
            raise AccessDenied("refused by a dependency")

        async def break_down() -> None:
            raise RuntimeError("internal detail 5be1")

        async def plain(request: Request) -> Response:
            return json_response({"served_by": _served_by(request)})

        async def with_query(request: Request, q: str) -> Response:
            return json_response({"served_by": _served_by(request), "q": q})

        async def named(request: Request, name: str) -> Response:
            return json_response({"served_by": _served_by(request), "name": name})

        app.add_api_route("/probe/plain", plain, methods=["GET"])
        app.add_api_route("/probe/counted", plain, methods=["GET"], dependencies=[Depends(counted)])
        app.add_api_route("/probe/query", with_query, methods=["GET"])
        # Declared first, the path-parameter route is what FastAPI picks for /probe/shadowed too.
        app.add_api_route("/probe/{name}", named, methods=["GET"])
        app.add_api_route("/probe/shadowed", plain, methods=["GET"])
        guarded = APIRouter(prefix="/guarded", dependencies=[Depends(refuse)])
        guarded.add_api_route("/plain", plain, methods=["GET"])
        app.include_router(guarded)
        broken = APIRouter(prefix="/broken", dependencies=[Depends(break_down)])
        broken.add_api_route("/plain", plain, methods=["GET"])
        app.include_router(broken)


Probed = tuple[httpx.AsyncClient, AuthServerApp, Probes]


@pytest.fixture
async def probed(tmp_path: Path) -> AsyncIterator[Probed]:
    app = _app(tmp_path, max_body_bytes=4096)
    probes = Probes(app)
    async with app.router.lifespan_context(app):
        # The framework re-raises an unexpected error after its handler answered (for the server's log).
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http, app, probes


def test_the_hot_routes_are_served_by_their_declared_endpoints(tmp_path: Path) -> None:
    app = _app(tmp_path)
    table = fast_routes(app)
    assert HOT_ROUTES <= set(table)
    declared = {
        (method, context.path): context.endpoint
        for context in iter_route_contexts(app.routes)
        for method in context.methods or ()
    }
    for key in HOT_ROUTES:
        assert table[key].endpoint is declared[key]  # type: ignore[attr-defined]  # set by request_endpoint
    # Every GET fast route answers HEAD too (RFC 9110 §9.3.2), with the same declared endpoint.
    for method, path in HOT_ROUTES:
        if method == "GET":
            assert table[("HEAD", path)].endpoint is declared[(method, path)]  # type: ignore[attr-defined]
    # The admin API declares a dependency (its bearer check) and parameters; the probes take no request.
    assert not any(path.startswith("/admin") for _, path in table)
    assert ("GET", "/healthz") not in table and ("GET", "/metrics") not in table


async def test_the_edge_serves_the_table_derived_when_the_application_starts(probed: Probed) -> None:
    http, app, _ = probed
    assert app.edge is not None
    assert set(app.edge.fast_routes) == set(fast_routes(app))
    assert HOT_ROUTES | {("GET", "/probe/plain")} <= set(app.edge.fast_routes)
    for path in ("/probe/counted", "/probe/query", "/probe/shadowed", "/guarded/plain", "/broken/plain"):
        assert ("GET", path) not in app.edge.fast_routes
    response = await http.get("/probe/plain")
    assert response.json() == {"served_by": "edge"}
    assert response.headers["x-frame-options"] == "DENY"


async def test_a_route_with_a_dependency_is_served_by_the_framework_and_the_dependency_runs(
    probed: Probed,
) -> None:
    http, _, probes = probed
    response = await http.get("/probe/counted")
    assert response.json() == {"served_by": "framework"} and probes.dependency_calls == 1
    refused = await http.get("/guarded/plain")  # the router's dependency raises an OAuth error
    assert refused.status_code == 403 and refused.json()["error"] == "access_denied"
    assert refused.headers["x-content-type-options"] == "nosniff"
    assert (await http.get("/probe/query", params={"q": "x"})).json() == {"served_by": "framework", "q": "x"}
    missing = await http.get("/probe/query")
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    # Whatever FastAPI would pick is what answers: the earlier path-parameter route, not the exact one.
    assert (await http.get("/probe/shadowed")).json() == {"served_by": "framework", "name": "shadowed"}


async def test_an_unexpected_error_is_the_same_json_500_on_both_paths(
    probed: Probed,
    caplog: pytest.LogCaptureFixture,
) -> None:
    http, app, _ = probed
    client_id, body = await register(http)

    async def broken(*_args: object) -> None:
        raise RuntimeError("internal detail 5be1")

    app.state.services.token_endpoint.handle = broken
    fast = await http.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, body["client_secret"])
    )
    framework = await http.get("/broken/plain")
    for response in (fast, framework):
        assert response.status_code == 500
        assert response.json() == {
            "error": "server_error",
            "error_description": "the server could not handle the request",
        }
        assert response.headers["content-type"] == "application/json"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
    logged = [record for record in caplog.records if record.exc_text and "5be1" in record.exc_text]
    assert {record.getMessage() for record in logged} >= {
        "unexpected error on POST /token",
        "unexpected error on GET /broken/plain",
    }
    text = (await http.get("/metrics")).text
    assert 'route="/token",status="500"' in text and 'route="/broken/plain",status="500"' in text


async def test_the_guards_refuse_with_the_applications_error_handler(probed: Probed) -> None:
    http, _, _ = probed
    headers = await http.get("/probe/plain", headers={"X-Padding": "x" * 20_000})
    assert headers.status_code == 431 and headers.json()["error"] == "invalid_request"
    declared = await http.post("/token", content=b"a=" + b"x" * 5000)
    assert declared.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 1000

    # No Content-Length: the body is counted as the route reads it, and the handler answers.
    chunked = await http.post(
        "/token", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    for response in (headers, declared, chunked):
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-frame-options"] == "DENY"
    assert chunked.status_code == 413
    assert chunked.json() == {"error": "invalid_request", "error_description": "request body is too large"}


async def test_cors_applies_to_every_route_and_the_fast_routes_stay(tmp_path: Path) -> None:
    app = _app(tmp_path, cors_allowed_origins=["https://app.example.com"])
    Probes(app)
    async with app.router.lifespan_context(app):
        assert app.edge is not None and HOT_ROUTES <= set(app.edge.fast_routes)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            origin = {"Origin": "https://app.example.com"}
            fast = await http.get("/probe/plain", headers=origin)
            framework = await http.get("/probe/counted", headers=origin)
            assert fast.json() == {"served_by": "edge"} and framework.json() == {"served_by": "framework"}
            for response in (fast, framework, await http.get("/.well-known/jwks.json", headers=origin)):
                assert response.headers["access-control-allow-origin"] == "https://app.example.com"
                assert response.headers["x-content-type-options"] == "nosniff"
            elsewhere = await http.get("/probe/plain", headers={"Origin": "https://evil.example.com"})
            assert "access-control-allow-origin" not in elsewhere.headers
            text = (await http.get("/metrics")).text
            assert 'method="GET",route="/probe/plain",status="200"' in text
            assert 'method="GET",route="/probe/counted",status="200"' in text
