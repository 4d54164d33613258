"""The edge: one pure ASGI layer in front of the whole FastAPI application (``AuthServerApp``).

It refuses work the worker cannot do well (oversized headers or bodies, too many requests in flight), adds
the security headers, counts and times every request, and serves the hot endpoints (token, introspection,
revocation, JWKS, metadata, the sign-in pages, userinfo) straight from a table instead of through the
framework's middleware, router and dependency machinery. Everything else goes on to FastAPI, with the
security headers added by a wrapped ``send``; a fast route sends complete headers itself, so it pays for no
wrapper. Header bytes are built once, at import or per key set.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authserver.observability import metrics
from authserver.observability.metrics import LabelCache

log = logging.getLogger(__name__)

# Pages that post forms set their own policy with form-action: browsers enforce it on the redirect that
# answers the POST, and the consent page's answer redirects to the client (another origin).
DEFAULT_CSP = "default-src 'none'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"content-security-policy", DEFAULT_CSP.encode()),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_SECURITY_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)
_EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

# A fast route answers one (method, path) by itself: it sends a complete response, the security headers
# included (``with_security_headers``), and returns its status code for the metrics. The edge neither
# wraps its ``send`` nor rewrites its headers.
FastRoute = Callable[[Scope, Receive, Send], Awaitable[int]]


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` plus every security header it does not set itself (a page may set its own CSP)."""
    present = [name for name, _ in headers if name in _SECURITY_NAMES]
    if not present:
        return [*headers, *SECURITY_HEADERS]
    return [*headers, *(header for header in SECURITY_HEADERS if header[0] not in present)]


def _json_error(
    status: int, error: str, description: str, retry_after: int | None = None
) -> tuple[dict[str, Any], bytes]:
    body = f'{{"error":"{error}","error_description":"{description}"}}'.encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"cache-control", b"no-store"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    return {"type": "http.response.start", "status": status, "headers": headers}, body


async def _send_error(
    send: Send, status: int, error: str, description: str, retry_after: int | None = None
) -> int:
    start, body = _json_error(status, error, description, retry_after)
    start["headers"] = with_security_headers(start["headers"])
    await send(start)
    await send({"type": "http.response.body", "body": body})
    return status


class BodyTooLarge(Exception):
    pass


class Edge:
    """Guards, security headers, metrics and the fast routes, in one pass.

    Refusals: headers over ``max_header_bytes`` (431), a Content-Length over ``max_body_bytes`` (413
    before reading it; chunked bodies are counted as they arrive), more than ``max_in_flight`` requests
    in this worker (a fast 503 instead of a queue that ends in timeouts). Metrics are labelled by route
    template, never by raw path (bounded label values); a refused request is counted under the route it was
    for.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_in_flight: int,
        max_body_bytes: int,
        max_header_bytes: int = 16384,
        fast_routes: Mapping[tuple[str, str], FastRoute] | None = None,
        route_templates: Sequence[tuple[re.Pattern[str], str]] = (),
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.fast_routes = dict(fast_routes or {})
        self.route_templates = tuple(route_templates)
        self.in_flight = 0
        self._requests = LabelCache(metrics.REQUESTS)
        self._durations = LabelCache(metrics.REQUEST_DURATION)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        header_bytes = 0
        declared: bytes | None = None
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value)
            if name == b"content-length":
                declared = value
        if header_bytes > self.max_header_bytes:
            await _send_error(send, 431, "invalid_request", "request headers are too large")
            self._count_refusal(scope, 431, started)
            return
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            await _send_error(send, 413, "invalid_request", "request body is too large")
            self._count_refusal(scope, 413, started)
            return
        path = scope["path"]
        if self.in_flight >= self.max_in_flight and path not in _EXEMPT_PATHS:
            metrics.OVERLOAD_REJECTED.inc()
            await _send_error(send, 503, "temporarily_unavailable", "server is busy; retry shortly", 1)
            self._count_refusal(scope, 503, started)
            return
        if declared is None:
            # No Content-Length: chunked, or no body. The server never delivers more than a declared
            # length, so only these need counting as they arrive.
            receive = self._limited(receive)

        method = scope["method"]
        fast = self.fast_routes.get((method, path))
        self.in_flight += 1
        if fast is not None:
            status = 500
            try:
                status = await fast(scope, receive, send)
            finally:
                self.in_flight -= 1
                self._requests.get(method, path, str(status)).inc()
                self._durations.get(method, path).observe(time.perf_counter() - started)
            return

        status = 500

        async def edge_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = with_security_headers(list(message.get("headers") or ()))
            await send(message)

        try:
            await self.app(scope, receive, edge_send)
        finally:
            self.in_flight -= 1
            template = getattr(scope.get("route"), "path", None) or "unmatched"
            self._requests.get(method, template, str(status)).inc()
            self._durations.get(method, template).observe(time.perf_counter() - started)

    def _count_refusal(self, scope: Scope, status: int, started: float) -> None:
        """A refused request is counted and timed like any other answer, under the route it was for: the
        token endpoint's 5xx ratio must include the 503s of an overload."""
        method = scope["method"]
        route = self._route_template(scope)
        self._requests.get(method, route, str(status)).inc()
        self._durations.get(method, route).observe(time.perf_counter() - started)

    def _route_template(self, scope: Scope) -> str:
        """The route template of the request without routing it (it was refused before routing)."""
        path = scope["path"]
        if (scope["method"], path) in self.fast_routes:
            return str(path)
        for pattern, template in self.route_templates:
            if pattern.match(path):
                return template
        return "unmatched"

    def _limited(self, receive: Receive) -> Receive:
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        return limited_receive


def route_templates(routes: Iterable[Any]) -> list[tuple[re.Pattern[str], str]]:
    """Every path template among ``routes`` (an application's, with the routers it includes, which add no
    prefix here), each with the pattern of the paths it serves: how a refused request finds its route."""
    found: dict[str, re.Pattern[str]] = {}

    def walk(routes: Iterable[Any]) -> None:
        for route in routes:
            path = getattr(route, "path", None)
            if isinstance(path, str):
                found.setdefault(path, compile_path(path)[0])
            else:  # an included router
                walk(getattr(getattr(route, "original_router", route), "routes", ()))

    walk(routes)
    return [(pattern, template) for template, pattern in found.items()]


ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]


def _exception_handler(app: Any, error: Exception) -> ExceptionHandler | None:
    handlers: Mapping[Any, ExceptionHandler] = getattr(app, "exception_handlers", {})
    for kind in type(error).__mro__:
        handler = handlers.get(kind)
        if handler is not None:
            return handler
    return None


def request_endpoint(endpoint: Callable[[Request], Awaitable[Response]]) -> FastRoute:
    """An ``async def endpoint(request) -> Response`` as a fast route, with the application's own
    exception handlers (OAuth errors, database outage, body too large) and nothing else in between; any
    other error is logged and answered with a JSON 500 (RFC 6749 §4.1.2.1 ``server_error``)."""

    async def route(scope: Scope, receive: Receive, send: Send) -> int:
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as error:
            handler = _exception_handler(scope.get("app"), error)
            if handler is None:
                # The edge sits outside FastAPI's server-error middleware: answer as it would, in JSON.
                log.exception("unexpected error on %s %s", scope["method"], scope["path"])
                return await _send_error(send, 500, "server_error", "the server could not handle the request")
            response = await handler(request, error)
        response.raw_headers = with_security_headers(response.raw_headers)
        await response(scope, receive, send)
        return response.status_code

    return route
