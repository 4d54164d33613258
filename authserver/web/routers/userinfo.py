"""OpenID Connect userinfo: the claims the access token's scope releases (``protocol/userinfo.py``)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from authserver.protocol.params import Params
from authserver.protocol.userinfo import presented_token
from authserver.web.dependencies import services
from authserver.web.errors import NO_STORE, json_response
from authserver.web.forms import is_form, query_params, read_form
from authserver.web.openapi import errors

router = APIRouter(tags=["OpenID Connect"])


@router.get("/userinfo", summary="UserInfo (OIDC Core §5.3)", responses=errors(400, 401, 403))
async def userinfo(request: Request) -> Response:
    return await _answer(request, None)


@router.post(
    "/userinfo",
    summary="UserInfo by POST: the token in the header, or as access_token in a form body (RFC 6750 §2.2)",
    responses=errors(400, 401, 403),
)
async def userinfo_post(request: Request) -> Response:
    # Only a form-encoded body can carry the token (RFC 6750 §2.2); any other body is not read.
    return await _answer(request, await read_form(request) if is_form(request) else None)


async def _answer(request: Request, body: Params | None) -> Response:
    token = presented_token(request.headers.get("authorization"), body, query_params(request))
    claims = await services(request).userinfo_endpoint.handle(token)
    return json_response(claims, headers=NO_STORE)
