"""Discovery: RFC 8414 metadata, OpenID Connect discovery, and the JWKS. Constants until keys change.

The documents are serialised once per key set, with their whole header list: the edge serves them
straight from there (``FAST_ROUTES``); the FastAPI routes below describe them in the OpenAPI document and
answer when the edge's fast routes are off (CORS configured).
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from authserver.crypto.keyset import KeySet
from authserver.protocol.metadata import authorization_server_metadata
from authserver.web.middleware import FastRoute, with_security_headers
from authserver.web.services import Services

router = APIRouter(tags=["Discovery"])
METADATA_PATHS = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")
JWKS_PATH = "/.well-known/jwks.json"
_METADATA_CACHE_CONTROL = "public, max-age=300"
# Short cache: verifiers must see a newly published next key well before it starts signing.
_JWKS_CACHE_CONTROL = "public, max-age=60"

# id(KeySet) -> (headers, body); only the current key set's entries are kept.
_metadata_cache: dict[int, tuple[list[tuple[bytes, bytes]], bytes]] = {}
_jwks_cache: dict[int, tuple[list[tuple[bytes, bytes]], bytes]] = {}


def _raw_headers(body: bytes, media_type: str, cache_control: str) -> list[tuple[bytes, bytes]]:
    return with_security_headers(
        [
            (b"content-type", media_type.encode()),
            (b"cache-control", cache_control.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
    )


def _metadata(svc: Services) -> tuple[list[tuple[bytes, bytes]], bytes]:
    keyset: KeySet = svc.keyset()
    cached = _metadata_cache.get(id(keyset))
    if cached is None:
        algorithms = sorted({key.algorithm_name for key in keyset.signing_keys.values()})
        document = authorization_server_metadata(
            svc.issuer, svc.token_endpoint.grant_types, svc.settings.advertised_scopes, algorithms
        )
        body = orjson.dumps(document)
        cached = (_raw_headers(body, "application/json", _METADATA_CACHE_CONTROL), body)
        _metadata_cache.clear()
        _metadata_cache[id(keyset)] = cached
    return cached


def _jwks(svc: Services) -> tuple[list[tuple[bytes, bytes]], bytes]:
    keyset: KeySet = svc.keyset()
    cached = _jwks_cache.get(id(keyset))
    if cached is None:
        body = keyset.jwks_json
        cached = (_raw_headers(body, "application/jwk-set+json", _JWKS_CACHE_CONTROL), body)
        _jwks_cache.clear()
        _jwks_cache[id(keyset)] = cached
    return cached


def _constant_route(build: Callable[[Services], tuple[list[tuple[bytes, bytes]], bytes]]) -> FastRoute:
    async def route(scope: Scope, _receive: Receive, send: Send) -> int:
        headers, body = build(scope["app"].state.services)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return 200

    return route


_metadata_route = _constant_route(_metadata)
FAST_ROUTES: dict[tuple[str, str], FastRoute] = {
    ("GET", METADATA_PATHS[0]): _metadata_route,
    ("GET", METADATA_PATHS[1]): _metadata_route,
    ("GET", JWKS_PATH): _constant_route(_jwks),
}


def _response(cached: tuple[list[tuple[bytes, bytes]], bytes]) -> Response:
    headers, body = cached
    response = Response(body)
    response.raw_headers = list(headers)
    return response


@router.get(METADATA_PATHS[0], summary="Authorization server metadata (RFC 8414)")
async def oauth_metadata(request: Request) -> Response:
    return _response(_metadata(request.app.state.services))


@router.get(METADATA_PATHS[1], summary="OpenID Connect discovery")
async def openid_configuration(request: Request) -> Response:
    return _response(_metadata(request.app.state.services))


class JwkSetResponse(JSONResponse):
    """Only describes the JWKS route's media type in the OpenAPI document (RFC 7517 §8.5.1)."""

    media_type = "application/jwk-set+json"


@router.get(JWKS_PATH, summary="Public signing keys (JWKS)", response_class=JwkSetResponse)
async def jwks(request: Request) -> Response:
    return _response(_jwks(request.app.state.services))
