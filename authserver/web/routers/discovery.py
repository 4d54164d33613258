"""Discovery: RFC 8414 metadata, OpenID Connect discovery, and the JWKS. Constants until keys change.

Each document is serialised once per key set, with its header list; a request only wraps those bytes in a
response (``CachedDocument``), without rendering anything.
"""

from __future__ import annotations

import base64
import hashlib

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
# The signing-key rotation publishes the next key one rotation interval (at least 1h, the operator's
# rule) before it signs: a JWKS cached for 5 minutes, plus the kubelet's Secret refresh (a minute or two),
# still shows that key long before its first token. The metadata lists the keys' algorithms: the same.
_CACHE_CONTROL = "public, max-age=300"
_METADATA_CACHE_CONTROL = _CACHE_CONTROL
_JWKS_CACHE_CONTROL = _CACHE_CONTROL

Document = tuple[list[tuple[bytes, bytes]], bytes]  # (headers, body); the headers carry the ETag
_REVALIDATION_HEADERS = (b"etag", b"cache-control")
# id(KeySet) -> document; only the current key set's entries are kept.
_metadata_cache: dict[int, Document] = {}
_jwks_cache: dict[int, Document] = {}


class CachedDocument(Response):
    """A 200 with a cached document's headers and body as they are: nothing rendered per request; a 304
    without body when the request's If-None-Match names its ETag."""

    def __init__(self, document: Document, if_none_match: str | None = None) -> None:
        headers, body = document
        self.background = None
        if if_none_match is not None and _matches(if_none_match, headers):
            # RFC 9110 §15.4.5: a 304 carries the ETag and Cache-Control a 200 would have, and no content.
            self.status_code, self.body = 304, b""
            self.raw_headers = [(name, value) for name, value in headers if name in _REVALIDATION_HEADERS]
            return
        self.body = body
        self.raw_headers = list(headers)  # the edge adds to the list it sends; the cached one stays as is
        self.status_code = 200


def _matches(if_none_match: str, headers: list[tuple[bytes, bytes]]) -> bool:
    """If-None-Match's weak comparison (RFC 9110 §13.1.2): ``*`` or any listed tag, W/ or not."""
    etag = next(value for name, value in headers if name == b"etag").decode()
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


def _raw_headers(body: bytes, media_type: str, cache_control: str) -> list[tuple[bytes, bytes]]:
    digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()[:18]).decode()
    return [
        (b"content-type", media_type.encode()),
        (b"cache-control", cache_control.encode()),
        (b"etag", f'"{digest}"'.encode()),
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
    return CachedDocument(_metadata(services(request)), request.headers.get("if-none-match"))


@router.get(METADATA_PATHS[1], summary="OpenID Connect discovery")
async def openid_configuration(request: Request) -> Response:
    return CachedDocument(_metadata(services(request)), request.headers.get("if-none-match"))


class JwkSetResponse(JSONResponse):
    """Only describes the JWKS route's media type in the OpenAPI document (RFC 7517 §8.5.1)."""

    media_type = "application/jwk-set+json"


@router.get(JWKS_PATH, summary="Public signing keys (JWKS)", response_class=JwkSetResponse)
async def jwks(request: Request) -> Response:
    return CachedDocument(_jwks(services(request)), request.headers.get("if-none-match"))
