"""Loopback redirect URIs of native apps and CLI login helpers (RFC 8252 §7.3): a registered
``http://127.0.0.1/...`` or ``http://[::1]/...`` matches the same URI on whatever port the app listens on;
every other redirect URI is still compared as an exact string, and the token request must repeat the URI
(port included) that the authorization request used."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import pytest

from authserver.protocol.models import User
from tests.support.oauth import authorization_request, authorize_code, redeem_code, register

REGISTERED = ["http://127.0.0.1/callback", "http://[::1]:8400/cb", "https://app.example.com/cb"]


@pytest.fixture(scope="module")
async def native_client(app_client: httpx.AsyncClient) -> str:
    client_id, _ = await register(
        app_client,
        type="public",
        grant_types=["authorization_code"],
        scopes=["openid", "read"],
        redirect_uris=REGISTERED,
    )
    return client_id


@pytest.mark.parametrize("redirect_uri", ["http://127.0.0.1:53124/callback", "http://[::1]:61000/cb"])
async def test_a_loopback_redirect_uri_matches_on_any_port_and_the_code_is_bound_to_that_port(
    app_client: httpx.AsyncClient, native_client: str, user: User, redirect_uri: str
) -> None:
    code, verifier = await authorize_code(
        app_client, native_client, redirect_uri, user.username, scope="openid read"
    )
    other_port = redirect_uri.replace(":53124/", ":53125/").replace(":61000/", ":61001/")
    wrong = await redeem_code(app_client, code, verifier, other_port, client_id=native_client)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"

    code, verifier = await authorize_code(
        app_client, native_client, redirect_uri, user.username, scope="openid read"
    )
    token = await redeem_code(app_client, code, verifier, redirect_uri, client_id=native_client)
    assert token.status_code == 200, token.text


async def test_an_error_goes_back_to_the_port_the_request_named(
    app_client: httpx.AsyncClient, native_client: str
) -> None:
    params, _ = authorization_request(native_client, "http://127.0.0.1:40001/callback", response_type="token")
    response = await app_client.get(f"/authorize?{urlencode(params)}")
    assert response.status_code == 302, response.text
    assert response.headers["location"].startswith("http://127.0.0.1:40001/callback?error=")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://app.example.com:8443/cb",  # not loopback: exact match only
        "http://localhost:53124/callback",  # a host name, not the loopback IP literal (RFC 8252 §8.3)
        "http://127.0.0.1:53124/callback/",  # the path must match exactly
        "http://127.0.0.1:53124/callback?x=1",
        "http://[::1]:8400/cb/other",
        "http://127.0.0.2:53124/callback",
        "http://user@127.0.0.1:53124/callback",
        "https://127.0.0.1:53124/callback",  # the scheme is part of the URI
    ],
)
async def test_everything_else_is_still_an_exact_match(
    app_client: httpx.AsyncClient, native_client: str, redirect_uri: str
) -> None:
    params, _ = authorization_request(native_client, redirect_uri)
    response = await app_client.get(f"/authorize?{urlencode(params)}")
    assert response.status_code == 400 and "location" not in response.headers
    assert "not registered" in response.text
