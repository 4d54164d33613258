"""The authorization endpoint as OpenID Connect Core §3.1.2 defines it, over HTTP on both databases.

Each test mirrors the module of the OpenID conformance suite (``oidcc-basic-certification-test-plan``)
whose name it carries, and checks what that module checks; the rest cover the rules those modules rely on
(remembered consent, prompt=login not skippable through the consent form).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from authserver.protocol.models import User
from harness.accounts import new_user
from harness.polling import wait_for
from tests.support.app import own_browser, store_of
from tests.support.oauth import PASSWORD, hidden_fields, pkce_pair, query_of, redeem_code, register

REDIRECT = "http://127.0.0.1:9999/oidc-callback"
LOGIN_FORM = 'action="/authorize/login"'
CONSENT_FORM = 'action="/authorize/consent"'


@pytest.fixture
async def browser(app_client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A browser of its own (its own cookies) on the same application."""
    async with own_browser(app_client, "10.1.2.5") as http:
        yield http


@pytest.fixture
async def client_id(app_client: httpx.AsyncClient) -> str:
    """A fresh client per test: nothing any other test allowed it."""
    registered, _ = await register(
        app_client,
        type="public",
        grant_types=["authorization_code"],
        scopes=["openid", "profile", "email"],
        redirect_uris=[REDIRECT],
    )
    return registered


class Flow:
    """One browser walking the authorization flow for one client, as a relying party drives it."""

    def __init__(self, app: httpx.AsyncClient, browser: httpx.AsyncClient, client_id: str) -> None:
        self.app, self.browser, self.client_id = app, browser, client_id
        self.verifier = ""

    def params(self, **extra: str) -> dict[str, str]:
        self.verifier, challenge = pkce_pair()
        return {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": REDIRECT,
            "scope": "openid profile",
            "state": "st-oidc",
            "nonce": "n-oidc",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **extra,
        }

    async def authorize(self, **extra: str) -> httpx.Response:
        return await self.browser.get(f"/authorize?{urlencode(self.params(**extra))}")

    async def sign_in(self, page: httpx.Response, username: str) -> httpx.Response:
        assert page.status_code == 200 and LOGIN_FORM in page.text, page.text
        fields = {**hidden_fields(page.text), "username": username, "password": PASSWORD}
        return await self.browser.post("/authorize/login", data=fields)

    async def allow(self, page: httpx.Response) -> httpx.Response:
        assert page.status_code == 200 and CONSENT_FORM in page.text, page.text
        return await self.browser.post(
            "/authorize/consent", data={**hidden_fields(page.text), "decision": "allow"}
        )

    def returned(self, response: httpx.Response) -> dict[str, str]:
        """What came back to the client's redirect URI (a code or an error)."""
        assert response.status_code in (302, 303), response.text
        assert response.headers["location"].startswith(f"{REDIRECT}?")
        query = query_of(response.headers["location"])
        assert query["state"] == "st-oidc" and query["iss"] == "http://testserver"
        return query

    async def id_token(self, response: httpx.Response) -> dict[str, Any]:
        """The redirect's code redeemed: the ID token's claims."""
        code = self.returned(response)["code"]
        tokens = await redeem_code(self.app, code, self.verifier, REDIRECT, client_id=self.client_id)
        assert tokens.status_code == 200, tokens.text
        self.raw_id_token = tokens.json()["id_token"]
        return self.app.app.state.services.keyset().verify(self.raw_id_token, options={"verify_aud": False})  # type: ignore[attr-defined,no-any-return]

    async def first_authorization(self, username: str) -> dict[str, Any]:
        """Sign in and allow: the ID token of the first authorization."""
        login = await self.sign_in(await self.authorize(), username)
        return await self.id_token(await self.allow(login))


@pytest.fixture
def flow(app_client: httpx.AsyncClient, browser: httpx.AsyncClient, client_id: str) -> Flow:
    return Flow(app_client, browser, client_id)


