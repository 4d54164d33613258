"""The end-session endpoint (OpenID Connect RP-Initiated Logout 1.0): GET or POST /logout, its confirmation
page and the signed-out page, for what ``protocol/logout.py`` decides.

Signing out ends the browser's server-side session (``protocol.sessions``: its refresh tokens and their
access tokens revoked, the end announced) and deletes its cookie. The confirmation form carries a CSRF token
bound to a cookie of the path /logout and the validated request signed, so nothing the browser sends back
can widen it; the pages cannot be framed.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from authserver.protocol.errors import OAuthError
from authserver.protocol.logout import (
    LogoutRequest,
    LogoutRequestError,
    needs_confirmation,
    sessions_to_end,
    validate_logout_request,
)
from authserver.protocol.session_end import EndReason
from authserver.web.dependencies import services
from authserver.web.forms import query_params, read_form
from authserver.web.routers.authorize import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    csrf_matches,
    form_body,
    page,
    page_csp,
    secure_cookies,
    set_csrf_cookie,
    signed_in,
)
from authserver.web.security_headers import DEFAULT_CSP
from authserver.web.services import Services

router = APIRouter(tags=["OpenID Connect"])
LOGOUT_PATH = "/logout"
_CONFIRM_TTL_SECONDS = 600  # how long the confirmation page stays usable
_HTML = {"text/html": {"schema": {"type": "string"}}}
_PARAMETERS = (
    ("id_token_hint", "an ID token this server issued to the client (an expired one is accepted)"),
    ("client_id", "the client; must be the hint's audience when both are sent"),
    ("post_logout_redirect_uri", "exactly as registered for the client; needs id_token_hint or client_id"),
    ("state", "returned on the post-logout redirect"),
    ("ui_locales", "accepted, not used"),
    ("logout_hint", "accepted, not used"),
)
_QUERY = [
    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": text}
    for name, text in _PARAMETERS
]
_FORM_BODY = form_body(name for name, _ in _PARAMETERS)


def _error(message: str, status_code: int = 400) -> HTMLResponse:
    return page("logout_error.html", status_code, message=message)


async def end_session(request: Request) -> Response:
    svc = services(request)
    redirect_status = 303 if request.method == "POST" else 302  # the browser follows a 303 with a GET
    try:
        params = await read_form(request) if request.method == "POST" else query_params(request)
        logout = await validate_logout_request(params, svc.lookup_client, svc.keyset, svc.issuer)
    except OAuthError as error:  # a malformed query or body: a page, never a redirect
        return _error(error.description)
    except LogoutRequestError as error:
        return _error(error.message)
    browser = await signed_in(request, svc)
    browser_session = browser.session_id if browser else None
    if needs_confirmation(logout, browser_session):
        return _confirmation(request, svc, logout, browser.username if browser else None)
    return await _sign_out(svc, logout, browser_session, redirect_status)


for _method, _openapi in (("GET", {"parameters": _QUERY}), ("POST", {"requestBody": _FORM_BODY})):
    router.add_api_route(
        LOGOUT_PATH,
        end_session,
        methods=[_method],
        operation_id=f"end_session_{_method.lower()}",
        summary="End-session endpoint (OpenID Connect RP-Initiated Logout 1.0)",
        description=(
            "GET with the parameters in the query, or POST with them form-encoded (§2). A valid "
            "id_token_hint for the browser's own session (or a session already gone) signs out at once; "
            "otherwise the user is asked first. After sign-out: the registered post_logout_redirect_uri "
            "with state, or a signed-out page."
        ),
        response_class=HTMLResponse,
        responses={
            200: {"description": "The confirmation page, or the signed-out page", "content": _HTML},
            302: {"description": "To the registered post_logout_redirect_uri, with state"},
            303: {"description": "The same after a POST"},
            400: {
                "description": "Error page: a bad hint or post_logout_redirect_uri (never redirected)",
                "content": _HTML,
            },
        },
        openapi_extra=_openapi,
    )


def _confirmation(request: Request, svc: Services, logout: LogoutRequest, username: str | None) -> Response:
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = page(
        "logout_confirm.html",
        username=username,
        signed_request=svc.logout_signer.dumps(logout.to_dict(), _CONFIRM_TTL_SECONDS),
        csrf_token=svc.csrf_signer.dumps({"c": csrf}, _CONFIRM_TTL_SECONDS),
    )
    # Browsers apply form-action to the redirect that follows the form: allow the post-logout URI's origin.
    target = logout.return_to
    response.headers["Content-Security-Policy"] = (
        page_csp(target) if target else f"{DEFAULT_CSP}; form-action 'self'"
    )
    set_csrf_cookie(response, svc, csrf, LOGOUT_PATH)
    return response


@router.post(f"{LOGOUT_PATH}/confirm", summary="Sign-out confirmation", include_in_schema=False)
async def confirm(request: Request) -> Response:
    svc = services(request)
    try:
        form = await read_form(request)
    except OAuthError as error:
        return _error(error.description)
    if not csrf_matches(form, request, svc):
        return _error("This form has expired or was not sent from our page. Nothing was changed.", 403)
    signed: dict[str, Any] | None = svc.logout_signer.loads((form.get("request") or [""])[0])
    logout = LogoutRequest.from_dict(signed) if signed is not None else None
    if logout is None:
        return _error("This sign-out request has expired. Return to the application and start again.")
    if (form.get("decision") or [""])[0] != "sign_out":
        return page("logged_out.html", signed_out=False)
    browser = await signed_in(request, svc)
    return await _sign_out(svc, logout, browser.session_id if browser else None, 303)


async def _sign_out(
    svc: Services, logout: LogoutRequest, browser_session: str | None, redirect_status: int
) -> Response:
    ended = [
        await svc.sessions.end(sid, EndReason.SIGNED_OUT) for sid in sessions_to_end(logout, browser_session)
    ]
    if any(ended):
        await svc.sync_revocations()  # this worker refuses the session's access tokens at once
    response: Response
    if logout.return_to is not None:
        response = RedirectResponse(logout.return_to, redirect_status)
    else:
        response = page("logged_out.html", signed_out=True)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax", secure=secure_cookies(svc))
    return response
