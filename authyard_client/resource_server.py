"""A resource server's side in Starlette or FastAPI (needs starlette; the rest of the kit does not):

- :func:`require_scopes`: a dependency that verifies the request's Bearer token (RFC 6750 §2.1) and
  answers 401/403 with the RFC 6750 §3 ``WWW-Authenticate`` challenge, including ``resource_metadata``
  (RFC 9728 §5.1) so that a client can find which authorization server to ask;
- :func:`protected_resource_route`: the RFC 9728 protected-resource metadata document.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authyard_client.errors import BearerTokenError, InvalidRequest, VerifierUnavailable
from authyard_client.verifier import TokenVerifier, VerifiedToken

WELL_KNOWN = "/.well-known/oauth-protected-resource"
# RFC 6750 §3: error_description and scope values allow only these characters (no '"' or '\').
_NOT_ALLOWED = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


@dataclass(frozen=True)
class ProtectedResource:
    """What the RFC 9728 §2 document says about this resource server."""

    resource: str  # its identifier: an https URL (usually the audience its tokens carry)
    authorization_servers: tuple[str, ...]
    scopes_supported: tuple[str, ...] = ()
    resource_name: str | None = None

    @property
    def metadata_path(self) -> str:
        # RFC 9728 §3.1: the well-known segment goes between the host and the resource's path.
        path = urlsplit(self.resource).path.rstrip("/")
        return WELL_KNOWN + path

    @property
    def metadata_url(self) -> str:
        parts = urlsplit(self.resource)
        return urlunsplit((parts.scheme, parts.netloc, self.metadata_path, "", ""))

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "resource": self.resource,  # RFC 9728 §3.3: identical to the identifier the URL was made from
            "authorization_servers": list(self.authorization_servers),
            "bearer_methods_supported": ["header"],
        }
        if self.scopes_supported:
            document["scopes_supported"] = list(self.scopes_supported)
        if self.resource_name:
            document["resource_name"] = self.resource_name
        return document


def protected_resource_endpoint(resource: ProtectedResource) -> Callable[[Request], Awaitable[Response]]:
    document = resource.document()

    async def metadata(request: Request) -> Response:
        return JSONResponse(document, headers={"Cache-Control": "max-age=3600"})

    return metadata


def protected_resource_route(resource: ProtectedResource) -> Route:
    """A route for ``Starlette(routes=[...])`` or ``app.router.routes.append(...)`` in FastAPI."""
    return Route(resource.metadata_path, protected_resource_endpoint(resource), methods=["GET"])


def require_scopes(
    verifier: TokenVerifier, *scopes: str, resource: ProtectedResource | None = None, realm: str | None = None
) -> Callable[[Request], Awaitable[VerifiedToken]]:
    """A FastAPI dependency (``Depends(require_scopes(verifier, "orders.read"))``) returning the verified
    token, or raising an HTTPException with the challenge: 401 without a token (no error code, RFC 6750
    §3.1) or with a bad one, 403 insufficient_scope, 400 invalid_request, 503 when the issuer's keys cannot
    be fetched. Starlette code can call it with the request directly."""
    required = tuple(scopes)

    async def dependency(request: Request) -> VerifiedToken:
        try:
            token = _bearer_token(request)
            if token is None:
                raise _challenge(401, None, required, resource, realm, "a bearer token is required")
            return await verifier.verify(token, required)
        except BearerTokenError as error:
            raise _challenge(error.status_code, error, required, resource, realm, error.description) from None
        except VerifierUnavailable:
            raise HTTPException(
                503, "the token issuer's keys are unavailable", {"Retry-After": "5"}
            ) from None

    return dependency


def _bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer``; None when the request has no Bearer credentials."""
    values = request.headers.getlist("authorization")
    bearer = [value for value in values if value[:7].lower() == "bearer "]
    if not bearer and not any(value.strip().lower() == "bearer" for value in values):
        return None
    if len(values) > 1:
        raise InvalidRequest("more than one Authorization header")  # RFC 6750 §2: one method, once
    token = values[0][7:].strip()
    # RFC 6750 §2.1: b64token syntax.
    if not token or not re.fullmatch(r"[A-Za-z0-9\-._~+/]+=*", token):
        raise InvalidRequest("the Authorization header is not 'Bearer <token>'")
    return token


def _challenge(
    status: int,
    error: BearerTokenError | None,
    required: Iterable[str],
    resource: ProtectedResource | None,
    realm: str | None,
    description: str,
) -> HTTPException:
    parameters = []
    if realm:
        parameters.append(f'realm="{_quoted(realm)}"')
    if error is not None:  # RFC 6750 §3.1: no error code when the request had no token at all
        parameters.append(f'error="{error.error}"')
        parameters.append(f'error_description="{_quoted(description)}"')
    scope = " ".join(required)
    if scope and (error is None or error.error == "insufficient_scope"):
        parameters.append(f'scope="{_quoted(scope)}"')
    if resource is not None:
        parameters.append(f'resource_metadata="{resource.metadata_url}"')  # RFC 9728 §5.1
    header = "Bearer" + (" " + ", ".join(parameters) if parameters else "")
    return HTTPException(status, description, {"WWW-Authenticate": header})


def _quoted(value: str) -> str:
    return _NOT_ALLOWED.sub("?", value)
