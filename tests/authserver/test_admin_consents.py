"""Remembered consent through the admin API: list a user's, revoke one client's or all, and the consent
page comes back; deleting a client forgets what users allowed it. Both databases."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx

from authserver.protocol.models import User
from tests.support.oauth import (
    CALLBACK,
    PASSWORD,
    admin_headers,
    authorization_request,
    hidden_fields,
    query_of,
    register,
)

CONSENT_FORM = 'action="/authorize/consent"'


async def _client(app_client: httpx.AsyncClient) -> str:
    client_id, _ = await register(
        app_client,
        type="public",
        grant_types=["authorization_code"],
        scopes=["openid", "profile"],
        redirect_uris=[CALLBACK],
    )
    return client_id


async def _authorize(app_client: httpx.AsyncClient, client_id: str, **extra: str) -> httpx.Response:
    params, _ = authorization_request(client_id, scope="openid profile", state="s", **extra)
    return await app_client.get(f"/authorize?{urlencode(params)}")


async def _consent(app_client: httpx.AsyncClient, client_id: str, user: User) -> None:
    """Sign in (prompt=login) and allow: the consent is remembered."""
    page = await _authorize(app_client, client_id, prompt="login")
    login = await app_client.post(
        "/authorize/login", data={**hidden_fields(page.text), "username": user.username, "password": PASSWORD}
    )
    assert CONSENT_FORM in login.text, login.text
    allowed = await app_client.post(
        "/authorize/consent", data={**hidden_fields(login.text), "decision": "allow"}
    )
    assert "code" in query_of(allowed.headers["location"])


async def _asks_consent(app_client: httpx.AsyncClient, client_id: str) -> bool:
    response = await _authorize(app_client, client_id)
    if response.status_code == 302:
        assert "code" in query_of(response.headers["location"])
        return False
    assert response.status_code == 200 and CONSENT_FORM in response.text, response.text
    return True


async def test_a_users_consents_are_listed_and_revoked_by_client_or_all(
    app_client: httpx.AsyncClient, user: User
) -> None:
    first, second = await _client(app_client), await _client(app_client)
    await _consent(app_client, first, user)
    await _consent(app_client, second, user)
    assert not await _asks_consent(app_client, first) and not await _asks_consent(app_client, second)

    listed = await app_client.get(f"/admin/users/{user.username}/consents", headers=admin_headers())
    assert listed.status_code == 200 and listed.headers["cache-control"] == "no-store"
    body = listed.json()
    assert (body["username"], body["user_id"]) == (user.username, user.user_id)
    mine = {entry["client_id"]: entry for entry in body["consents"] if entry["client_id"] in (first, second)}
    assert set(mine) == {first, second} and sorted(mine[first]["scopes"]) == ["openid", "profile"]
    assert mine[first]["granted_at"]

    one = await app_client.delete(f"/admin/users/{user.username}/consents/{first}", headers=admin_headers())
    assert one.status_code == 204
    assert await _asks_consent(app_client, first) and not await _asks_consent(app_client, second)
    again = await app_client.delete(f"/admin/users/{user.username}/consents/{first}", headers=admin_headers())
    assert again.status_code == 404 and again.json()["error"] == "not_found"

    every = await app_client.delete(f"/admin/users/{user.username}/consents", headers=admin_headers())
    assert every.status_code == 204
    assert await _asks_consent(app_client, second)
    empty = await app_client.get(f"/admin/users/{user.username}/consents", headers=admin_headers())
    assert empty.json()["consents"] == []


async def test_consent_admin_needs_the_admin_token_and_a_known_user(
    app_client: httpx.AsyncClient, user: User
) -> None:
    for method in ("GET", "DELETE"):
        refused = await app_client.request(method, f"/admin/users/{user.username}/consents")
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_token"
        unknown = await app_client.request(
            method, "/admin/users/nobody-here/consents", headers=admin_headers()
        )
        assert unknown.status_code == 404
    bad = await app_client.delete(f"/admin/users/{user.username}/consents/bad%20id", headers=admin_headers())
    assert bad.status_code == 400
    paths = (await app_client.get("/openapi.json")).json()["paths"]
    assert set(paths["/admin/users/{username}/consents"]) == {"get", "delete"}
    assert set(paths["/admin/users/{username}/consents/{client_id}"]) == {"delete"}


async def test_deleting_a_client_forgets_its_consents(app_client: httpx.AsyncClient, user: User) -> None:
    client_id = await _client(app_client)
    await _consent(app_client, client_id, user)
    deleted = await app_client.delete(f"/admin/clients/{client_id}", headers=admin_headers())
    assert deleted.status_code == 204
    await _client_again(app_client, client_id)
    assert await _asks_consent(app_client, client_id)  # registered again under the same id: asks anew


async def _client_again(app_client: httpx.AsyncClient, client_id: str) -> None:
    await register(
        app_client,
        client_id,
        type="public",
        grant_types=["authorization_code"],
        scopes=["openid", "profile"],
        redirect_uris=[CALLBACK],
    )
