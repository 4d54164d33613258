"""Discovery: RFC 8414 metadata, OpenID Connect discovery, and the JWKS. Constants until keys change.

Each document is serialised once per key set, with its header list; a request only wraps those bytes in a
response (``CachedDocument``), without rendering anything.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from authserver.crypto.keyset import KeySet
from authserver.protocol.metadata import authorization_server_metadata
from authserver.web.dependencies import services
from authserver.web.services import Services

router = APIRouter(tags=["Discovery"])
METADATA_PATHS = ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration")
JWKS_PATH = "/.well-known/jwks.json"
_METADATA_CACHE_CONTROL = "public, max-age=300"
# Short cache: verifiers must see a newly published next key well before it starts signing.
_JWKS_CACHE_CONTROL = "public, max-age=60"

Document = tuple[list[tuple[bytes, bytes]], bytes]  # (headers, body)
# id(KeySet) -> document; only the current key set's entries are kept.
_metadata_cache: dict[int, Document] = {}
_jwks_cache: dict[int, Document] = {}


class CachedDocument(Response):
    """A 200 with a cached document's headers and body as they are: nothing rendered per request."""

    def __init__(self, document: Document) -> None:
        headers, self.body = document
        self.raw_headers = list(headers)  # the edge adds to the list it sends; the cached one stays as is
        self.status_code = 200
        self.background = None


def _raw_headers(body: bytes, media_type: str, cache_control: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", media_type.encode()),
        (b"cache-control", cache_control.encode()),
        (b"content-length", str(len(body)).encode()),
    ]


def _metadata(svc: Services) -> Document:
    keyset: KeySet = svc.keyset()
    cached = _metadata_cache.get(id(keyset))
    if cached is None:
        # Every algorithm with an active key can sign ID tokens (OIDC Discovery §3).
        algorithms = keyset.id_token_algorithms
        document = authorization_server_metadata(
            svc.issuer, svc.token_endpoint.grant_types, svc.settings.advertised_scopes, algorithms
        )
        body = orjson.dumps(document)
        cached = (_raw_headers(body, "application/json", _METADATA_CACHE_CONTROL), body)
        _metadata_cache.clear()
        _metadata_cache[id(keyset)] = cached
    return cached


def _jwks(svc: Services) -> Document:
    keyset: KeySet = svc.keyset()
    cached = _jwks_cache.get(id(keyset))
    if cached is None:
        body = keyset.jwks_json
        cached = (_raw_headers(body, "application/jwk-set+json", _JWKS_CACHE_CONTROL), body)
        _jwks_cache.clear()
        _jwks_cache[id(keyset)] = cached
    return cached


@router.get(METADATA_PATHS[0], summary="Authorization server metadata (RFC 8414)")
async def oauth_metadata(request: Request) -> Response:
    return CachedDocument(_metadata(services(request)))


@router.get(METADATA_PATHS[1], summary="OpenID Connect discovery")
async def openid_configuration(request: Request) -> Response:
    return CachedDocument(_metadata(services(request)))


class JwkSetResponse(JSONResponse):
    """Only describes the JWKS route's media type in the OpenAPI document (RFC 7517 §8.5.1)."""

    media_type = "application/jwk-set+json"


@router.get(JWKS_PATH, summary="Public signing keys (JWKS)", response_class=JwkSetResponse)
async def jwks(request: Request) -> Response:
    return CachedDocument(_jwks(services(request)))
