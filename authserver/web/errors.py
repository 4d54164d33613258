"""Every failure becomes an RFC 6749 §5.2 JSON error; the database being away becomes a clean 503."""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from authserver.protocol.errors import OAuthError
from authserver.protocol.store import StoreUnavailable

log = logging.getLogger(__name__)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
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


def install_body_limit_handler(app: FastAPI) -> None:
    from authserver.web.middleware import BodyTooLarge

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_request: Request, _error: BodyTooLarge) -> Response:
        return error_response(413, "invalid_request", "request body is too large")
