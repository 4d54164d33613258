"""authorization_code + PKCE through the login/consent pages, OpenID Connect, refresh rotation."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import urlencode

import httpx
import pytest

from authserver.protocol.models import User
from tests.support.oauth import (
    CALLBACK,
    authorization_request,
    authorize_code,
    hidden_fields,
    pkce_pair,
    query_of,
    redeem_code,
    refresh,
    register,
)


def _verify(http: httpx.AsyncClient, token: str) -> dict:
    return http.app.state.services.keyset().verify(token, options={"verify_aud": False})  # type: ignore[attr-defined]


async def test_code_flow_issues_access_refresh_and_id_token(app_client, web_client, user: User) -> None:
    code, verifier = await authorize_code(app_client, web_client, CALLBACK, user.username)
    response = await redeem_code(app_client, code, verifier, client_id=web_client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "openid profile email read" and body["refresh_token"]
    access = _verify(app_client, body["access_token"])
    assert access["sub"] == user.user_id and access["client_id"] == web_client
    assert access["aud"] == "https://api.example.com" and access["auth_time"] > 0

    id_token = _verify(app_client, body["id_token"])
    assert id_token["aud"] == web_client and id_token["nonce"] == "n-0S6_WzA2Mj"
    assert id_token["auth_time"] == access["auth_time"] and id_token["email"] == "alice@example.com"
    digest = hashlib.sha256(body["access_token"].encode()).digest()
    assert id_token["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()

    info = await app_client.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert info.json() == {
        "sub": user.user_id,
        "preferred_username": user.username,
        "name": "Alice Example",
        "email": "alice@example.com",
        "email_verified": True,
        "updated_at": id_token["updated_at"],  # the profile scope's claims are in both (OIDC Core §5.4)
    }


async def test_userinfo_releases_only_what_the_scope_allows(app_client, web_client, user: User) -> None:
    code, verifier = await authorize_code(
        app_client, web_client, CALLBACK, user.username, scope="openid read"
    )
    token = (await redeem_code(app_client, code, verifier, client_id=web_client)).json()["access_token"]
    info = await app_client.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert info.json() == {"sub": user.user_id}
    missing = await app_client.get("/userinfo")
    assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")


async def test_code_is_single_use_and_replay_revokes_its_refresh_family(app_client, web_client, user) -> None:
    code, verifier = await authorize_code(app_client, web_client, CALLBACK, user.username)
    first = await redeem_code(app_client, code, verifier, client_id=web_client)
    assert first.status_code == 200
    replay = await redeem_code(app_client, code, verifier, client_id=web_client)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    refreshed = await refresh(app_client, first.json()["refresh_token"], client_id=web_client)
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


async def test_pkce_verifier_must_match(app_client, web_client, user) -> None:
    code, _ = await authorize_code(app_client, web_client, CALLBACK, user.username)
    wrong, _ = pkce_pair()
    response = await redeem_code(app_client, code, wrong, client_id=web_client)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    code, _ = await authorize_code(app_client, web_client, CALLBACK, user.username)
    missing = await redeem_code(app_client, code, None, client_id=web_client)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


async def test_code_bound_to_client_and_redirect_uri(app_client, web_client, user) -> None:
    other, _ = await register(
        app_client,
        type="public",
        grant_types=["authorization_code"],
        scopes=["read"],
        redirect_uris=[CALLBACK],
    )
    code, verifier = await authorize_code(app_client, web_client, CALLBACK, user.username)
    stolen = await redeem_code(app_client, code, verifier, client_id=other)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    code, verifier = await authorize_code(app_client, web_client, CALLBACK, user.username)
    moved = await redeem_code(app_client, code, verifier, "http://127.0.0.1:9999/other", client_id=web_client)
    assert moved.status_code == 400 and moved.json()["error"] == "invalid_grant"


async def _authorize(http: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await http.get(f"/authorize?{urlencode(params)}")


async def test_authorize_never_redirects_to_unregistered_uris(app_client, web_client) -> None:
    base, _ = authorization_request(web_client)
    del base["redirect_uri"]
    for uri in (
        "https://evil.example.com/callback",
        CALLBACK + "/extra",
        CALLBACK + "#frag",
        "http://attacker@127.0.0.1:9999/callback",
        CALLBACK.upper(),
    ):
        response = await _authorize(app_client, **base, redirect_uri=uri)
        assert response.status_code == 400, uri
        assert "location" not in response.headers
        assert "not registered" in response.text
    unknown = await _authorize(app_client, **{**base, "client_id": "nope"}, redirect_uri=CALLBACK)
    assert unknown.status_code == 400 and "location" not in unknown.headers


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": None}, "invalid_request"),
        ({"response_type": "token"}, "invalid_request"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"resource": "https://elsewhere.example.com"}, "invalid_target"),
    ],
)
async def test_authorize_errors_go_back_to_the_client(app_client, web_client, change, error) -> None:
    params, _ = authorization_request(web_client, state="s1", **change)
    response = await _authorize(app_client, **{k: v for k, v in params.items() if v is not None})
    assert response.status_code == 302
    query = query_of(response.headers["location"])
    assert response.headers["location"].startswith(CALLBACK + "?")
    assert query["error"] == error and query["state"] == "s1" and query["iss"] == "http://testserver"


async def test_wrong_password_and_denied_consent(app_client, web_client, user) -> None:
    params, _ = authorization_request(web_client, state="s2", prompt="login consent")
    page = await _authorize(app_client, **params)
    wrong = await app_client.post(
        "/authorize/login", data={**hidden_fields(page.text), "username": user.username, "password": "wrong"}
    )
    assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
    login = await app_client.post(
        "/authorize/login",
        data={
            **hidden_fields(wrong.text),
            "username": user.username,
            "password": "correct horse battery staple",
        },
    )
    denied = await app_client.post(
        "/authorize/consent", data={**hidden_fields(login.text), "decision": "deny"}
    )
    assert denied.status_code == 303
    query = query_of(denied.headers["location"])
    assert query["error"] == "access_denied" and query["state"] == "s2" and "code" not in query


async def test_login_form_requires_csrf_binding(app_client, web_client, user) -> None:
    params, _ = authorization_request(web_client, prompt="login")
    page = await _authorize(app_client, **params)
    fields = hidden_fields(page.text)
    forged = await app_client.post(
        "/authorize/login",
        data={**fields, "csrf_token": "forged", "username": user.username, "password": "x"},
    )
    assert forged.status_code == 403
    tampered_request = await app_client.post(
        "/authorize/login",
        data={**fields, "request": fields["request"] + "x", "username": user.username, "password": "x"},
    )
    assert tampered_request.status_code == 400
    assert (
        page.headers["x-frame-options"] == "DENY"
        and "frame-ancestors 'none'" in page.headers["content-security-policy"]
    )


async def test_refresh_rotation_and_reuse_detection(app_client, web_client, user) -> None:
    code, verifier = await authorize_code(app_client, web_client, CALLBACK, user.username)
    first = (await redeem_code(app_client, code, verifier, client_id=web_client)).json()["refresh_token"]

    async def rotate(token: str, **extra: str) -> httpx.Response:
        return await refresh(app_client, token, client_id=web_client, **extra)

    second = await rotate(first, scope="read")
    assert second.status_code == 200, second.text
    assert second.json()["scope"] == "read" and second.json()["refresh_token"] != first
    third = await rotate(second.json()["refresh_token"])
    assert third.status_code == 200 and third.json()["scope"] == "openid profile email read"

    reused = await rotate(first)
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # The legitimate holder's newest token died with the family.
    latest = await rotate(third.json()["refresh_token"])
    assert latest.status_code == 400 and latest.json()["error"] == "invalid_grant"


async def test_refresh_cannot_widen_scope(app_client, web_client, user) -> None:
    code, verifier = await authorize_code(
        app_client, web_client, CALLBACK, user.username, scope="openid read"
    )
    token = (await redeem_code(app_client, code, verifier, client_id=web_client)).json()["refresh_token"]
    widened = await refresh(app_client, token, client_id=web_client, scope="openid email")
    assert widened.status_code == 400 and widened.json()["error"] == "invalid_scope"
