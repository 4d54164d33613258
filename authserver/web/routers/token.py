"""POST /token, /revoke, /introspect: thin adapters from HTTP to the protocol layer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from authserver.observability import metrics
from authserver.observability.metrics import LabelCache
from authserver.protocol.errors import InvalidClient, OAuthError, SlowDown
from authserver.protocol.models import Client
from authserver.ratelimit import retry_after_seconds
from authserver.web.dependencies import real_client_address, services
from authserver.web.errors import NO_STORE, json_response, oauth_error_response
from authserver.web.forms import read_form
from authserver.web.openapi import errors

router = APIRouter(tags=["OAuth 2.1"])
_tokens_issued = LabelCache(metrics.TOKENS_ISSUED)


def _form_body(properties: dict[str, Any], required_fields: list[str]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "properties": properties, "required": required_fields}
                }
            },
        },
    }


_STRING = {"type": "string"}
# private_key_jwt and workload_identity (RFC 7523 §2.2): instead of a secret, a JWT the client signed or a
# trusted issuer's JWT for its workload.
_CLIENT_ASSERTION = {
    "client_assertion_type": {
        "type": "string",
        "enum": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"],
    },
    "client_assertion": {**_STRING, "maxLength": 8192},
}
_TOKEN_FORM = _form_body(
    {
        "grant_type": {
            "type": "string",
            # The JWT bearer grant (RFC 7523 §2.1) is offered when a trusted issuer is configured.
            "enum": [
                "client_credentials",
                "authorization_code",
                "refresh_token",
                "urn:ietf:params:oauth:grant-type:token-exchange",
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
            ],
        },
        "assertion": {**_STRING, "maxLength": 8192},
        "scope": _STRING,
        "resource": _STRING,
        "code": _STRING,
        "redirect_uri": _STRING,
        "code_verifier": _STRING,
        "refresh_token": _STRING,
        # RFC 8693 §2.1: token exchange.
        "subject_token": _STRING,
        "subject_token_type": _STRING,
        "actor_token": _STRING,
        "actor_token_type": _STRING,
        "requested_token_type": _STRING,
        "audience": _STRING,
        "client_id": _STRING,
        "client_secret": _STRING,
        **_CLIENT_ASSERTION,
    },
    ["grant_type"],
)
_TOKEN_FORM_WITH_HINT = _form_body(
    {
        "token": _STRING,
        "token_type_hint": _STRING,
        "client_id": _STRING,
        "client_secret": _STRING,
        **_CLIENT_ASSERTION,
    },
    ["token"],
)


@router.post(
    "/token",
    summary="Token endpoint (RFC 6749 §3.2)",
    openapi_extra=_TOKEN_FORM,
    responses=errors(400, 401, 429),
)
async def token(request: Request) -> Response:
    svc = services(request)
    # The client's own address, not a load balancer's: X-Forwarded-For only from the trusted proxies.
    wait = svc.ip_limiter.acquire(real_client_address(request, svc.settings.trusted_proxies))
    if wait:
        metrics.RATE_LIMITED.labels("ip").inc()
        return oauth_error_response(
            SlowDown("too many token requests from this address", retry_after_seconds(wait))
        )

    def admit(client: Client) -> None:
        client_wait = svc.client_limiter.acquire(client.client_id, client.rate_limit)
        if client_wait:
            metrics.RATE_LIMITED.labels("client").inc()
            raise SlowDown("too many token requests for this client", retry_after_seconds(client_wait))

    try:
        params = await read_form(request)
        result = await svc.token_endpoint.handle(params, request.headers.get("authorization"), admit)
    except OAuthError as error:
        metrics.TOKEN_ERRORS.labels(error.error).inc()
        if isinstance(error, InvalidClient) and request.headers.get("authorization") is None:
            # RFC 6749 §5.2: the Basic challenge is for clients that tried Basic; others get none.
            error.headers.pop("WWW-Authenticate", None)
        return oauth_error_response(error)
    _tokens_issued.get(result.grant_type, svc.client_labels(result.client.client_id)).inc()
    return json_response(result.body, 200, NO_STORE)


@router.post(
    "/revoke",
    summary="Token revocation (RFC 7009)",
    openapi_extra=_TOKEN_FORM_WITH_HINT,
    response_class=Response,  # 200 with an empty body
    responses={200: {"description": "Revoked, or nothing to revoke (RFC 7009 §2.2)"}, **errors(400, 401)},
)
async def revoke(request: Request) -> Response:
    svc = services(request)
    params = await read_form(request)
    await svc.revocation_endpoint.handle(params, request.headers.get("authorization"))
    return Response(status_code=200, headers=NO_STORE)


@router.post(
    "/introspect",
    summary="Token introspection (RFC 7662)",
    openapi_extra=_TOKEN_FORM_WITH_HINT,
    responses=errors(400, 401),
)
async def introspect(request: Request) -> Response:
    svc = services(request)
    params = await read_form(request)
    body = await svc.introspection_endpoint.handle(params, request.headers.get("authorization"))
    return json_response(body, 200, NO_STORE)
