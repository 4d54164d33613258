"""The authorization endpoint and its pages: login and consent, rendered for the steps that
``protocol/authorization_flow.py`` decides (prompt handling, sign-in, the consent answer, code issuance).

The validated request travels through the pages signed (HMAC), so nothing the browser sends back can
widen it; every form carries a CSRF token bound to a cookie; the pages cannot be framed.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from authserver.crypto.passwords import KDF_RETRY_AFTER_SECONDS
from authserver.observability import metrics
from authserver.protocol.authorization import (
    AuthorizationPageError,
    AuthorizationRequest,
    RedirectError,
    validate_authorization_request,
)
from authserver.protocol.authorization_flow import (
    LoginProblem,
    LoginSession,
    NextStep,
    ReturnToClient,
    ShowConsent,
)
from authserver.protocol.errors import OAuthError
from authserver.protocol.login_throttle import Throttled
from authserver.protocol.params import Params
from authserver.protocol.upstream_sign_in import (
    DirectoryUpstream,
    Failure,
    UpstreamFailure,
    UpstreamProvider,
)
from authserver.web.dependencies import real_client_address, services
from authserver.web.forms import query_params, read_form
from authserver.web.security_headers import DEFAULT_CSP
from authserver.web.services import Services

log = logging.getLogger(__name__)

router = APIRouter(tags=["OAuth 2.1"])
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent.parent / "templates"),
    autoescape=select_autoescape(["html"]),
    auto_reload=False,  # the templates ship with the package: no stat of the file at every render
)
SESSION_COOKIE = "authyard_session"
CSRF_COOKIE = "authyard_csrf"
_PAGE_TTL_SECONDS = 600  # how long a login/consent page stays usable
_PAGE_HEADERS = {"Cache-Control": "no-store"}


def page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_templates.get_template(name).render(**context), status_code, headers=_PAGE_HEADERS)


def error_page(message: str, status_code: int = 400) -> HTMLResponse:
    return page("error.html", status_code, message=message)


def secure_cookies(svc: Services) -> bool:
    return svc.issuer.startswith("https://")


class _Pages:
    """Renders the login and consent pages with a fresh CSRF binding."""

    def __init__(self, request: Request, svc: Services) -> None:
        self.request = request
        self.svc = svc
        self.csrf_cookie = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)

    def render(
        self, name: str, auth: AuthorizationRequest, status_code: int = 200, **context: Any
    ) -> Response:
        """The login or consent page. Its CSP lets the form post here and, for consent, lets the answer
        redirect to the client's registered redirect URI (browsers apply form-action to that redirect)."""
        response = page(
            name,
            status_code,
            client_name=auth.client_name,
            signed_request=self.svc.request_signer.dumps(auth.to_dict(), _PAGE_TTL_SECONDS),
            csrf_token=self.svc.csrf_signer.dumps({"c": self.csrf_cookie}, _PAGE_TTL_SECONDS),
            action=f"/authorize/{'login' if name == 'login.html' else 'consent'}",
            scopes=auth.scope.split(),
            local_accounts=self.svc.identity_providers.local_accounts,
            # OpenID providers are buttons; LDAP directories are password forms of their own.
            upstreams=[p for p in self.svc.identity_providers.providers if p.kind == "oidc"],
            directories=[p for p in self.svc.identity_providers.providers if p.kind == "ldap"],
            **context,
        )
        response.headers["Content-Security-Policy"] = page_csp(auth.redirect_uri)
        set_csrf_cookie(response, self.svc, self.csrf_cookie, "/authorize")
        return response


def csrf_matches(form: dict[str, list[str]], request: Request, svc: Services) -> bool:
    """The form's CSRF token is bound to this browser's CSRF cookie (the pages set both)."""
    token = svc.csrf_signer.loads((form.get("csrf_token") or [""])[0])
    cookie = request.cookies.get(CSRF_COOKIE)
    if token is None or cookie is None:
        return False
    return secrets.compare_digest(str(token.get("c", "")), cookie)


