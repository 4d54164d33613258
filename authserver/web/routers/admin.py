"""The admin API (bearer AUTHSERVER_ADMIN_TOKEN): the operator registers clients and rotates their secrets.

PUT is an idempotent upsert keyed by client_id: repeating it (an operator restart, a lost response)
never creates a duplicate and never changes the secret unless a different one is sent.
"""

from __future__ import annotations

import hmac
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from starlette.requests import Request
from starlette.responses import Response

from authserver.admin.consents import UserConsents, revoke_user_consents, user_consents
from authserver.admin.registration import ClientRegistration, ClientView, SecretRotation, register
from authserver.protocol.client_secret_rotation import rotate_client_secret
from authserver.protocol.errors import InvalidRequest, OAuthError
from authserver.web.dependencies import services
from authserver.web.errors import NO_STORE, json_response
from authserver.web.openapi import errors


class AdminUnauthorized(OAuthError):
    error = "invalid_token"
    status_code = 401

    def __init__(self, description: str) -> None:
        super().__init__(description, headers={"WWW-Authenticate": 'Bearer realm="authyard-admin"'})


class NotFound(OAuthError):
    error = "not_found"
    status_code = 404


def require_admin(request: Request) -> None:
    configured = services(request).settings.admin_token
    if configured is None:
        raise AdminUnauthorized("the admin API is disabled: AUTHSERVER_ADMIN_TOKEN is not set")
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    presented = presented.strip()
    expected = configured.get_secret_value().encode()
    if scheme.lower() != "bearer" or not presented or not hmac.compare_digest(presented.encode(), expected):
        raise AdminUnauthorized("a valid admin bearer token is required")


router = APIRouter(
    prefix="/admin", tags=["Admin"], dependencies=[Depends(require_admin)], responses=errors(400, 401)
)
_CLIENT_ID_PATH = r"^[A-Za-z0-9._~:-]{1,255}$"
_USERNAME = Path(min_length=1, max_length=255, description="The user's username")


def _check_client_id(client_id: str) -> str:
    if not re.match(_CLIENT_ID_PATH, client_id):
        raise InvalidRequest("client_id must be 1-255 characters of A-Z a-z 0-9 . _ ~ : -")
    return client_id


@router.get("/clients", summary="List clients", response_model=list[ClientView])
async def list_clients(
    request: Request,
    after: Annotated[str | None, Query(max_length=255, description="Page after this client_id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    registered = await services(request).registry.list_registered_clients(after, limit)
    return json_response([ClientView.of(client).model_dump() for client in registered], headers=NO_STORE)


@router.get("/clients/{client_id}", summary="Read a client", response_model=ClientView, responses=errors(404))
async def get_client(request: Request, client_id: str) -> Response:
    registered = await services(request).registry.get_registered_client(_check_client_id(client_id))
    if registered is None:
        raise NotFound(f"no client {client_id}")
    return json_response(ClientView.of(registered).model_dump(), headers=NO_STORE)


@router.put(
    "/clients/{client_id}",
    summary="Create or update a client (idempotent upsert)",
    response_model=ClientView,
    responses={201: {"description": "Created", "model": ClientView}},
)
async def put_client(request: Request, client_id: str, registration: ClientRegistration) -> Response:
    svc = services(request)
    result = await register(
        svc.registry, _check_client_id(client_id), registration, svc.keyset().id_token_algorithms
    )
    svc.clients.invalidate(client_id)
    view = ClientView.of(result.registered, result.generated_secret)
    return json_response(view.model_dump(), 201 if result.created else 200, NO_STORE)


@router.post(
    "/clients/{client_id}/rotate-secret",
    summary="Rotate the client secret; the previous one works until the grace period ends",
    response_model=ClientView,
    responses=errors(404),
)
async def rotate_secret(request: Request, client_id: str, rotation: SecretRotation) -> Response:
    svc = services(request)
    result = await rotate_client_secret(
        svc.registry, _check_client_id(client_id), rotation.client_secret, rotation.grace
    )
    svc.clients.invalidate(client_id)
    if result is None:
        raise NotFound(f"no client {client_id}")
    return json_response(
        ClientView.of(result.registered, result.generated_secret).model_dump(), headers=NO_STORE
    )


@router.delete(
    "/clients/{client_id}",
    summary="Delete a client and revoke its grants (refresh tokens and their access tokens)",
    status_code=204,
    responses=errors(404),
)
async def delete_client(request: Request, client_id: str) -> Response:
    svc = services(request)
    deleted = await svc.registry.delete_registered_client(
        _check_client_id(client_id), svc.settings.access_token_ttl
    )
    svc.clients.invalidate(client_id)
    if not deleted:
        raise NotFound(f"no client {client_id}")
    return Response(status_code=204)


@router.get(
    "/users/{username}/consents",
    summary="List what a user allowed each client (remembered consent)",
    response_model=UserConsents,
    responses=errors(404),
)
async def list_consents(request: Request, username: Annotated[str, _USERNAME]) -> Response:
    found = await user_consents(services(request).store, username)
    if found is None:
        raise NotFound(f"no user {username}")
    return json_response(found.model_dump(mode="json"), headers=NO_STORE)


@router.delete(
    "/users/{username}/consents",
    summary="Revoke all of a user's remembered consents: every client asks again",
    status_code=204,
    responses=errors(404),
)
async def revoke_all_consents(request: Request, username: Annotated[str, _USERNAME]) -> Response:
    if await revoke_user_consents(services(request).store, username, None) is None:
        raise NotFound(f"no user {username}")
    return Response(status_code=204)


@router.delete(
    "/users/{username}/consents/{client_id}",
    summary="Revoke a user's remembered consent to one client: it asks again",
    status_code=204,
    responses=errors(404),
)
async def revoke_client_consent(
    request: Request, username: Annotated[str, _USERNAME], client_id: str
) -> Response:
    revoked = await revoke_user_consents(services(request).store, username, _check_client_id(client_id))
    if revoked is None:
        raise NotFound(f"no user {username}")
    if revoked is False:
        raise NotFound(f"{username} has no consent for {client_id}")
    return Response(status_code=204)
