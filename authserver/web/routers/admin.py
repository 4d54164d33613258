"""The admin API (bearer AUTHSERVER_ADMIN_TOKEN): the operator registers clients and rotates their secrets;
administrators manage users (never shown a password hash).

PUT is an idempotent upsert keyed by client_id: repeating it (an operator restart, a lost response)
never creates a duplicate and never changes the secret unless a different one is sent.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from starlette.requests import Request
from starlette.responses import Response

from authserver.admin.consents import UserConsents, revoke_user_consents, user_consents
from authserver.admin.identity_providers import IdentityProvidersView
from authserver.admin.registration import ClientRegistration, ClientView, SecretRotation, register
from authserver.admin.sessions import UserSessions, end_user_sessions, user_sessions
from authserver.admin.usage import UsagePage, UsageView, client_usage, usage_page
from authserver.admin.users import (
    NewUser,
    PasswordReset,
    UserChange,
    UserView,
    create_user,
    reset_password,
    set_disabled,
    update_user,
)
from authserver.protocol.client_secret_rotation import rotate_client_secret
from authserver.protocol.errors import InvalidRequest, OAuthError
from authserver.protocol.models import User
from authserver.protocol.session_end import EndReason
from authserver.protocol.store import WorkloadTaken
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


class Conflict(OAuthError):
    error = "conflict"
    status_code = 409


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


@router.get(
    "/clients/{client_id}/usage",
    summary="A client's usage: last token, tokens in the last hour and day, last token endpoint error",
    response_model=UsageView,
    responses=errors(404),
)
async def get_client_usage(request: Request, client_id: str) -> Response:
    svc = services(request)
    if await svc.registry.get_registered_client(_check_client_id(client_id)) is None:
        raise NotFound(f"no client {client_id}")
    view = await client_usage(svc.store, client_id)
    return json_response(view.model_dump(mode="json"), headers=NO_STORE)


@router.get(
    "/usage",
    summary="Usage of every client with any recorded (in pages, by client_id)",
    response_model=UsagePage,
)
async def list_usage(
    request: Request,
    after: Annotated[str | None, Query(max_length=255, description="Page after this client_id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    since: Annotated[
        datetime | None, Query(description="Only clients with a token or an error since then (RFC 3339)")
    ] = None,
) -> Response:
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    page = await usage_page(services(request).store, after, limit, since)
    return json_response(page.model_dump(mode="json"), headers=NO_STORE)


@router.put(
    "/clients/{client_id}",
    summary="Create or update a client (idempotent upsert)",
    response_model=ClientView,
    responses={201: {"description": "Created", "model": ClientView}, **errors(409)},
)
async def put_client(request: Request, client_id: str, registration: ClientRegistration) -> Response:
    svc = services(request)
    try:
        result = await register(
            svc.registry,
            _check_client_id(client_id),
            registration,
            svc.keyset().id_token_algorithms,
            [issuer.name for issuer in svc.settings.trusted_issuers],
        )
    except WorkloadTaken:
        raise Conflict("another client is registered for this workload_identity (issuer, subject)") from None
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


# Sign-in sessions ---------------------------------------------------------------------------------------
_SESSION_ID = Path(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The session's id (its ID tokens' sid)")


@router.get(
    "/users/{username}/sessions",
    summary="List a user's sign-in sessions and the clients each signed into",
    response_model=UserSessions,
    responses=errors(404),
)
async def list_sessions(request: Request, username: Annotated[str, _USERNAME]) -> Response:
    svc = services(request)
    found = await user_sessions(svc.store, svc.sessions, username)
    if found is None:
        raise NotFound(f"no user {username}")
    return json_response(found.model_dump(mode="json"), headers=NO_STORE)


@router.delete(
    "/users/{username}/sessions",
    summary="End all of a user's sign-in sessions: their refresh tokens (and access tokens) are revoked",
    status_code=204,
    responses=errors(404),
)
async def end_all_sessions(request: Request, username: Annotated[str, _USERNAME]) -> Response:
    svc = services(request)
    if await end_user_sessions(svc.store, svc.sessions, username) is None:
        raise NotFound(f"no user {username}")
    await svc.sync_revocations()  # this worker refuses the session's access tokens at once
    return Response(status_code=204)


@router.delete(
    "/sessions/{session_id}",
    summary="End one sign-in session: its refresh tokens (and access tokens) are revoked",
    status_code=204,
    responses=errors(404),
)
async def end_session(request: Request, session_id: Annotated[str, _SESSION_ID]) -> Response:
    svc = services(request)
    if await svc.sessions.end(session_id, EndReason.REVOKED) is None:
        raise NotFound(f"no live session {session_id}")
    await svc.sync_revocations()
    return Response(status_code=204)


# Users --------------------------------------------------------------------------------------------------


def _user_view(user: User | None, username: str, status_code: int = 200) -> Response:
    if user is None:
        raise NotFound(f"no user {username}")
    return json_response(UserView.of(user).model_dump(), status_code, NO_STORE)


@router.get(
    "/identity-providers",
    summary="Sign-in methods and whether each upstream identity provider can be used now",
    response_model=IdentityProvidersView,
)
async def identity_providers(request: Request) -> Response:
    svc = services(request)
    health = await svc.upstream_health.check() if svc.upstream_health is not None else []
    view = IdentityProvidersView.of(svc.identity_providers.local_accounts, health)
    return json_response(view.model_dump(mode="json"), headers=NO_STORE)


@router.get("/users", summary="List users", response_model=list[UserView])
async def list_users(
    request: Request,
    after: Annotated[str | None, Query(max_length=255, description="Page after this username")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    users = await services(request).store.list_users(after, limit)
    return json_response([UserView.of(user).model_dump() for user in users], headers=NO_STORE)


@router.post(
    "/users",
    summary="Create a user (without a password: no sign-in until one is set)",
    status_code=201,
    response_model=UserView,
    responses=errors(409),
)
async def post_user(request: Request, new: NewUser) -> Response:
    svc = services(request)
    created = await create_user(svc.store, svc.settings.password_policy, new)
    if created is None:
        raise Conflict(f"user {new.username} already exists")
    return _user_view(created, new.username, 201)


@router.get("/users/{username}", summary="Read a user", response_model=UserView, responses=errors(404))
async def get_user(request: Request, username: Annotated[str, _USERNAME]) -> Response:
    return _user_view(await services(request).store.get_user_by_username(username), username)


@router.patch(
    "/users/{username}",
    summary="Change a user's email, email_verified or name",
    response_model=UserView,
    responses=errors(404),
)
async def patch_user(request: Request, username: Annotated[str, _USERNAME], change: UserChange) -> Response:
    return _user_view(await update_user(services(request).store, username, change), username)


def _switch(disabled: bool) -> Callable[[Request, str], Awaitable[Response]]:
    async def switch(request: Request, username: Annotated[str, _USERNAME]) -> Response:
        svc = services(request)
        changed = await set_disabled(svc.store, username, disabled, svc.settings.access_token_ttl)
        if changed is not None and disabled:
            # A disabled user is signed out everywhere: their sessions end (and are announced).
            await svc.sessions.end_for_user(changed.user_id, EndReason.REVOKED)
            await svc.sync_revocations()
        return _user_view(changed, username)

    return switch


for _action, _disabled, _summary in (
    ("disable", True, "Disable a user: no sign-in; their refresh tokens (and access tokens) are revoked"),
    ("enable", False, "Enable a disabled user (tokens revoked when disabling stay revoked)"),
):
    router.add_api_route(
        f"/users/{{username}}/{_action}",
        _switch(_disabled),
        methods=["POST"],
        name=f"{_action}_user",
        summary=_summary,
        response_model=UserView,
        responses=errors(404),
    )


@router.post(
    "/users/{username}/password",
    summary="Set a user's password; optionally revoke their refresh tokens",
    response_model=UserView,
    responses=errors(404),
)
async def set_password(
    request: Request, username: Annotated[str, _USERNAME], reset: PasswordReset
) -> Response:
    svc = services(request)
    user = await svc.store.get_user_by_username(username)
    if user is None:
        raise NotFound(f"no user {username}")
    changed = await reset_password(
        svc.store, svc.settings.password_policy, user, reset, svc.settings.access_token_ttl
    )
    return _user_view(changed, username)


@router.delete(
    "/users/{username}",
    summary="Delete a user: their refresh tokens (and access tokens) are revoked, their consents forgotten",
    status_code=204,
    responses=errors(404),
)
async def delete_user(request: Request, username: Annotated[str, _USERNAME]) -> Response:
    svc = services(request)
    user = await svc.store.get_user_by_username(username)
    if user is None or not await svc.store.delete_user(username, svc.settings.access_token_ttl):
        raise NotFound(f"no user {username}")
    await svc.sessions.end_for_user(user.user_id, EndReason.REVOKED)
    await svc.sync_revocations()
    return Response(status_code=204)
