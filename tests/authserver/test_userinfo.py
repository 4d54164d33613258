"""Userinfo as relying parties call it (OIDC Core §5.3.1, RFC 6750 §2 and §3), named after the OpenID
conformance suite's modules: the token in the header by GET or POST, or in a form body by POST; in one
place only, never in the query; errors with the Bearer challenge."""

from __future__ import annotations

import time

import httpx
import pytest

from authserver.protocol.models import User
from tests.support.oauth import CALLBACK, authorize_code, redeem_code


@pytest.fixture(scope="module")
async def access_token(app_client: httpx.AsyncClient, web_client: str, user: User) -> str:
    code, verifier = await authorize_code(app_client, web_client, CALLBACK, user.username)
    response = await redeem_code(app_client, code, verifier, client_id=web_client)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _is_expected(claims: dict[str, object], user: User) -> bool:
    """The profile and email claims of ``user``; updated_at (OIDC Core §5.1) is when the user was created."""
    updated_at = claims.pop("updated_at", None)
    assert isinstance(updated_at, int) and 1_700_000_000 < updated_at <= time.time()
    return claims == {
        "sub": user.user_id,
        "preferred_username": user.username,
        "name": "Alice Example",
        "email": "alice@example.com",
        "email_verified": True,
    }


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_oidcc_userinfo_get(app_client: httpx.AsyncClient, access_token: str, user: User) -> None:
    response = await app_client.get("/userinfo", headers=_bearer(access_token))
    assert response.status_code == 200 and _is_expected(response.json(), user)
    assert response.headers["cache-control"] == "no-store"


async def test_oidcc_userinfo_post_header(
    app_client: httpx.AsyncClient, access_token: str, user: User
) -> None:
    empty = await app_client.post("/userinfo", headers=_bearer(access_token))
    assert empty.status_code == 200 and _is_expected(empty.json(), user)
    # A body that is not a form is not where a token can be: the header's token answers.
    with_json = await app_client.post("/userinfo", headers=_bearer(access_token), json={"x": 1})
    assert with_json.status_code == 200 and _is_expected(with_json.json(), user)


async def test_oidcc_userinfo_post_body(app_client: httpx.AsyncClient, access_token: str, user: User) -> None:
    response = await app_client.post("/userinfo", data={"access_token": access_token})
    assert response.status_code == 200 and _is_expected(response.json(), user)
    revoked_or_wrong = await app_client.post("/userinfo", data={"access_token": access_token + "x"})
    assert revoked_or_wrong.status_code == 401
    assert revoked_or_wrong.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


def _is_bearer_invalid_request(response: httpx.Response) -> bool:
    return (
        response.status_code == 400
        and response.json()["error"] == "invalid_request"
        and response.headers["www-authenticate"].startswith('Bearer error="invalid_request"')
    )


async def test_a_token_sent_two_ways_is_invalid_request(
    app_client: httpx.AsyncClient, access_token: str
) -> None:
    both = await app_client.post(
        "/userinfo", headers=_bearer(access_token), data={"access_token": access_token}
    )
    assert _is_bearer_invalid_request(both), both.text
    twice = await app_client.post(
        "/userinfo", content=f"access_token={access_token}&access_token={access_token}"
    )
    assert twice.status_code == 401  # no form content type: the body is not read, so no token was sent
    twice_form = await app_client.post("/userinfo", data={"access_token": [access_token, access_token]})
    assert _is_bearer_invalid_request(twice_form), twice_form.text


async def test_a_token_in_the_query_is_invalid_request(
    app_client: httpx.AsyncClient, access_token: str
) -> None:
    alone = await app_client.get("/userinfo", params={"access_token": access_token})
    with_header = await app_client.get(
        "/userinfo", params={"access_token": access_token}, headers=_bearer(access_token)
    )
    by_post = await app_client.post("/userinfo", params={"access_token": access_token})
    for response in (alone, with_header, by_post):
        assert _is_bearer_invalid_request(response), response.text
        assert response.headers["cache-control"] == "no-store"


async def test_no_token_is_a_bare_bearer_challenge(app_client: httpx.AsyncClient) -> None:
    """RFC 6750 §3.1: without any authentication the challenge names no error."""
    for response in (await app_client.get("/userinfo"), await app_client.post("/userinfo", data={"x": "1"})):
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer") and "error=" not in challenge
    basic = await app_client.get("/userinfo", headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401 and 'error="invalid_token"' in basic.headers["www-authenticate"]
