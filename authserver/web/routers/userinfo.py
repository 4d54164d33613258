"""OpenID Connect userinfo: the claims the access token's scope releases."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from authserver.protocol.errors import InvalidToken, OAuthError
from authserver.protocol.userinfo import claims_for_scope
from authserver.web.dependencies import services
from authserver.web.errors import NO_STORE, json_response
from authserver.web.forms import bearer_token
from authserver.web.openapi import errors


class InsufficientScope(OAuthError):
    error = "insufficient_scope"
    status_code = 403

    def __init__(self) -> None:
        super().__init__(
            "the access token lacks the openid scope",
            headers={"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="openid"'},
        )


router = APIRouter(tags=["OpenID Connect"])


@router.get("/userinfo", summary="UserInfo (OIDC Core §5.3)", responses=errors(401, 403))
async def userinfo(request: Request) -> Response:
    svc = services(request)
    token = bearer_token(request)
    if token is None:
        raise InvalidToken("a bearer access token is required")
    claims = svc.inspector.active_access_token(token)
    if claims is None:
        raise InvalidToken("the access token is invalid, expired or revoked")
    if "openid" not in claims.get("scope", "").split():
        raise InsufficientScope()
    user = await svc.store.get_user(claims["sub"])
    if user is None:
        raise InvalidToken("the user of this token no longer exists")
    return json_response(claims_for_scope(user, claims["scope"]), headers=NO_STORE)


@router.post("/userinfo", summary="UserInfo by POST (OIDC Core §5.3)", responses=errors(401, 403))
async def userinfo_post(request: Request) -> Response:
    return await userinfo(request)
