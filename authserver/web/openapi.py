"""What the OpenAPI document says each operation may answer: every status the server really sends.

Routes declare their own answers (``responses=``, built with :func:`errors`); :func:`install_openapi` adds
what applies to every operation because the edge or the exception handlers send it before or around the
route: 413 (body too large), 431 (headers too large), 503 (overload or database outage, except for the
probes), and replaces FastAPI's default 422, which this server never sends (request validation errors are
RFC 6749 ``invalid_request`` 400s).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from authserver.web.guards import NEVER_REFUSED_WHEN_BUSY

ERROR_SCHEMA_NAME = "OAuthErrorBody"
_ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
DESCRIPTIONS = {
    400: "invalid_request (or the endpoint's RFC 6749 §5.2 error)",
    401: "invalid_client / invalid_token, with a WWW-Authenticate challenge",
    403: "the token or client may not do this",
    404: "not_found",
    409: "conflict: it exists already",
    413: "invalid_request: the request body is too large",
    429: "slow_down: rate limited; retry after Retry-After seconds",
    431: "invalid_request: the request headers are too large",
    503: "temporarily_unavailable: overloaded or the database is unavailable; retry after Retry-After",
}


class OAuthErrorBody(BaseModel):
    """RFC 6749 §5.2: every error this server answers in JSON."""

    error: str = Field(description="An RFC 6749 / 6750 / 7009 / 8707 error code.")
    error_description: str | None = Field(None, description="Human-readable, never a secret.")


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for these error statuses, each an :class:`OAuthErrorBody`."""
    return {status: {"model": OAuthErrorBody, "description": DESCRIPTIONS[status]} for status in statuses}


def _error_response(status: int) -> dict[str, Any]:
    return {"description": DESCRIPTIONS[status], "content": {"application/json": {"schema": _ERROR_REF}}}


def complete_document(document: dict[str, Any]) -> dict[str, Any]:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(ERROR_SCHEMA_NAME, OAuthErrorBody.model_json_schema())
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            if responses.pop("422", None) is not None:
                responses.setdefault("400", _error_response(400))
            for status in (413, 431):
                responses.setdefault(str(status), _error_response(status))
            if path not in NEVER_REFUSED_WHEN_BUSY:  # their 503 is readiness, declared by the route
                responses.setdefault("503", _error_response(503))
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete_document(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                    tags=app.openapi_tags,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
