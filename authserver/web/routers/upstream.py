"""Sign-in through an upstream OpenID provider: the browser's side (``protocol.upstream_sign_in`` decides,
``web.upstream_oidc`` talks to the provider).

``GET /upstream/<name>/start`` (a button of the login page, with the signed authorization request) sends the
browser to the provider with ``state``, ``nonce`` and PKCE S256. The state travels in a short-lived signed,
HttpOnly cookie scoped to ``/upstream/`` (the browser that started is the one that may finish, RFC 9700
§4.7.1); the nonce and the PKCE verifier are derived from it with the server's secret, so neither is ever
sent to the browser. ``GET /upstream/<name>/callback`` checks the state, redeems the code, checks the ID
token, provisions or refreshes the local user, starts the session and goes on with the pending authorization
request (consent, then the code), exactly as after a password sign-in.

Whatever goes wrong upstream is a page that names the provider and keeps local sign-in (when it is on) and
the other providers at hand: a provider that is down never locks anybody else out.
"""

from __future__ import annotations

import logging
import secrets

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from authserver.observability import metrics
from authserver.protocol.authorization import AuthorizationRequest
from authserver.protocol.models import User
from authserver.protocol.upstream_sign_in import (
    Failure,
    OidcUpstream,
    UnknownSigningKey,
    UpstreamFailure,
    authorization_url,
    check_allowed,
    check_id_token,
    invalid,
    map_claims,
    merge_userinfo,
    needs_userinfo,
    new_state,
    provision,
)
from authserver.web.dependencies import services
from authserver.web.routers.authorize import (
    error_page,
    login_page,
    secure_cookies,
    set_session_cookie,
    show_step,
    signed_in,
    upstream_failure_page,
)
from authserver.web.services import Services

log = logging.getLogger(__name__)
router = APIRouter(tags=["Upstream sign-in"])
STATE_COOKIE = "authyard_upstream"
_STATE_COOKIE_PATH = "/upstream/"
_STATE_TTL_SECONDS = 600  # as long as the login page stays usable
_MAX_COOKIE_BYTES = 4000  # the value; with the name and attributes within the 4096 bytes browsers keep


def callback_uri(svc: Services, upstream: OidcUpstream) -> str:
    """The redirect URI to register at the provider."""
    return f"{svc.issuer}/upstream/{upstream.name}/callback"


def _failure_page(
    request: Request,
    svc: Services,
    auth: AuthorizationRequest,
    upstream: OidcUpstream,
    failure: UpstreamFailure,
) -> Response:
    """The login page again, saying that the provider failed and why (for the person: no detail of the
    exchange), with the other ways to sign in."""
    return upstream_failure_page(request, svc, auth, upstream, failure)


@router.get("/upstream/{name}/start", include_in_schema=False)
async def start(request: Request, name: str) -> Response:
    svc = services(request)
    upstream = svc.identity_providers.get(name)
    if not isinstance(upstream, OidcUpstream):  # a directory is signed in to on the login page itself
        return error_page("There is no such way to sign in here.", 404)
    signed = svc.request_signer.loads(request.query_params.get("request"))
    if signed is None:
        return error_page("This sign-in request has expired. Return to the application and start again.")
    auth = AuthorizationRequest.from_dict(signed)
    try:
        metadata = await svc.upstream_client.metadata(upstream)
    except UpstreamFailure as failure:
        return _failure_page(request, svc, auth, upstream, failure)
    state = new_state()
    signer = svc.upstream_signer
    location = authorization_url(
        metadata,
        upstream,
        callback_uri(svc, upstream),
        state,
        nonce=signer.derive("nonce", state),
        verifier=signer.derive("pkce", state),
    )
    pending = signer.dumps({"p": upstream.name, "s": state, "r": auth.to_dict()}, _STATE_TTL_SECONDS)
    if len(pending) > _MAX_COOKIE_BYTES:
        # Browsers drop a larger cookie silently (RFC 6265 §6.1 asks them to keep 4096 bytes): the answer
        # would then look like another browser's. Said now, with the other ways to sign in at hand.
        return login_page(
            request,
            svc,
            auth,
            None,
            status_code=400,
            error=f"This application's request is too large to sign in with {upstream.display_name}.",
        )
    response = RedirectResponse(location, 302)
    response.headers["Cache-Control"] = "no-store"
    # SameSite=Lax: the provider's redirect back is a top-level GET from another site, which Lax allows.
    response.set_cookie(
        STATE_COOKIE,
        pending,
        max_age=_STATE_TTL_SECONDS,
        path=_STATE_COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(svc),
    )
    return response


