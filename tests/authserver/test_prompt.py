"""``prompt`` over HTTP (OIDC Core §3.1.2.1): the pages and redirects for what
``protocol/authorization_flow.py`` decides, with and without a signed-in browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest

from authserver.protocol.models import User
from tests.support.app import own_browser
from tests.support.oauth import PASSWORD, hidden_fields, pkce_pair, query_of, register

REDIRECT = "http://127.0.0.1:9999/callback"


@pytest.fixture
async def browser(app_client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A browser of its own (its own cookies) on the same application."""
    async with own_browser(app_client, "10.1.2.4") as http:
        yield http


async def _public_client(app_client: httpx.AsyncClient) -> str:
    client_id, _ = await register(
        app_client,
        type="public",
        grant_types=["authorization_code"],
        scopes=["openid"],
        redirect_uris=[REDIRECT],
    )
    return client_id


async def _authorize(browser: httpx.AsyncClient, client_id: str, **extra: str) -> httpx.Response:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "state": "p1",
        "code_challenge": pkce_pair()[1],
        "code_challenge_method": "S256",
        **extra,
    }
    return await browser.get(f"/authorize?{urlencode(params)}")


async def test_prompt_none_answers_at_once_with_what_would_be_needed(
    app_client: httpx.AsyncClient, browser: httpx.AsyncClient, user: User
) -> None:
    client_id = await _public_client(app_client)
    signed_out = await _authorize(browser, client_id, prompt="none")
    assert signed_out.status_code == 302 and signed_out.headers["location"].startswith(f"{REDIRECT}?")
    assert query_of(signed_out.headers["location"]) == {
        "error": "login_required",
        "state": "p1",
        "iss": "http://testserver",
    }

    page = await _authorize(browser, client_id)
    assert page.status_code == 200 and 'action="/authorize/login"' in page.text
    login = await browser.post(
        "/authorize/login", data={**hidden_fields(page.text), "username": user.username, "password": PASSWORD}
    )
    assert login.status_code == 200 and 'action="/authorize/consent"' in login.text

    signed_in = await _authorize(browser, client_id, prompt="none")
    assert signed_in.status_code == 302
    assert query_of(signed_in.headers["location"])["error"] == "consent_required"
    # Signed in: consent straight away, unless the client asks for the password again.
    assert 'action="/authorize/consent"' in (await _authorize(browser, client_id)).text
    assert 'action="/authorize/consent"' in (await _authorize(browser, client_id, prompt="consent")).text
    fresh = await _authorize(browser, client_id, prompt="login")
    assert fresh.status_code == 200 and 'action="/authorize/login"' in fresh.text


async def test_an_unknown_prompt_or_none_with_another_goes_back_to_the_client_as_invalid_request(
    app_client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    client_id = await _public_client(app_client)
    for prompt in ("create", "none consent"):
        response = await _authorize(browser, client_id, prompt=prompt)
        assert response.status_code == 302
        assert query_of(response.headers["location"])["error"] == "invalid_request", prompt


async def test_select_account_shows_the_login_page_even_when_signed_in(
    app_client: httpx.AsyncClient, browser: httpx.AsyncClient, user: User
) -> None:
    client_id = await _public_client(app_client)
    page = await _authorize(browser, client_id)
    login = await browser.post(
        "/authorize/login", data={**hidden_fields(page.text), "username": user.username, "password": PASSWORD}
    )
    assert 'action="/authorize/consent"' in login.text
    chooser = await _authorize(browser, client_id, prompt="select_account")
    assert chooser.status_code == 200 and 'action="/authorize/login"' in chooser.text