def set_csrf_cookie(response: Response, svc: Services, value: str, path: str) -> None:
    """The CSRF cookie, sent back only to the pages' own form targets under ``path``."""
    response.set_cookie(
        CSRF_COOKIE, value, httponly=True, samesite="strict", secure=secure_cookies(svc), path=path
    )


def page_csp(redirect_uri: str) -> str:
    parts = urlsplit(redirect_uri)
    # An http(s) redirect URI allows its origin; a native app's private-use scheme allows that scheme.
    target = f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else f"{parts.scheme}:"
    return f"{DEFAULT_CSP}; form-action 'self' {target}"


def cookie_session(request: Request, svc: Services) -> LoginSession | None:
    """The browser's session cookie as signed (whether its session is still live is not checked here)."""
    return LoginSession.from_dict(svc.session_signer.loads(request.cookies.get(SESSION_COOKIE)))


async def signed_in(request: Request, svc: Services) -> LoginSession | None:
    """Who is signed in on this browser: its cookie's session, live server-side."""
    return await svc.authorization_flow.signed_in(cookie_session(request, svc))


_HTML = {"text/html": {"schema": {"type": "string"}}}
_QUERY = [
    {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": text}
    for name, text in (
        ("response_type", "code"),
        ("client_id", "the registered client"),
        ("redirect_uri", "exactly as registered (optional when the client has one)"),
        ("scope", "space-separated; a subset of the client's scopes"),
        ("state", "returned to the client unchanged"),
        ("code_challenge", "PKCE S256 challenge (RFC 7636)"),
        ("code_challenge_method", "S256 (plain is refused)"),
        ("nonce", "OpenID Connect nonce, copied into the ID token"),
        ("resource", "RFC 8707 resource indicator: one of the client's audiences"),
        ("prompt", "space-separated: none (alone), login, consent, select_account (shows the login page)"),
        ("max_age", "seconds since the last sign-in after which the user must sign in again"),
        ("id_token_hint", "an ID token this server issued: the user the client expects"),
        ("login_hint", "pre-fills the username on the login page"),
        ("request", "not supported: answered with request_not_supported"),
        ("request_uri", "not supported: answered with request_uri_not_supported"),
    )
]


def form_body(names: Iterable[str]) -> dict[str, Any]:
    """The OpenAPI request body of an endpoint that takes its parameters form-encoded as well."""
    return {
        "required": False,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "properties": {name: {"type": "string"} for name in names},
                    "additionalProperties": {"type": "string"},
                }
            }
        },
    }


_FORM_BODY = form_body(str(item["name"]) for item in _QUERY)


async def authorize(request: Request) -> Response:
    svc = services(request)
    # 303 after a POST: the browser follows it with a GET (RFC 9110 §15.4.4).
    redirect_status = 303 if request.method == "POST" else 302
    try:
        params: Params = await read_form(request) if request.method == "POST" else query_params(request)
        auth = await validate_authorization_request(
            params, svc.lookup_client, svc.issuer, svc.minter.policy.default_audience, svc.keyset
        )
    except AuthorizationPageError as error:
        return error_page(error.message)
    except OAuthError as error:  # malformed query or body (control characters...): a page, never a redirect
        return error_page(error.description)
    except RedirectError as error:
        return RedirectResponse(error.location, redirect_status)
    step = await svc.authorization_flow.start(auth, await signed_in(request, svc))
    return show_step(step, request, svc, auth, redirect_status=redirect_status)


