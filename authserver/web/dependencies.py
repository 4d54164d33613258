"""Small FastAPI dependencies shared by routers."""

from __future__ import annotations

from starlette.requests import Request

from authserver.web.services import Services


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