@router.get("/upstream/{name}/callback", include_in_schema=False)
async def callback(request: Request, name: str) -> Response:
    svc = services(request)
    response = await _callback(request, svc, name)
    # The state is good for one answer, whatever it was.
    response.delete_cookie(STATE_COOKIE, path=_STATE_COOKIE_PATH, secure=secure_cookies(svc), httponly=True)
    return response


async def _callback(request: Request, svc: Services, name: str) -> Response:
    upstream = svc.identity_providers.get(name)
    if not isinstance(upstream, OidcUpstream):
        return error_page("There is no such way to sign in here.", 404)
    query = request.query_params
    pending = svc.upstream_signer.loads(request.cookies.get(STATE_COOKIE))
    state = query.get("state") or ""
    # RFC 6749 §10.12 / RFC 9700 §4.7.1: the answer must come back to the browser that started this sign-in,
    # for this provider.
    if (
        pending is None
        or pending.get("p") != upstream.name
        or not isinstance(pending.get("s"), str)
        or not secrets.compare_digest(pending["s"].encode(), state.encode())
    ):
        log.warning("sign-in through %s: the answer's state is not this browser's", upstream.name)
        return error_page(
            f"This answer from {upstream.display_name} does not belong to a sign-in started in this browser, "
            "or it came too late. Return to the application and start again.",
            400,
        )
    auth = AuthorizationRequest.from_dict(pending["r"])
    if "error" in query:
        # OIDC Core §3.1.2.6: the provider refused (the person declined, or it would not sign them in).
        error = query.get("error", "")[:64]
        return _failure_page(
            request,
            svc,
            auth,
            upstream,
            UpstreamFailure(Failure.REFUSED, "it did not sign you in", f"the provider answered {error!r}"),
        )
    try:
        user = await _signed_in_upstream(svc, upstream, query.get("code"), query.get("iss"), pending["s"])
    except UpstreamFailure as failure:
        return _failure_page(request, svc, auth, upstream, failure)
    session = await svc.authorization_flow.signed_in_as(user, await signed_in(request, svc))
    metrics.LOGINS.labels("success").inc()
    step = await svc.authorization_flow.after_sign_in(auth, session)
    response = show_step(step, request, svc, auth, redirect_status=302)
    set_session_cookie(response, svc, session)
    return response


async def _signed_in_upstream(
    svc: Services, upstream: OidcUpstream, code: str | None, iss: str | None, state: str
) -> User:
    if not code:
        raise invalid("the answer has no code")
    # RFC 9207 §2.4: an iss in the answer must be the provider's own (a mix-up attack otherwise).
    if iss is not None and iss != upstream.issuer:
        raise invalid("the answer's iss is another issuer")
    client = svc.upstream_client
    metadata = await client.metadata(upstream)
    tokens = await client.exchange(
        upstream, metadata, code, callback_uri(svc, upstream), svc.upstream_signer.derive("pkce", state)
    )
    nonce = svc.upstream_signer.derive("nonce", state)
    keys = await client.keys(upstream, metadata)
    try:
        claims = check_id_token(tokens["id_token"], keys, metadata, upstream, nonce)
    except UnknownSigningKey:
        # The provider may have rotated its keys since they were fetched (OIDC Core §10.1.1).
        keys = await client.keys(upstream, metadata, refresh=True)
        claims = check_id_token(tokens["id_token"], keys, metadata, upstream, nonce)
    access_token = tokens.get("access_token")
    if needs_userinfo(upstream, claims) and isinstance(access_token, str):
        userinfo = await client.userinfo(upstream, metadata, access_token)
        if userinfo is not None:
            claims = merge_userinfo(claims, userinfo)
    identity = map_claims(upstream, claims)
    check_allowed(upstream, identity)
    return await provision(svc.store, upstream, identity)
