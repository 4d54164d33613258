"""Pure ASGI middleware: cheap guards that run before any routing or parsing."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authserver.observability import metrics

# Pages that post forms set their own policy with form-action: browsers enforce it on the redirect that
# answers the POST, and the consent page's answer redirects to the client (another origin).
DEFAULT_CSP = "default-src 'none'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"content-security-policy", DEFAULT_CSP.encode()),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def _json_error(
    status: int, error: str, description: str, retry_after: int | None = None
) -> tuple[dict, bytes]:
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
) -> None:
    start, body = _json_error(status, error, description, retry_after)
    await send(start)
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    header for header in _SECURITY_HEADERS if header[0] not in present
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestGuard:
    """Refuses work the worker cannot do well: too many requests in flight (fast 503 instead of a queue
    that ends in timeouts), bodies over the size limit (413 before reading them), oversized headers."""

    def __init__(
        self, app: ASGIApp, max_in_flight: int, max_body_bytes: int, max_header_bytes: int = 16384
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        if sum(len(name) + len(value) for name, value in headers) > self.max_header_bytes:
            await _send_error(send, 431, "invalid_request", "request headers are too large")
            return
        for name, value in headers:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_body_bytes:
                    await _send_error(send, 413, "invalid_request", "request body is too large")
                    return
        exempt = scope["path"] in _EXEMPT_PATHS
        if not exempt and self.in_flight >= self.max_in_flight:
            metrics.OVERLOAD_REJECTED.inc()
            await _send_error(send, 503, "temporarily_unavailable", "server is busy; retry shortly", 1)
            return
        self.in_flight += 1
        try:
            await self.app(scope, self._limited(receive), send)
        finally:
            self.in_flight -= 1

    def _limited(self, receive: Receive) -> Receive:
        """Counts chunked bodies too, which carry no Content-Length."""
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


class BodyTooLarge(Exception):
    pass


class RequestMetrics:
    """Counts and times requests by route template (never by raw path: bounded label values)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            metrics.REQUESTS.labels(method, template, str(status)).inc()
            metrics.REQUEST_DURATION.labels(method, template).observe(time.perf_counter() - started)
