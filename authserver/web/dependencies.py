"""Small FastAPI dependencies shared by routers."""

from __future__ import annotations

from starlette.requests import Request

from authserver.web.services import Services


def services(request: Request) -> Services:
    svc: Services = request.app.state.services  # set once at start-up; Starlette's state is untyped
    return svc


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
