"""client_credentials and client authentication, against SQLite and PostgreSQL."""

from __future__ import annotations

import base64

import httpx
import jwt

from tests.support.oauth import basic, register


def _claims(http: httpx.AsyncClient, token: str) -> dict:
    keyset = http.app.state.services.keyset()  # type: ignore[attr-defined]
    return keyset.verify(token, options={"verify_aud": False})


async def test_token_is_an_rfc9068_jwt(app_client: httpx.AsyncClient) -> None:
    client_id, body = await register(app_client, audiences=["https://orders.example.com"])
    response = await app_client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, body["client_secret"])
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    token = response.json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 900 and token["scope"] == "read write"
    assert "refresh_token" not in token
    header = jwt.get_unverified_header(token["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256" and header["kid"]
    claims = _claims(app_client, token["access_token"])
    assert claims["iss"] == "http://testserver"
    assert claims["sub"] == client_id == claims["client_id"]
    assert claims["aud"] == "https://orders.example.com"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["jti"]


async def test_client_secret_post_when_registered_for_it(app_client: httpx.AsyncClient) -> None:
    client_id, body = await register(app_client, token_endpoint_auth_method="client_secret_post")
    ok = await app_client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": body["client_secret"],
        },
    )
    assert ok.status_code == 200
    wrong_method = await app_client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, body["client_secret"])
    )
    assert wrong_method.status_code == 401 and wrong_method.json()["error"] == "invalid_client"


async def test_scope_subset_and_resource_indicator(app_client: httpx.AsyncClient) -> None:
    client_id, body = await register(app_client, audiences=["https://a.example.com", "https://b.example.com"])
    response = await app_client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "read", "resource": "https://b.example.com"},
        headers=basic(client_id, body["client_secret"]),
    )
    assert response.status_code == 200, response.text
    claims = _claims(app_client, response.json()["access_token"])
    assert claims["scope"] == "read" and claims["aud"] == "https://b.example.com"

    refused = await app_client.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": "https://evil.example.com"},
        headers=basic(client_id, body["client_secret"]),
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"


async def test_default_audience_is_issuer_for_client_without_audiences(app_client: httpx.AsyncClient) -> None:
    client_id, body = await register(app_client)
    response = await app_client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, body["client_secret"])
    )
    assert _claims(app_client, response.json()["access_token"])["aud"] == "http://testserver"


async def test_wrong_secret_is_invalid_client_with_challenge(app_client: httpx.AsyncClient) -> None:
    client_id, _ = await register(app_client)
    response = await app_client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, "not-the-secret")
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")
    assert "not-the-secret" not in response.text


async def test_unknown_client_and_malformed_basic(app_client: httpx.AsyncClient) -> None:
    unknown = await app_client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic("nobody", "x")
    )
    assert unknown.status_code == 401 and unknown.json()["error"] == "invalid_client"
    for header in (
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic ",
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Digest abc",
    ):
        response = await app_client.post(
            "/token", data={"grant_type": "client_credentials"}, headers={"Authorization": header}
        )
        assert response.status_code == 401, header
        assert response.json()["error"] == "invalid_client"


async def test_disallowed_scope_and_grant(app_client: httpx.AsyncClient) -> None:
    client_id, body = await register(app_client)
    scope = await app_client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "admin"},
        headers=basic(client_id, body["client_secret"]),
    )
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"
    grant = await app_client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        headers=basic(client_id, body["client_secret"]),
    )
    assert grant.status_code == 400 and grant.json()["error"] == "unauthorized_client"
    unsupported = await app_client.post(
        "/token",
        data={"grant_type": "password", "username": "u"},
        headers=basic(client_id, body["client_secret"]),
    )
    assert unsupported.status_code == 400 and unsupported.json()["error"] == "unsupported_grant_type"


async def test_malformed_requests_are_invalid_request(app_client: httpx.AsyncClient) -> None:
    json_body = await app_client.post("/token", json={"grant_type": "client_credentials"})
    assert json_body.status_code == 400 and json_body.json()["error"] == "invalid_request"
    missing = await app_client.post("/token", data={})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    duplicated = await app_client.post(
        "/token",
        content="grant_type=client_credentials&grant_type=client_credentials",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert duplicated.status_code == 400 and duplicated.json()["error"] == "invalid_request"
    not_utf8 = await app_client.post(
        "/token",
        content=b"grant_type=\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert not_utf8.status_code == 400 and not_utf8.json()["error"] == "invalid_request"
    huge = await app_client.post(
        "/token",
        content=b"a=" + b"x" * 200_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert huge.status_code == 413 and huge.json()["error"] == "invalid_request"
