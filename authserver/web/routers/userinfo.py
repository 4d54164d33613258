"""OpenID Connect userinfo: the claims the access token's scope releases (``protocol/userinfo.py``)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from authserver.web.dependencies import services
from authserver.web.errors import NO_STORE, json_response
from authserver.web.forms import bearer_token
from authserver.web.openapi import errors

router = APIRouter(tags=["OpenID Connect"])


@router.get("/userinfo", summary="UserInfo (OIDC Core §5.3)", responses=errors(401, 403))
async def userinfo(request: Request) -> Response:
    claims = await services(request).userinfo_endpoint.handle(bearer_token(request))
    return json_response(claims, headers=NO_STORE)


@router.post("/userinfo", summary="UserInfo by POST (OIDC Core §5.3)", responses=errors(401, 403))
async def userinfo_post(request: Request) -> Response:
    return await userinfo(request)
