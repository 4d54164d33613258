"""The FastAPI application factory (``uvicorn authserver.web.app:create_app --factory``)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from authserver import __version__
from authserver.bootstrap import ensure_signing_keys, session_secret
from authserver.config import Settings, load_settings
from authserver.serving import graceful_shutdown
from authserver.web.edge import Edge
from authserver.web.errors import install_error_handlers
from authserver.web.fast_routes import fast_routes
from authserver.web.guards import InFlightLimit, SizeLimits
from authserver.web.openapi import install_openapi
from authserver.web.request_metrics import route_templates
from authserver.web.routers import admin, authorize, discovery, health, logout, token, upstream, userinfo
from authserver.web.services import build_services

DESCRIPTION = """
An OAuth 2.1 authorization server with OpenID Connect.

* **OAuth endpoints**: `/authorize`, `/token`, `/revoke` (RFC 7009), `/introspect` (RFC 7662), `/userinfo`.
* **Discovery**: `/.well-known/oauth-authorization-server` (RFC 8414), `/.well-known/openid-configuration`,
  `/.well-known/jwks.json`.
* **Admin API** (`/admin/...`, bearer `AUTHSERVER_ADMIN_TOKEN`): idempotent client registration and
  client-secret rotation with a grace period. The Authyard operator is its main caller.

Every error is RFC 6749 §5.2 JSON: `{"error": ..., "error_description": ...}`.
"""


class AuthServerApp(FastAPI):
    """FastAPI with the edge (``web/edge.py``) in front of everything, its own middleware included.

    The edge is built when the application starts, from the routes declared by then: it answers the routes
    that need nothing but their endpoint called, without FastAPI's per-request outer layers, and hands the
    rest to the framework.
    """

    edge: Edge | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.edge is not None and scope["type"] == "http":
            scope["app"] = self  # what Starlette sets: request.app, the exception handlers
            await self.edge(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def framework(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The whole FastAPI application, as it would be without the edge."""
        await super().__call__(scope, receive, send)


def build_edge(app: AuthServerApp, settings: Settings) -> Edge:
    """The edge for ``app`` as its routes are now: guards, CORS if configured, the derived fast routes."""
    cors = None
    if settings.cors_allowed_origins:
        cors = partial(
            CORSMiddleware,
            allow_origins=settings.cors_allowed_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    return Edge(
        app.framework,
        fast_routes(app),
        SizeLimits(settings.max_body_bytes),
        InFlightLimit(settings.max_in_flight),
        cors,
        route_templates(app.routes),
    )


def create_app(settings: Settings | None = None) -> AuthServerApp:
    settings = settings or load_settings()
    if not settings.issuer:
        settings = settings.model_copy(update={"issuer": "http://127.0.0.1:8080"})

    @asynccontextmanager
    async def lifespan(app: AuthServerApp) -> AsyncIterator[None]:
        app.edge = build_edge(app, settings)
        ensure_signing_keys(settings)
        services = build_services(settings, session_secret(settings))
        if settings.should_auto_migrate:
            # Imported here: alembic (and mako) cost every worker memory; only SQLite migrates on start.
            from authserver.migrations.runner import upgrade_to_head

            await upgrade_to_head(services.engine)
        app.state.services = services
        try:
            await services.sync_with_others()  # serving from the first request with its share of the limits
            if services.direct is not None:
                await services.direct.open_all()
        except Exception as error:  # the database may be down at start; readiness says so, the loop retries
            logging.getLogger(__name__).warning("database not reached at start: %s", type(error).__name__)
        services.start_background()
        graceful_shutdown.install(settings.shutdown_drain.total_seconds())
        # Everything built so far (modules, routes, compiled statements, keys) lives as long as the
        # worker: move it out of the collector's way so full collections only walk per-request garbage.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await services.stop()

    app = AuthServerApp(
        title="Authyard authorization server",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    install_error_handlers(app)
    for module in (token, authorize, upstream, logout, discovery, userinfo, admin, health):
        app.include_router(module.router)
    install_openapi(app)
    return app
