"""First-party clients registered with ``skip_consent``: sign-in goes straight back to them with a code,
``prompt=consent`` still shows the page, ``prompt=none`` needs only the session, and nothing is remembered
for them; an untrusted client keeps asking; a public client qualifies only with redirect URIs no other app
can receive at. Through the real pages over HTTP, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest

from authserver.protocol.models import User
from tests.support.app import own_browser, store_of
from tests.support.oauth import (
    PASSWORD,
    admin_headers,
    authorization_request,
    basic,
    hidden_fields,
    query_of,
    redeem_code,
    register,
)

REDIRECT = "http://127.0.0.1:9998/portal-callback"
LOGIN_FORM = 'action="/authorize/login"'
CONSENT_FORM = 'action="/authorize/consent"'


@pytest.fixture
async def browser(app_client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    async with own_browser(app_client, "10.1.2.6") as http:
        yield http


async def _confidential(app_client: httpx.AsyncClient, *, skip_consent: bool) -> tuple[str, str]:
    """A confidential authorization-code client: (client_id, secret)."""
    client_id, view = await register(
        app_client,
        grant_types=["authorization_code"],
        scopes=["openid", "profile"],
        redirect_uris=[REDIRECT],
        skip_consent=skip_consent,
    )
    assert view["skip_consent"] is skip_consent
    return client_id, view["client_secret"]


class Browser:
    """One browser's walk through the authorization pages for one client."""

    def __init__(self, http: httpx.AsyncClient, client_id: str) -> None:
        self.http, self.client_id = http, client_id
        self.verifier = ""

    async def authorize(self, **extra: str) -> httpx.Response:
        params, self.verifier = authorization_request(
            self.client_id, REDIRECT, scope="openid profile", state="st-trust", nonce="n-trust", **extra
        )
        return await self.http.get(f"/authorize?{urlencode(params)}")

    async def sign_in(self, page: httpx.Response, username: str) -> httpx.Response:
        assert page.status_code == 200 and LOGIN_FORM in page.text, page.text
        fields = {**hidden_fields(page.text), "username": username, "password": PASSWORD}
        return await self.http.post("/authorize/login", data=fields)

    @staticmethod
    def code(response: httpx.Response) -> str:
        """The code on the redirect back to the client (no page in between)."""
        assert response.status_code in (302, 303), response.text
        location = response.headers["location"]
        assert location.startswith(f"{REDIRECT}?"), location
        query = query_of(location)
        assert query["state"] == "st-trust", query
        return query["code"]


async def _redeemed(
    app_client: httpx.AsyncClient, client_id: str, secret: str, code: str, verifier: str
) -> None:
    tokens = await redeem_code(app_client, code, verifier, REDIRECT, headers=basic(client_id, secret))
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["id_token"]


async def test_a_trusted_clients_first_authorization_goes_from_sign_in_to_the_code(
    app_client: httpx.AsyncClient, browser: httpx.AsyncClient, user: User
) -> None:
    client_id, secret = await _confidential(app_client, skip_consent=True)
    walk = Browser(browser, client_id)
    signed_in = await walk.sign_in(await walk.authorize(), user.username)
    assert CONSENT_FORM not in signed_in.text
    await _redeemed(app_client, client_id, secret, walk.code(signed_in), walk.verifier)
    # Signed in now: the next request comes straight back, still without any page.
    await _redeemed(app_client, client_id, secret, walk.code(await walk.authorize()), walk.verifier)
    assert await store_of(app_client).granted_scopes(user.user_id, client_id) == set()


async def test_prompt_consent_still_shows_the_page_to_a_trusted_client(
    app_client: httpx.AsyncClient, browser: httpx.AsyncClient, user: User
) -> None:
    """OIDC Core §3.1.2.1: with prompt=consent the OP MUST prompt the user for consent."""
    client_id, secret = await _confidential(app_client, skip_consent=True)
    walk = Browser(browser, client_id)
    page = await walk.sign_in(await walk.authorize(prompt="consent"), user.username)
    assert page.status_code == 200 and CONSENT_FORM in page.text, page.text
    allowed = await browser.post("/authorize/consent", data={**hidden_fields(page.text), "decision": "allow"})
    await _redeemed(app_client, client_id, secret, walk.code(allowed), walk.verifier)
    denied_page = await walk.authorize(prompt="consent")  # signed in: the consent page at once
    assert CONSENT_FORM in denied_page.text
    denied = await browser.post(
        "/authorize/consent", data={**hidden_fields(denied_page.text), "decision": "deny"}
    )
    assert query_of(denied.headers["location"])["error"] == "access_denied"
    # The answer is not remembered for a trusted client: it is never asked without prompt=consent.
    assert await store_of(app_client).granted_scopes(user.user_id, client_id) == set()