# One handler for both methods (OIDC Core §3.1.2.1: GET and POST MUST be supported), validated alike; a
# route per method only so that each has its own operation and parameters in the OpenAPI document.
for _method, _openapi in (("GET", {"parameters": _QUERY}), ("POST", {"requestBody": _FORM_BODY})):
    router.add_api_route(
        "/authorize",
        authorize,
        methods=[_method],
        operation_id=f"authorize_{_method.lower()}",
        summary="Authorization endpoint (RFC 6749 §4.1.1, OIDC Core §3.1.2; PKCE S256 required)",
        description=(
            "GET with the parameters in the query, or POST with them form-encoded in the body (OIDC Core "
            "§3.1.2.1), validated alike. A POST here starts the flow, so it carries no CSRF token: the "
            "login and consent forms that follow do."
        ),
        response_class=HTMLResponse,
        responses={
            200: {"description": "The login page, the consent page, or nothing to ask (see 302/303)"},
            302: {"description": "To the client's registered redirect URI: a code, or an error (state, iss)"},
            303: {"description": "The same after a POST"},
            400: {
                "description": "Error page: unknown client or redirect URI (never redirected)",
                "content": _HTML,
            },
        },
        openapi_extra=_openapi,
    )


async def _posted(
    request: Request, svc: Services
) -> tuple[dict[str, list[str]], AuthorizationRequest] | Response:
    """The form, its CSRF check and the signed authorization request; or the error page to show."""
    try:
        form = await read_form(request)
    except OAuthError as error:
        return error_page(error.description)
    if not csrf_matches(form, request, svc):
        return error_page("This form has expired or was not sent from our page. Start again.", 403)
    signed = svc.request_signer.loads((form.get("request") or [""])[0])
    if signed is None:
        return error_page("This sign-in request has expired. Return to the application and start again.")
    return form, AuthorizationRequest.from_dict(signed)


@router.post("/authorize/login", summary="Login form submission", include_in_schema=False)
async def login(request: Request) -> Response:
    svc = services(request)
    if not svc.identity_providers.local_accounts and not svc.directory_checks:
        return error_page(_PASSWORDS_OFF, 403)  # this form signs in with nothing here
    posted = await _posted(request, svc)
    if isinstance(posted, Response):
        return posted
    form, auth = posted
    username = (form.get("username") or [""])[0][:255]
    password = (form.get("password") or [""])[0][:1024]
    address = real_client_address(request, svc.settings.trusted_proxies)
    # The browser's live session, if any: signing in again keeps its id (and sid) for the same user.
    current = await signed_in(request, svc)
    # The form of an LDAP directory names it; the local accounts' form names nothing.
    provider = (form.get("provider") or [""])[0]
    if provider:
        upstream = svc.identity_providers.get(provider)
        check = svc.directory_checks.get(provider)
        if not isinstance(upstream, DirectoryUpstream) or check is None:
            return error_page("There is no such way to sign in here.", 404)
        try:
            outcome = await svc.authorization_flow.sign_in_through_directory(
                upstream, check, svc.store, username, password, address, current
            )
        except UpstreamFailure as failure:
            return upstream_failure_page(request, svc, auth, upstream, failure)
    elif not svc.identity_providers.local_accounts:
        return error_page(_PASSWORDS_OFF, 403)
    else:
        outcome = await svc.authorization_flow.sign_in(username, password, address, current)
    if isinstance(outcome, Throttled):
        metrics.LOGINS.labels("throttled").inc()
        metrics.LOGINS_THROTTLED.labels(outcome.by).inc()
        return _throttled_page(request, svc, auth, outcome, username)
    if isinstance(outcome, LoginProblem):
        metrics.LOGINS.labels(_LOGIN_RESULTS[outcome]).inc()
        return login_page(request, svc, auth, outcome, username)
    metrics.LOGINS.labels("success").inc()
    step = await svc.authorization_flow.after_sign_in(auth, outcome)
    response = show_step(step, request, svc, auth, redirect_status=303)
    set_session_cookie(response, svc, outcome)
    return response


_PASSWORDS_OFF = "Signing in with a username and password is turned off here."