async def _next_second(after: int) -> None:
    """Until the clock shows a later second than ``after`` (auth_time's resolution)."""
    await wait_for(lambda: int(time.time()) > after, timeout=3)


async def test_oidcc_prompt_login(flow: Flow, user: User) -> None:
    first = await flow.first_authorization(user.username)
    await _next_second(first["auth_time"])
    page = await flow.authorize(prompt="login")  # signed in, consent remembered: still the login page
    assert page.status_code == 200 and LOGIN_FORM in page.text
    second = await flow.id_token(await flow.sign_in(page, user.username))
    assert second["sub"] == first["sub"] and second["auth_time"] > first["auth_time"]


async def test_prompt_login_cannot_be_skipped_by_posting_to_the_consent_form(flow: Flow, user: User) -> None:
    await flow.first_authorization(user.username)
    page = await flow.authorize(prompt="login")
    # The signed request of the login page, answered on the consent form with the session already held.
    skipped = await flow.browser.post(
        "/authorize/consent", data={**hidden_fields(page.text), "decision": "allow"}
    )
    assert skipped.status_code == 200 and "location" not in skipped.headers
    assert LOGIN_FORM in skipped.text and "sign in again" in skipped.text


async def test_oidcc_max_age_1(flow: Flow, user: User) -> None:
    first = await flow.first_authorization(user.username)
    await wait_for(lambda: time.time() > first["auth_time"] + 2, timeout=4)  # the session is over 1 s old
    page = await flow.authorize(max_age="1")
    assert page.status_code == 200 and LOGIN_FORM in page.text
    second = await flow.id_token(await flow.sign_in(page, user.username))
    assert second["auth_time"] > first["auth_time"] and second["sub"] == first["sub"]


async def test_oidcc_max_age_10000(flow: Flow, user: User) -> None:
    first = await flow.first_authorization(user.username)
    second = await flow.id_token(await flow.authorize(max_age="10000"))  # no page at all
    assert second["auth_time"] == first["auth_time"] and second["sub"] == first["sub"]


async def test_max_age_0_asks_for_the_password_like_prompt_login(flow: Flow, user: User) -> None:
    await flow.first_authorization(user.username)
    page = await flow.authorize(max_age="0")
    assert page.status_code == 200 and LOGIN_FORM in page.text


async def test_oidcc_prompt_none_not_logged_in(flow: Flow) -> None:
    query = flow.returned(await flow.authorize(prompt="none"))
    assert query["error"] == "login_required" and "code" not in query


async def test_oidcc_prompt_none_logged_in(flow: Flow, user: User) -> None:
    first = await flow.first_authorization(user.username)
    second = await flow.id_token(await flow.authorize(prompt="none"))
    assert (second["sub"], second["auth_time"], second["nonce"]) == (
        first["sub"],
        first["auth_time"],
        "n-oidc",
    )
    assert flow.returned(await flow.authorize(prompt="none", max_age="0"))["error"] == "login_required"


async def test_prompt_none_without_remembered_consent_is_consent_required(flow: Flow, user: User) -> None:
    consent_page = await flow.sign_in(await flow.authorize(), user.username)  # signed in, never answered
    assert CONSENT_FORM in consent_page.text
    assert flow.returned(await flow.authorize(prompt="none"))["error"] == "consent_required"


async def test_oidcc_id_token_hint(flow: Flow, user: User, app_client: httpx.AsyncClient) -> None:
    first = await flow.first_authorization(user.username)
    hint = flow.raw_id_token
    second = await flow.id_token(await flow.authorize(prompt="none", id_token_hint=hint))
    assert second["sub"] == first["sub"]

    # The hint names someone else than the browser's user: login_required, or the login page.
    other = new_user(f"bob-{uuid.uuid4().hex[:6]}", PASSWORD, email="bob@example.com", name="Bob")
    await store_of(app_client).create_user(other)
    other_flow = Flow(app_client, flow.browser, flow.client_id)
    flow.browser.cookies.clear()  # the same browser, signed out
    await other_flow.first_authorization(other.username)
    assert flow.returned(await flow.authorize(prompt="none", id_token_hint=hint))["error"] == "login_required"
    page = await flow.authorize(id_token_hint=hint)
    assert page.status_code == 200 and LOGIN_FORM in page.text

    assert flow.returned(await flow.authorize(id_token_hint=hint + "x"))["error"] == "invalid_request"


