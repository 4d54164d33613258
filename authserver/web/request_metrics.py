"""Request count and duration per method, route template and status (``authserver_http_requests_total``,
``authserver_http_request_duration_seconds``). Labels are route templates, never raw paths: an unknown
path is ``unmatched``, so the label values stay bounded."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from starlette.routing import compile_path

from authserver.observability import metrics
from authserver.observability.metrics import LabelCache

UNMATCHED = "unmatched"


class RouteMetrics:
    """One route's children, resolved when the edge is built: recording costs no label lookup."""

    __slots__ = ("_by_status", "_duration", "_method", "_route")

    def __init__(self, method: str, route: str) -> None:
        self._method = method
        self._route = route
        self._duration = metrics.REQUEST_DURATION.labels(method, route)
        self._by_status: dict[int, Any] = {}

    def record(self, status: int, seconds: float) -> None:
        counter = self._by_status.get(status)
        if counter is None:
            counter = self._by_status[status] = metrics.REQUESTS.labels(
                self._method, self._route, str(status)
            )
        counter.inc()
        self._duration.observe(seconds)


class RequestMetrics:
    """Every other request's children, looked up by label values (and cached) as they come."""

    def __init__(self) -> None:
        self._requests = LabelCache(metrics.REQUESTS)
        self._durations = LabelCache(metrics.REQUEST_DURATION)

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        self._requests.get(method, route, str(status)).inc()
        self._durations.get(method, route).observe(seconds)


def route_templates(routes: Iterable[Any]) -> list[tuple[re.Pattern[str], str]]:
    """Every path template among an application's routes (and the routers it includes), each with the
    pattern of the paths it serves: how a request refused before routing is counted under its route."""
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