def set_session_cookie(response: Response, svc: Services, session: LoginSession) -> None:
    """The browser's sign-in: the signed ``LoginSession`` naming its server-side session."""
    response.set_cookie(
        SESSION_COOKIE,
        svc.session_signer.dumps(session.to_dict(), svc.settings.login_session_ttl.total_seconds()),
        max_age=int(svc.settings.login_session_ttl.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=secure_cookies(svc),
    )


@router.post("/authorize/consent", summary="Consent form submission", include_in_schema=False)
async def consent(request: Request) -> Response:
    svc = services(request)
    posted = await _posted(request, svc)
    if isinstance(posted, Response):
        return posted
    form, auth = posted
    allowed = (form.get("decision") or [""])[0] == "allow"
    step = await svc.authorization_flow.answer_consent(auth, await signed_in(request, svc), allowed)
    return show_step(step, request, svc, auth, redirect_status=303)


# What the login page says about each problem, with its status code.
_LOGIN_PROBLEMS = {
    LoginProblem.WRONG_CREDENTIALS: (401, "Wrong username or password."),
    LoginProblem.BUSY: (503, "Too many people are signing in right now. Please try again in a few seconds."),
    LoginProblem.SIGNED_OUT: (200, "Please sign in again."),
    LoginProblem.SIGN_IN_AGAIN: (200, "The application asks you to sign in again."),
}
_LOGIN_RESULTS = {LoginProblem.WRONG_CREDENTIALS: "failure", LoginProblem.BUSY: "refused"}


def show_step(
    step: NextStep, request: Request, svc: Services, auth: AuthorizationRequest, *, redirect_status: int
) -> Response:
    """The page (or redirect) for the flow's next step."""
    if isinstance(step, ReturnToClient):
        return RedirectResponse(step.location, redirect_status)
    if isinstance(step, ShowConsent):
        return _Pages(request, svc).render("consent.html", auth, username=step.session.username)
    return login_page(request, svc, auth, step.problem, step.login_hint or "")


def login_page(
    request: Request,
    svc: Services,
    auth: AuthorizationRequest,
    problem: LoginProblem | None,
    username: str = "",
    *,
    status_code: int = 200,
    error: str | None = None,
) -> Response:
    """The login page; ``problem`` or else ``error`` (with its ``status_code``) says what went wrong."""
    if problem:
        status_code, error = _LOGIN_PROBLEMS[problem]
    response = _Pages(request, svc).render("login.html", auth, status_code, username=username, error=error)
    if problem is LoginProblem.BUSY:
        response.headers["Retry-After"] = str(KDF_RETRY_AFTER_SECONDS)
    return response


# The page's status for each kind of failure of an upstream sign-in.
_UPSTREAM_STATUS = {
    Failure.UNAVAILABLE: 502,
    Failure.TIMEOUT: 504,
    Failure.INVALID_RESPONSE: 502,
    Failure.REFUSED: 403,
    Failure.NOT_ALLOWED: 403,
    Failure.DISABLED: 403,
}


def upstream_failure_page(
    request: Request,
    svc: Services,
    auth: AuthorizationRequest,
    upstream: UpstreamProvider,
    failure: UpstreamFailure,
) -> Response:
    """The login page again, saying that the provider or directory failed and why (for the person: no
    detail of the exchange), with the other ways to sign in."""
    log.warning("sign-in through %s failed: %s", upstream.name, failure.detail)
    metrics.LOGINS.labels("failure" if failure.failure is not Failure.REFUSED else "refused").inc()
    message = f"Signing in with {upstream.display_name} failed: {failure.message}."
    status = _UPSTREAM_STATUS[failure.failure]
    return login_page(request, svc, auth, None, status_code=status, error=message)


def _throttled_page(
    request: Request, svc: Services, auth: AuthorizationRequest, throttled: Throttled, username: str
) -> Response:
    """429 with Retry-After (RFC 6585 §4): the same page whether the username exists or not, and whichever
    limit (account or address) was reached."""
    minutes = -(-throttled.retry_after_seconds // 60)
    error = f"Too many sign-in attempts. Try again in {minutes} minute{'s' if minutes != 1 else ''}."
    response = _Pages(request, svc).render("login.html", auth, 429, username=username, error=error)
    response.headers["Retry-After"] = str(throttled.retry_after_seconds)
    return response
