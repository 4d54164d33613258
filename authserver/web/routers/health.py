"""Liveness (the process answers) and readiness (it can serve: database reachable, keys loaded)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from authserver.observability.metrics import render_latest
from authserver.serving import graceful_shutdown
from authserver.web.dependencies import services
from authserver.web.errors import json_response

router = APIRouter(tags=["Operations"])
_READINESS_TIMEOUT_SECONDS = 1.0


@router.get("/healthz", summary="Liveness: never depends on the database (no restart storms)")
async def healthz() -> Response:
    return json_response({"status": "ok"})


_NOT_READY = {
    "description": "Not ready: the database did not answer within 1 s, or the server is shutting down",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "status": {"enum": ["unavailable", "draining"]},
                    "database": {"type": "string"},
                },
                "required": ["status"],
            }
        }
    },
}


@router.get("/readyz", summary="Readiness: the database answers within 1 s", responses={503: _NOT_READY})
async def readyz(request: Request) -> Response:
    if graceful_shutdown.draining():  # shutting down: load balancers must move traffic away now
        return json_response({"status": "draining"}, 503)
    svc = services(request)
    try:
        await asyncio.wait_for(svc.store.ping(), _READINESS_TIMEOUT_SECONDS)
    except Exception as error:  # any failure to reach the database means not ready
        return json_response({"status": "unavailable", "database": type(error).__name__}, 503)
    return json_response({"status": "ok", "active_kid": svc.keyset().active_kid})


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(render_latest(), media_type="text/plain; version=0.0.4; charset=utf-8")
