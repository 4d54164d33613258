"""The edge: the one ASGI layer every HTTP request meets first, in front of the whole FastAPI application.

In order, for each request: the guards (``guards.py``: sizes, then the in-flight limit; a refusal is
answered by the application's exception handler), CORS when configured, then its route: the fast route
from the table derived from the route declarations (``fast_routes.py``), or the framework. Every response
carries the security headers (``security_headers.py``) and is counted and timed (``request_metrics.py``)
under its route template.

A fast route sends complete headers itself and returns its status, so the common path pays for no wrapped
``send``: only the framework's responses (and, with CORS, every response) go through one that adds the
headers and notes the status.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authserver.web.errors import handle_exception
from authserver.web.fast_routes import FastRoute, without_content
from authserver.web.guards import InFlightLimit, Refused, SizeLimits
from authserver.web.request_metrics import UNMATCHED, RequestMetrics, RouteMetrics
from authserver.web.security_headers import with_security_headers


class Edge:
    def __init__(
        self,
        framework: ASGIApp,
        fast_routes: Mapping[tuple[str, str], FastRoute],
        sizes: SizeLimits,
        in_flight: InFlightLimit,
        cors: Callable[[ASGIApp], ASGIApp] | None = None,
        route_templates: Sequence[tuple[re.Pattern[str], str]] = (),
    ) -> None:
        self.framework = framework
        self.fast_routes = dict(fast_routes)
        self.sizes = sizes
        self.in_flight = in_flight
        self.metrics = RequestMetrics()
        self.route_templates = tuple(route_templates)
        self._routes = {key: (route, RouteMetrics(*key)) for key, route in self.fast_routes.items()}
        # With CORS, every request passes through it on the way to its route; the fast routes stay.
        self._cors = cors(self._route) if cors is not None else None
        self._direct: dict[tuple[str, str], tuple[FastRoute, RouteMetrics]] = {} if cors else self._routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.framework(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        try:
            receive = self.sizes.admit(scope, receive)
            self.in_flight.enter(path)
        except Refused as refusal:
            await _refuse(refusal, scope, receive, send)
            self._count_refusal(scope, refusal.status_code, started)
            return

        method = scope["method"]
        direct = self._direct.get((method, path))
        if direct is not None:
            route, route_metrics = direct
            status = 500
            try:
                status = await route(scope, receive, send)
            finally:
                self.in_flight.leave()
                route_metrics.record(status, time.perf_counter() - started)
            return

        status = 500
        if method == "HEAD" and (method, path) not in self._routes:
            # HEAD is GET without the content (RFC 9110 §9.3.2), for every GET route the framework serves.
            scope = {**scope, "method": "GET"}
            send = without_content(send)

        async def edge_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = with_security_headers(list(message.get("headers") or ()))
            await send(message)

        try:
            await (self._cors or self.framework)(scope, receive, edge_send)
        finally:
            self.in_flight.leave()
            seconds = time.perf_counter() - started
            fast = self._routes.get((method, path))
            if fast is not None:
                fast[1].record(status, seconds)
            else:
                template = getattr(scope.get("route"), "path", None) or UNMATCHED
                self.metrics.record(method, template, status, seconds)

    def _count_refusal(self, scope: Scope, status: int, started: float) -> None:
        """A refused request is counted and timed like any answer, under the route it was for: the token
        endpoint's 5xx ratio (dashboard, alert) must include an overload's 503s."""
        method, path = scope["method"], scope["path"]
        seconds = time.perf_counter() - started
        fast = self._routes.get((method, path))
        if fast is not None:
            fast[1].record(status, seconds)
            return
        template = next((template for pattern, template in self.route_templates if pattern.match(path)), None)
        self.metrics.record(method, template or UNMATCHED, status, seconds)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Behind CORS: the fast route for (method, path), or the framework (HEAD already made GET)."""
        fast = self._routes.get((scope["method"], scope["path"]))
        if fast is not None:
            await fast[0](scope, receive, send)
        else:
            await self.framework(scope, receive, send)


async def _refuse(refusal: Refused, scope: Scope, receive: Receive, send: Send) -> None:
    request = Request(scope, receive, send)
    response = await handle_exception(request, refusal)
    response.raw_headers = with_security_headers(response.raw_headers)
    await response(scope, receive, send)
