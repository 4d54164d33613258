"""Work a worker refuses before it starts: oversized requests, and more requests than it can run at once.

A refusal is an exception (``Refused``) that the application's own exception handler renders
(``errors.py``), whether the edge raises it before a route runs or a route's body read raises it. Each
guard is checked by the edge (``edge.py``) on every request, in this order: sizes, then the in-flight limit.
"""

from __future__ import annotations

from starlette.types import Message, Receive, Scope

from authserver.observability import metrics

MAX_HEADER_BYTES = 16384
# Liveness, readiness and metrics answer even when the worker is full: a busy worker is not a dead one.
NEVER_REFUSED_WHEN_BUSY = frozenset({"/healthz", "/readyz", "/metrics"})


class Refused(Exception):
    """A request refused before (or while reading) its body, as an RFC 6749 §5.2 error."""

    status_code = 400
    error = "invalid_request"
    description = "the request was refused"
    headers: dict[str, str] = {}


class HeadersTooLarge(Refused):
    status_code = 431
    description = "request headers are too large"


class BodyTooLarge(Refused):
    status_code = 413
    description = "request body is too large"


class ServerBusy(Refused):
    """More requests in flight than the worker runs well: a fast 503 instead of a queue that times out."""

    status_code = 503
    error = "temporarily_unavailable"
    description = "server is busy; retry shortly"
    headers = {"Retry-After": "1"}


class SizeLimits:
    """Headers over ``max_header_bytes`` (431); a Content-Length over ``max_body_bytes`` (413, before the
    body is read); a body without a Content-Length (chunked) is counted as it arrives."""

    def __init__(self, max_body_bytes: int, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes

    def admit(self, scope: Scope, receive: Receive) -> Receive:
        """The ``receive`` the request's route reads its body from; raises ``Refused``."""
        header_bytes = 0
        declared: bytes | None = None
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value)
            if name == b"content-length":
                declared = value
        if header_bytes > self.max_header_bytes:
            raise HeadersTooLarge
        if declared is None:
            # The server never delivers more than a declared length, so only these need counting.
            return self._counted(receive)
        if not declared.isdigit() or int(declared) > self.max_body_bytes:
            raise BodyTooLarge
        return receive

    def _counted(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        return counted_receive


class InFlightLimit:
    """At most ``limit`` requests in this worker at once; the probes and metrics are never refused."""

    __slots__ = ("count", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def enter(self, path: str) -> None:
        if self.count >= self.limit and path not in NEVER_REFUSED_WHEN_BUSY:
            metrics.OVERLOAD_REJECTED.inc()
            raise ServerBusy
        self.count += 1

    def leave(self) -> None:
        self.count -= 1