async def test_prompt_none_with_a_session_returns_a_code_for_a_trusted_client(
    app_client: httpx.AsyncClient, browser: httpx.AsyncClient, user: User
) -> None:
    trusted_id, secret = await _confidential(app_client, skip_consent=True)
    untrusted_id, _ = await _confidential(app_client, skip_consent=False)
    trusted, untrusted = Browser(browser, trusted_id), Browser(browser, untrusted_id)
    none = query_of((await trusted.authorize(prompt="none")).headers["location"])
    assert none["error"] == "login_required"  # trusted or not, no session is no code
    # Signed in through the other client's pages (its consent never answered): a session, no consent.
    consent_page = await untrusted.sign_in(await untrusted.authorize(), user.username)
    assert CONSENT_FORM in consent_page.text
    await _redeemed(
        app_client, trusted_id, secret, trusted.code(await trusted.authorize(prompt="none")), trusted.verifier
    )
    refused = query_of((await untrusted.authorize(prompt="none")).headers["location"])
    assert refused["error"] == "consent_required"


async def test_an_untrusted_client_still_asks_and_untrusting_a_client_brings_the_page_back(
    app_client: httpx.AsyncClient, browser: httpx.AsyncClient, user: User
) -> None:
    untrusted_id, _ = await _confidential(app_client, skip_consent=False)
    untrusted = Browser(browser, untrusted_id)
    page = await untrusted.sign_in(await untrusted.authorize(), user.username)
    assert CONSENT_FORM in page.text
    client_id, _ = await _confidential(app_client, skip_consent=True)
    walk = Browser(browser, client_id)
    walk.code(await walk.authorize())  # signed in above: straight to the code
    body = {
        "name": client_id,
        "grant_types": ["authorization_code"],
        "scopes": ["openid", "profile"],
        "redirect_uris": [REDIRECT],
        "skip_consent": False,
    }
    changed = await app_client.put(f"/admin/clients/{client_id}", json=body, headers=admin_headers())
    assert changed.status_code == 200 and changed.json()["skip_consent"] is False, changed.text
    assert CONSENT_FORM in (await walk.authorize()).text  # the registration's change seen at once


@pytest.mark.parametrize(
    ("redirect_uri", "allowed"),
    [
        ("https://portal.example.com/callback", True),
        ("http://127.0.0.1/callback", False),  # any local program listening on any port receives the code
        ("http://[::1]:8000/callback", False),
        ("http://localhost:8000/callback", False),
        ("https://localhost/callback", False),
        ("https://127.0.0.1/callback", False),
        ("https://app.localhost/callback", False),
        ("com.example.portal:/callback", False),  # a private-use scheme any installed app may claim
    ],
)
async def test_a_public_client_is_trusted_only_with_redirect_uris_no_other_app_can_receive_at(
    app_client: httpx.AsyncClient, redirect_uri: str, allowed: bool
) -> None:
    body = {
        "name": "portal",
        "type": "public",
        "grant_types": ["authorization_code"],
        "scopes": ["openid"],
        "redirect_uris": ["https://portal.example.com/callback", redirect_uri],
        "skip_consent": True,
    }
    response = await app_client.put("/admin/clients/spa-portal", json=body, headers=admin_headers())
    if allowed:
        assert response.status_code in (200, 201) and response.json()["skip_consent"] is True, response.text
        return
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["error"] == "invalid_request"
    assert "skip_consent" in problem["error_description"] and redirect_uri in problem["error_description"]
    # The same client without skip_consent is a valid registration: only trusting it is refused.
    plain = await app_client.put(
        "/admin/clients/spa-portal", json={**body, "skip_consent": False}, headers=admin_headers()
    )
    assert plain.status_code in (200, 201), plain.text


async def test_a_confidential_client_with_a_loopback_redirect_uri_may_be_trusted(
    app_client: httpx.AsyncClient,
) -> None:
    _, view = await register(
        app_client,
        grant_types=["authorization_code"],
        scopes=["openid"],
        redirect_uris=["http://127.0.0.1/kubectl-login"],
        skip_consent=True,
    )
    assert view["skip_consent"] is True and view["type"] == "confidential"
    listed = await app_client.get(f"/admin/clients/{view['client_id']}", headers=admin_headers())
    assert listed.json()["skip_consent"] is True
