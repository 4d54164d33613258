"""The routes the edge answers itself, derived from the application's route declarations.

FastAPI serves a request through its outer middleware, its router (a scan of the routes) and the route's
handler (dependency resolution, parameter validation, serialisation). For an endpoint declared as
``async def endpoint(request: Request) -> Response`` on a path without parameters and with no dependencies,
all of that comes down to calling it with the request and sending what it returns: the edge does just
that, from a table keyed by (method, path), and saves the token endpoint a good share of its CPU.

The table is derived, never written: ``fast_routes(app)`` walks the routes as FastAPI does for its OpenAPI
document (``iter_route_contexts``) when the application starts. A route enters it only when

- it is an ``APIRoute`` whose path has no parameters;
- its endpoint is a coroutine function whose one parameter is the ``Request``, annotated to return a
  ``Response``;
- it has no dependencies: its own, its router's or the application's;
- FastAPI's router would pick it for that method and path (no route before it matches them).

A GET route also answers HEAD (RFC 9110 §9.3.2: the same status and headers, no content), unless some
route declares HEAD for that path itself.

Anything else is the framework's: a route that gains a dependency or a parameter leaves the table, so
nothing a declaration asks for is ever skipped. Errors meet the same handlers on both paths
(``errors.handle_exception``).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Host, Match
from starlette.types import Message, Receive, Scope, Send

from authserver.web.errors import handle_exception
from authserver.web.security_headers import with_security_headers

# A fast route sends a complete response, the security headers included, and returns its status code for
# the request metrics; the edge neither wraps its ``send`` nor rewrites its headers.
FastRoute = Callable[[Scope, Receive, Send], Awaitable[int]]
RequestEndpoint = Callable[[Request], Awaitable[Response]]


def request_endpoint(endpoint: RequestEndpoint) -> FastRoute:
    """``endpoint`` as a fast route: called with the request; an error it raises is answered by the
    application's exception handlers."""

    async def route(scope: Scope, receive: Receive, send: Send) -> int:
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as error:
            response = await handle_exception(request, error)
        response.raw_headers = with_security_headers(response.raw_headers)
        await response(scope, receive, send)
        return response.status_code

    route.endpoint = endpoint  # type: ignore[attr-defined]  # which declaration it serves, for tests
    return route


def head_of(route: FastRoute) -> FastRoute:
    """A GET route answering HEAD: what it would send for GET, without the content."""

    async def head(scope: Scope, receive: Receive, send: Send) -> int:
        return await route(scope, receive, without_content(send))

    head.endpoint = route.endpoint  # type: ignore[attr-defined]  # as request_endpoint sets it
    return head


def without_content(send: Send) -> Send:
    """``send`` for a HEAD request: the response's head as it is (Content-Length included, RFC 9110
    §8.6), its content dropped."""

    async def send_head(message: Message) -> None:
        if message["type"] != "http.response.body":
            await send(message)
        elif not message.get("more_body", False):
            await send({"type": "http.response.body", "body": b""})

    return send_head


def fast_routes(app: FastAPI) -> dict[tuple[str, str], FastRoute]:
    """Every (method, path) whose route only needs its endpoint called, to that endpoint as a fast route."""
    contexts = list(iter_route_contexts(app.routes))
    table: dict[tuple[str, str], FastRoute] = {}
    for context in contexts:
        endpoint = request_only_endpoint(context)
        if endpoint is None or context.path is None:
            continue
        for method in sorted(context.methods or ()):
            if _first_full_match(contexts, method, context.path) is context:
                table[(method, context.path)] = request_endpoint(endpoint)
    for (method, path), route in list(table.items()):
        if method == "GET" and _first_full_match(contexts, "HEAD", path) is None:
            table.setdefault(("HEAD", path), head_of(route))
    return table


def request_only_endpoint(context: RouteContext) -> RequestEndpoint | None:
    """The route's endpoint, if FastAPI would do nothing for the route but call it with the request."""
    if not isinstance(context.original_route, APIRoute) or context.param_convertors:
        return None
    endpoint = context.endpoint
    dependant = context.dependant
    if not inspect.iscoroutinefunction(endpoint) or dependant.dependencies:
        return None
    if list(inspect.signature(endpoint).parameters) != [dependant.request_param_name]:
        return None
    returns = typing.get_type_hints(endpoint).get("return")
    return endpoint if isinstance(returns, type) and issubclass(returns, Response) else None


def _first_full_match(contexts: list[RouteContext], method: str, path: str) -> RouteContext | None:
    """The route FastAPI's router picks for a request: the first that matches both path and method."""
    probe: Scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    for context in contexts:
        if isinstance(context.original_route, Host):
            return None  # matched by the Host header, which a path alone cannot tell: leave the rest alone
        if context.matches(probe)[0] is Match.FULL:
            return context
    return None
