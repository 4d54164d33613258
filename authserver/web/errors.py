"""Every failure becomes an RFC 6749 §5.2 JSON error; the database being away becomes a clean 503.

The handlers are registered on the application, and they are the one place errors become responses: the
framework consults them for the routes it serves, ``handle_exception`` for the routes the edge serves
itself and for the guards' refusals. An error no other handler claims is ``server_error`` (500), logged
here with its traceback and never shown to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from authserver.protocol.errors import OAuthError
from authserver.protocol.store import StoreUnavailable
from authserver.web.guards import Refused

log = logging.getLogger(__name__)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]
_HTTP_ERROR_CODES = {401: "invalid_token", 404: "not_found", 405: "invalid_request", 413: "invalid_request"}


def json_response(body: object, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code, headers, media_type="application/json")


def oauth_error_response(error: OAuthError) -> Response:
    return json_response(error.body(), error.status_code, {**NO_STORE, **error.headers})


def error_response(
    status_code: int, error: str, description: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response(
        {"error": error, "error_description": description}, status_code, {**NO_STORE, **(headers or {})}
    )


def database_unavailable() -> Response:
    return error_response(
        503, "temporarily_unavailable", "the database is unavailable; retry shortly", {"Retry-After": "1"}
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OAuthError)
    async def _oauth(_request: Request, error: OAuthError) -> Response:
        return oauth_error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, error: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'] if part != 'body')}: {item['msg']}"
            for item in error.errors()
        )
        return error_response(400, "invalid_request", problems[:1000] or "invalid request")

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, error: HTTPException) -> Response:
        code = _HTTP_ERROR_CODES.get(error.status_code, "invalid_request")
        return error_response(error.status_code, code, str(error.detail), dict(error.headers or {}))

    @app.exception_handler(StoreUnavailable)
    async def _database(_request: Request, error: Exception) -> Response:
        log.warning("database unavailable: %s", error)
        return database_unavailable()

    @app.exception_handler(Refused)
    async def _refused(_request: Request, refusal: Refused) -> Response:
        return error_response(refusal.status_code, refusal.error, refusal.description, refusal.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> Response:
        # RFC 6749 §4.1.2.1 server_error: the details go to the log only.
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
        return error_response(500, "server_error", "the server could not handle the request")


async def handle_exception(request: Request, error: Exception) -> Response:
    """The response the application's handlers give ``error``, found as the framework finds it: a handler
    for an HTTP error's status code first, then the nearest class in the error's MRO (``Exception`` last)."""
    handlers: Mapping[Any, ExceptionHandler] = request.app.exception_handlers
    if isinstance(error, HTTPException) and error.status_code in handlers:
        return await handlers[error.status_code](request, error)
    for kind in type(error).__mro__:
        handler = handlers.get(kind)
        if handler is not None:
            return await handler(request, error)
    raise error  # not reached once install_error_handlers has given Exception its handler