async def test_oidcc_login_hint(flow: Flow) -> None:
    page = await flow.authorize(login_hint='alice"><script>x</script>')
    assert page.status_code == 200 and LOGIN_FORM in page.text
    assert 'value="alice&#34;&gt;&lt;script&gt;x&lt;/script&gt;"' in page.text
    assert "<script>x" not in page.text


async def test_oidcc_ensure_post_request_succeeds(flow: Flow, user: User) -> None:
    page = await flow.browser.post("/authorize", data=flow.params())
    login = await flow.sign_in(page, user.username)
    claims = await flow.id_token(await flow.allow(login))
    assert claims["nonce"] == "n-oidc"
    # Errors of a POSTed request reach the client the same way, as a GET (303).
    refused = await flow.browser.post("/authorize", data=flow.params(prompt="none login"))
    assert refused.status_code == 303 and flow.returned(refused)["error"] == "invalid_request"
    remembered = await flow.browser.post("/authorize", data=flow.params())
    assert remembered.status_code == 303 and "code" in flow.returned(remembered)


async def test_oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported(
    flow: Flow,
) -> None:
    unsigned = "eyJhbGciOiJub25lIn0.eyJyZXNwb25zZV90eXBlIjoiY29kZSJ9."  # {"alg":"none"} . {...} .
    query = flow.returned(await flow.authorize(request=unsigned))
    assert query["error"] == "request_not_supported" and "code" not in query


async def test_oidcc_ensure_request_object_with_redirect_uri(flow: Flow) -> None:
    by_value = flow.returned(await flow.authorize(request="eyJhbGciOiJub25lIn0.eyJyZWRpcmVjdF91cmkiOiJ4In0."))
    assert by_value["error"] == "request_not_supported"
    by_reference = flow.returned(await flow.authorize(request_uri="https://rp.example.com/request.jwt"))
    assert by_reference["error"] == "request_uri_not_supported"


async def test_oidcc_ensure_registered_redirect_uri(flow: Flow) -> None:
    page = await flow.authorize(redirect_uri="https://attacker.example.com/callback")
    assert page.status_code == 400 and "location" not in page.headers and "not registered" in page.text


async def test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow(flow: Flow, user: User) -> None:
    params = flow.params()
    del params["nonce"]
    page = await flow.browser.get(f"/authorize?{urlencode(params)}")
    claims = await flow.id_token(await flow.allow(await flow.sign_in(page, user.username)))
    assert "nonce" not in claims


async def test_consent_is_asked_again_only_for_scopes_not_yet_allowed(flow: Flow, user: User) -> None:
    await flow.first_authorization(user.username)  # openid profile
    assert "code" in flow.returned(await flow.authorize(scope="openid"))
    wider = await flow.authorize(scope="openid email")
    assert wider.status_code == 200 and CONSENT_FORM in wider.text
    await flow.id_token(await flow.allow(wider))
    assert "code" in flow.returned(await flow.authorize(scope="openid profile email"))
    forced = await flow.authorize(prompt="consent")
    assert forced.status_code == 200 and CONSENT_FORM in forced.text


async def test_discovery_says_what_the_authorization_endpoint_supports(app_client: httpx.AsyncClient) -> None:
    metadata = (await app_client.get("/.well-known/openid-configuration")).json()
    assert metadata["request_parameter_supported"] is False
    assert metadata["request_uri_parameter_supported"] is False
    assert metadata["prompt_values_supported"] == ["none", "login", "consent", "select_account"]
