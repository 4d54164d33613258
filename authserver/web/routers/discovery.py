"""Discovery: RFC 8414 metadata, OpenID Connect discovery, and the JWKS. Constants until keys change."""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from authserver.crypto.keyset import KeySet
from authserver.protocol.metadata import authorization_server_metadata
from authserver.web.dependencies import services

router = APIRouter(tags=["Discovery"])
_CACHE_HEADERS = {"Cache-Control": "public, max-age=300"}
_metadata_cache: dict[int, bytes] = {}


def _metadata_bytes(request: Request) -> bytes:
    svc = services(request)
    keyset: KeySet = svc.keyset()
    cached = _metadata_cache.get(id(keyset))
    if cached is None:
        algorithms = sorted({key.algorithm_name for key in keyset.signing_keys.values()})
        document = authorization_server_metadata(
            svc.issuer, svc.token_endpoint.grant_types, svc.settings.advertised_scopes, algorithms
        )
        cached = orjson.dumps(document)
        _metadata_cache.clear()  # only the current key set's document is ever needed
        _metadata_cache[id(keyset)] = cached
    return cached


@router.get("/.well-known/oauth-authorization-server", summary="Authorization server metadata (RFC 8414)")
async def oauth_metadata(request: Request) -> Response:
    return Response(_metadata_bytes(request), media_type="application/json", headers=_CACHE_HEADERS)


@router.get("/.well-known/openid-configuration", summary="OpenID Connect discovery")
async def openid_configuration(request: Request) -> Response:
    return Response(_metadata_bytes(request), media_type="application/json", headers=_CACHE_HEADERS)


@router.get("/.well-known/jwks.json", summary="Public signing keys (JWKS)")
async def jwks(request: Request) -> Response:
    # Short cache: verifiers must see a newly published next key well before it starts signing.
    return Response(
        services(request).keyset().jwks_json,
        media_type="application/jwk-set+json",
        headers={"Cache-Control": "public, max-age=60"},
    )
