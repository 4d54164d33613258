"""The users admin API over HTTP, on SQLite and PostgreSQL: every call, its authentication, its errors as
RFC 6749 JSON, the password policy, and what disabling, a password reset and deleting do to sign-in and
to the user's refresh tokens. No response ever carries a password hash."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from harness.polling import wait_for
from tests.support.oauth import (
    CALLBACK,
    PASSWORD,
    admin_headers,
    authorization_request,
    authorize_code,
    hidden_fields,
    redeem_code,
    refresh,
)

WRONG = "Wrong username or password."


def _name(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _admin(http: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """An admin call; its answer never carries a password hash (every response of this module is scanned)."""
    response = await http.request(method, path, headers=admin_headers(), **kwargs)
    assert "$argon2" not in response.text and "password_hash" not in response.text, response.text
    if response.headers.get("content-type", "").startswith("application/json"):
        assert "password_hash" not in json.dumps(response.json())
    return response


async def _create(http: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"username": _name(), "password": PASSWORD, "email": "someone@example.com", **fields}
    response = await _admin(http, "POST", "/admin/users", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _login(http: httpx.AsyncClient, client_id: str, username: str, password: str) -> httpx.Response:
    params, _ = authorization_request(client_id, scope="openid", state="s", prompt="login")
    page = await http.get(f"/authorize?{urlencode(params)}")
    assert page.status_code == 200, page.text
    return await http.post(
        "/authorize/login", data={**hidden_fields(page.text), "username": username, "password": password}
    )


async def _tokens(http: httpx.AsyncClient, client_id: str, username: str) -> dict[str, Any]:
    code, verifier = await authorize_code(http, client_id, CALLBACK, username, scope="openid read")
    response = await redeem_code(http, code, verifier, client_id=client_id)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _error(response: httpx.Response, status: int, error: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error, body
    return str(body.get("error_description", ""))


async def test_every_users_call_requires_the_admin_token(app_client: httpx.AsyncClient) -> None:
    calls = [
        ("GET", "/admin/users", None),
        ("POST", "/admin/users", {"username": "x"}),
        ("GET", "/admin/users/x", None),
        ("PATCH", "/admin/users/x", {"name": "X"}),
        ("POST", "/admin/users/x/disable", None),
        ("POST", "/admin/users/x/enable", None),
        ("POST", "/admin/users/x/password", {"password": PASSWORD}),
        ("DELETE", "/admin/users/x", None),
    ]
    for method, path, body in calls:
        for headers in ({}, {"Authorization": "Bearer not-the-admin-token-at-all"}):
            response = await app_client.request(method, path, json=body, headers=headers)
            _error(response, 401, "invalid_token")
            assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_user_is_created_read_listed_updated_and_deleted(app_client: httpx.AsyncClient) -> None:
    created = await _create(app_client, name="Bea", email_verified=True)
    username = created["username"]
    assert created == {
        "user_id": created["user_id"],
        "username": username,
        "email": "someone@example.com",
        "email_verified": True,
        "name": "Bea",
        "disabled": False,
        "password_set": True,
        "groups": [],
    }
    read = await _admin(app_client, "GET", f"/admin/users/{username}")
    assert read.status_code == 200 and read.json() == created and read.headers["cache-control"] == "no-store"

    others = sorted([(await _create(app_client))["username"] for _ in range(3)] + [username])
    first = await _admin(app_client, "GET", "/admin/users", params={"limit": 2})
    assert first.status_code == 200 and len(first.json()) == 2
    listed: list[str] = []
    after = None
    while True:  # paged like clients: after the last username of the previous page
        page = await _admin(
            app_client, "GET", "/admin/users", params={"limit": 2, **({"after": after} if after else {})}
        )
        names = [entry["username"] for entry in page.json()]
        if not names:
            break
        listed += names
        after = names[-1]
    assert listed == sorted(listed) and set(others) <= set(listed)

    patched = await _admin(
        app_client, "PATCH", f"/admin/users/{username}", json={"email": "bea@example.org", "name": "Bea B"}
    )
    assert patched.status_code == 200, patched.text
    # A new address is not verified unless the request says so.
    assert (patched.json()["email"], patched.json()["email_verified"], patched.json()["name"]) == (
        "bea@example.org",
        False,
        "Bea B",
    )
    verified = await _admin(app_client, "PATCH", f"/admin/users/{username}", json={"email_verified": True})
    assert verified.json()["email_verified"] is True and verified.json()["name"] == "Bea B"

    deleted = await _admin(app_client, "DELETE", f"/admin/users/{username}")
    assert deleted.status_code == 204
    _error(await _admin(app_client, "GET", f"/admin/users/{username}"), 404, "not_found")
    _error(await _admin(app_client, "DELETE", f"/admin/users/{username}"), 404, "not_found")


async def test_bad_input_is_an_rfc6749_error_and_the_password_policy_says_why(
    app_client: httpx.AsyncClient,
) -> None:
    username = _name()
    for body, expected in [
        ({"username": username, "password": "short"}, "at least 8 characters"),
        ({"username": username, "password": "x" * 257}, "at most 256 characters"),
        ({"username": username, "password": f"My{username.upper()}!pw"}, "must not contain the username"),
        ({"username": username, "password": "kim.lee-secret", "email": "kim.lee@example.com"}, "e-mail"),
        ({"username": "has space", "password": PASSWORD}, "username"),
        ({"username": username, "password": PASSWORD, "email": "not-an-address"}, "email"),
        ({"username": username, "password": PASSWORD, "role": "admin"}, "role"),
        ({"password": PASSWORD}, "username"),
    ]:
        response = await _admin(app_client, "POST", "/admin/users", json=body)
        assert expected in _error(response, 400, "invalid_request"), (body, response.text)
        assert body.get("password", "") not in response.text or body["password"] == PASSWORD
    _error(await _admin(app_client, "GET", f"/admin/users/{username}"), 404, "not_found")

    created = await _create(app_client, username=username)
    again = await _admin(
        app_client, "POST", "/admin/users", json={"username": username, "password": PASSWORD}
    )
    _error(again, 409, "conflict")
    weak = await _admin(app_client, "POST", f"/admin/users/{username}/password", json={"password": "1234567"})
    assert "at least 8" in _error(weak, 400, "invalid_request")
    malformed = await app_client.post(
        f"/admin/users/{username}/password", content=b"{not json", headers=admin_headers()
    )
    _error(malformed, 400, "invalid_request")
    for method, suffix, body in [
        ("PATCH", "", {"name": "N"}),
        ("POST", "/disable", None),
        ("POST", "/enable", None),
        ("POST", "/password", {"password": PASSWORD}),
    ]:
        missing = await _admin(app_client, method, f"/admin/users/{_name()}{suffix}", json=body)
        _error(missing, 404, "not_found")
    assert (await _admin(app_client, "GET", f"/admin/users/{username}")).json() == created


async def test_a_user_without_a_password_cannot_sign_in_until_one_is_set(
    app_client: httpx.AsyncClient, web_client: str
) -> None:
    created = await _create(app_client, password=None)
    username = created["username"]
    assert created["password_set"] is False
    for attempt in ("", PASSWORD):
        refused = await _login(app_client, web_client, username, attempt)
        assert refused.status_code == 401 and WRONG in refused.text
    changed = await _admin(
        app_client, "POST", f"/admin/users/{username}/password", json={"password": PASSWORD}
    )
    assert changed.status_code == 200 and changed.json()["password_set"] is True
    await _tokens(app_client, web_client, username)


async def test_a_disabled_user_cannot_sign_in_and_their_tokens_are_refused(
    app_client: httpx.AsyncClient, web_client: str
) -> None:
    username = (await _create(app_client))["username"]
    tokens = await _tokens(app_client, web_client, username)
    # A code issued before the user is disabled, redeemed after.
    code, verifier = await authorize_code(app_client, web_client, CALLBACK, username, scope="openid read")

    disabled = await _admin(app_client, "POST", f"/admin/users/{username}/disable")
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True

    right = await _login(app_client, web_client, username, PASSWORD)
    wrong = await _login(app_client, web_client, username, "not " + PASSWORD)
    assert (right.status_code, wrong.status_code) == (401, 401)
    assert WRONG in right.text and WRONG in wrong.text  # the same answer: no telling disabled from wrong

    _error(await refresh(app_client, tokens["refresh_token"], client_id=web_client), 400, "invalid_grant")
    _error(await redeem_code(app_client, code, verifier, client_id=web_client), 400, "invalid_grant")

    async def userinfo_refused() -> bool:
        answer = await app_client.get(
            "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        return answer.status_code == 401

    await wait_for(userinfo_refused, message="the disabled user's access token is still accepted")

    enabled = await _admin(app_client, "POST", f"/admin/users/{username}/enable")
    assert enabled.status_code == 200 and enabled.json()["disabled"] is False
    await _tokens(app_client, web_client, username)
    # What disabling revoked stays revoked.
    _error(await refresh(app_client, tokens["refresh_token"], client_id=web_client), 400, "invalid_grant")


@pytest.mark.parametrize("revoke", [False, True])
async def test_a_password_reset_optionally_revokes_the_users_refresh_tokens(
    app_client: httpx.AsyncClient, web_client: str, revoke: bool
) -> None:
    username = (await _create(app_client))["username"]
    tokens = await _tokens(app_client, web_client, username)
    new_password = "a different long passphrase"
    reset = await _admin(
        app_client,
        "POST",
        f"/admin/users/{username}/password",
        json={"password": new_password, "revoke_refresh_tokens": revoke},
    )
    assert reset.status_code == 200, reset.text
    assert (await _login(app_client, web_client, username, PASSWORD)).status_code == 401
    assert (await _login(app_client, web_client, username, new_password)).status_code in (200, 303)
    refreshed = await refresh(app_client, tokens["refresh_token"], client_id=web_client)
    if revoke:
        _error(refreshed, 400, "invalid_grant")
    else:
        assert refreshed.status_code == 200, refreshed.text


async def test_deleting_a_user_revokes_their_refresh_tokens_and_forgets_their_consents(
    app_client: httpx.AsyncClient, web_client: str
) -> None:
    username = (await _create(app_client))["username"]
    tokens = await _tokens(app_client, web_client, username)
    consents = await _admin(app_client, "GET", f"/admin/users/{username}/consents")
    assert [entry["client_id"] for entry in consents.json()["consents"]] == [web_client]

    assert (await _admin(app_client, "DELETE", f"/admin/users/{username}")).status_code == 204
    _error(await refresh(app_client, tokens["refresh_token"], client_id=web_client), 400, "invalid_grant")
    _error(await _admin(app_client, "GET", f"/admin/users/{username}/consents"), 404, "not_found")
    # Someone created later under the same name starts with nothing allowed.
    again = await _create(app_client, username=username)
    listed = await _admin(app_client, "GET", f"/admin/users/{username}/consents")
    assert listed.json() == {"username": username, "user_id": again["user_id"], "consents": []}


async def test_the_users_calls_are_in_the_openapi_document(app_client: httpx.AsyncClient) -> None:
    paths = (await app_client.get("/openapi.json")).json()["paths"]
    assert set(paths["/admin/users"]) >= {"get", "post"}
    assert set(paths["/admin/users/{username}"]) >= {"get", "patch", "delete"}
    for action in ("disable", "enable", "password"):
        assert "post" in paths[f"/admin/users/{{username}}/{action}"]
    assert "409" in paths["/admin/users"]["post"]["responses"]


async def test_a_users_groups_are_set_at_creation_replaced_and_kept_when_not_named(
    app_client: httpx.AsyncClient,
) -> None:
    created = await _create(app_client, groups=["admins", "devs", "admins"])
    username = created["username"]
    assert created["groups"] == ["admins", "devs"]  # each once, in order
    renamed = await _admin(app_client, "PATCH", f"/admin/users/{username}", json={"name": "G"})
    assert renamed.json()["groups"] == ["admins", "devs"]  # not named: unchanged
    replaced = await _admin(app_client, "PATCH", f"/admin/users/{username}", json={"groups": ["sre"]})
    assert replaced.status_code == 200 and replaced.json()["groups"] == ["sre"]
    cleared = await _admin(app_client, "PATCH", f"/admin/users/{username}", json={"groups": []})
    assert cleared.json()["groups"] == []
    for bad in ([" padded"], [""], ["x" * 256], "admins"):
        refused = await _admin(app_client, "PATCH", f"/admin/users/{username}", json={"groups": bad})
        assert "groups" in _error(refused, 400, "invalid_request"), bad
