"""OpenID Connect RP-Initiated Logout 1.0 over HTTP, on both databases: one test per module of the
conformance suite's ``oidcc-rp-initiated-logout-certification-test-plan`` (the module's name with ``-`` as
``_``), doing what the module does and checking what it checks, and the rules behind them: the confirmation
page and its CSRF binding, a hint for another browser's session, a session already gone."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from authserver.protocol.session_end import EndedSession, EndReason
from tests.support.app import own_browser
from tests.support.oauth import hidden_fields, query_of
from tests.support.signin import (
    SIGNED_OUT,
    Browser,
    Recorder,
    claims,
    recording,
    signed_up,
    skip_consent_client,
)

STATE = "s" * 128  # the suite sends a long state to check it comes back whole


@pytest.fixture
def recorder(app_client: httpx.AsyncClient) -> Iterator[Recorder]:
    with recording(app_client) as heard:
        yield heard


class SignedIn:
    """A browser signed into a client, holding the ID token it got."""

    def __init__(self, browser: Browser, client_id: str, tokens: dict[str, Any]) -> None:
        self.browser, self.client_id, self.tokens = browser, client_id, tokens
        self.id_token = str(tokens["id_token"])

    async def logout(self, method: str = "GET", **params: str) -> httpx.Response:
        if method == "POST":
            return await self.browser.browser.post("/logout", data=params)
        return await self.browser.browser.get(f"/logout?{urlencode(params)}")

    async def confirm(self, page: httpx.Response, decision: str = "sign_out") -> httpx.Response:
        assert page.status_code == 200 and 'action="/logout/confirm"' in page.text, page.text
        return await self.browser.browser.post(
            "/logout/confirm", data={**hidden_fields(page.text), "decision": decision}
        )

    async def still_signed_in(self) -> bool:
        return await self.browser.signed_in(self.client_id)


@pytest.fixture
async def signed_in(app_client: httpx.AsyncClient) -> AsyncIterator[SignedIn]:
    user = await signed_up(app_client)
    client_id = await skip_consent_client(app_client)
    async with own_browser(app_client, "10.1.4.1") as http:
        browser = Browser(app_client, http, user)
        yield SignedIn(browser, client_id, await browser.tokens(client_id))


def _signed_out_page(response: httpx.Response) -> None:
    assert response.status_code == 200 and 'id="signed-out"' in response.text, response.text
    assert "authyard_session" in response.headers.get("set-cookie", "")  # deleted


def _error_page(response: httpx.Response, says: str) -> None:
    assert response.status_code == 400 and "cannot continue" in response.text, response.text
    assert says in response.text and "location" not in response.headers


async def test_oidcc_rp_initiated_logout_discovery_endpoint_verification(
    app_client: httpx.AsyncClient,
) -> None:
    metadata = (await app_client.get("/.well-known/openid-configuration")).json()
    assert metadata["end_session_endpoint"] == "http://testserver/logout"
    rfc8414 = (await app_client.get("/.well-known/oauth-authorization-server")).json()
    assert rfc8414["end_session_endpoint"] == metadata["end_session_endpoint"]


async def test_oidcc_rp_initiated_logout(signed_in: SignedIn, recorder: Recorder) -> None:
    """The normal logout: back on the registered URI with the state, and the next prompt=none needs a
    login; the session's refresh token is revoked and its end announced."""
    sid = claims(signed_in.browser.app, signed_in.id_token)["sid"]
    response = await signed_in.logout(
        id_token_hint=signed_in.id_token, post_logout_redirect_uri=SIGNED_OUT, state=STATE
    )
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(f"{SIGNED_OUT}?") and query_of(location) == {"state": STATE}
    assert not await signed_in.still_signed_in()
    user_id = signed_in.browser.user.user_id
    assert recorder.heard == [EndedSession(sid, user_id, (signed_in.client_id,), EndReason.SIGNED_OUT)]
    refreshed = await signed_in.browser.app.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": signed_in.tokens["refresh_token"],
            "client_id": signed_in.client_id,
        },
    )
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


async def test_oidcc_rp_initiated_logout_no_state(signed_in: SignedIn) -> None:
    response = await signed_in.logout(id_token_hint=signed_in.id_token, post_logout_redirect_uri=SIGNED_OUT)
    assert response.status_code == 302 and response.headers["location"] == SIGNED_OUT
    assert not await signed_in.still_signed_in()


async def test_oidcc_rp_initiated_logout_no_post_logout_redirect_uri(signed_in: SignedIn) -> None:
    _signed_out_page(await signed_in.logout(id_token_hint=signed_in.id_token, state=STATE))
    assert not await signed_in.still_signed_in()


async def test_oidcc_rp_initiated_logout_no_params(signed_in: SignedIn) -> None:
    """No hint: the user is asked (§2), then signed out on the signed-out page."""
    page = await signed_in.logout()
    assert signed_in.browser.user.username in page.text
    assert await signed_in.still_signed_in()  # asking changed nothing
    _signed_out_page(await signed_in.confirm(page))
    assert not await signed_in.still_signed_in()


async def test_oidcc_rp_initiated_logout_only_state(signed_in: SignedIn) -> None:
    page = await signed_in.logout(state=STATE)
    _signed_out_page(await signed_in.confirm(page))
    assert not await signed_in.still_signed_in()


async def test_oidcc_rp_initiated_logout_no_id_token_hint(signed_in: SignedIn) -> None:
    """A post_logout_redirect_uri without the client identified (§3): an error page, no redirect."""
    response = await signed_in.logout(post_logout_redirect_uri=SIGNED_OUT, state=STATE)
    _error_page(response, "needs an id_token_hint or a client_id")
    assert await signed_in.still_signed_in()


async def test_oidcc_rp_initiated_logout_bad_post_logout_redirect_uri(signed_in: SignedIn) -> None:
    response = await signed_in.logout(
        id_token_hint=signed_in.id_token, post_logout_redirect_uri="https://evil.example.com/", state=STATE
    )
    _error_page(response, "is not registered")
    assert await signed_in.still_signed_in()


async def test_oidcc_rp_initiated_logout_query_added_to_post_logout_redirect_uri(signed_in: SignedIn) -> None:
    """§3: exactly as registered: an added query string is another URI."""
    response = await signed_in.logout(
        id_token_hint=signed_in.id_token, post_logout_redirect_uri=f"{SIGNED_OUT}?foo=bar", state=STATE
    )
    _error_page(response, "is not registered")
    assert await signed_in.still_signed_in()


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_oidcc_rp_initiated_logout_modified_id_token_hint(signed_in: SignedIn) -> None:
    """The hint changed to alg none (its claims kept, no signature): refused, no redirect."""
    payload = signed_in.id_token.split(".")[1]
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}."
    response = await signed_in.logout(
        id_token_hint=unsigned, post_logout_redirect_uri=SIGNED_OUT, state=STATE
    )
    _error_page(response, "not an ID token issued by this server")
    assert await signed_in.still_signed_in()


async def test_oidcc_rp_initiated_logout_bad_id_token_hint(signed_in: SignedIn) -> None:
    """A hint with the same claims signed by someone else's key: refused, no redirect."""
    genuine = claims(signed_in.browser.app, signed_in.id_token)
    forged = jwt.encode(genuine, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256")
    response = await signed_in.logout(id_token_hint=forged, post_logout_redirect_uri=SIGNED_OUT, state=STATE)
    _error_page(response, "not an ID token issued by this server")
    assert await signed_in.still_signed_in()


# The rules behind the modules ------------------------------------------------------------------------------


async def test_post_and_a_matching_client_id_sign_out_like_get(signed_in: SignedIn) -> None:
    response = await signed_in.logout(
        "POST",
        id_token_hint=signed_in.id_token,
        client_id=signed_in.client_id,
        post_logout_redirect_uri=SIGNED_OUT,
        state="p",
        ui_locales="fr",
        logout_hint="whoever",
    )
    assert response.status_code == 303 and response.headers["location"] == f"{SIGNED_OUT}?state=p"
    assert not await signed_in.still_signed_in()


async def test_a_client_id_that_is_not_the_hints_audience_is_refused(
    signed_in: SignedIn, app_client: httpx.AsyncClient
) -> None:
    other = await skip_consent_client(app_client)
    response = await signed_in.logout(
        id_token_hint=signed_in.id_token, client_id=other, post_logout_redirect_uri=SIGNED_OUT
    )
    _error_page(response, "does not match")
    assert await signed_in.still_signed_in()


async def test_the_confirmation_needs_its_csrf_binding_and_can_be_declined(signed_in: SignedIn) -> None:
    page = await signed_in.logout(client_id=signed_in.client_id, post_logout_redirect_uri=SIGNED_OUT)
    fields = {**hidden_fields(page.text), "decision": "sign_out"}
    async with own_browser(signed_in.browser.app, "10.1.4.9") as attacker:  # no CSRF cookie of the victim's
        forged = await attacker.post("/logout/confirm", data=fields)
    assert forged.status_code == 403 and await signed_in.still_signed_in()
    declined = await signed_in.confirm(page, decision="stay")
    assert 'id="still-signed-in"' in declined.text and await signed_in.still_signed_in()
    # With client_id alone the client is identified (§3): after the user agrees, back to its URI.
    agreed = await signed_in.confirm(page)
    assert agreed.status_code == 303 and agreed.headers["location"] == SIGNED_OUT
    assert not await signed_in.still_signed_in()


async def test_a_hint_for_another_browsers_session_asks_first(
    signed_in: SignedIn, app_client: httpx.AsyncClient
) -> None:
    """The hint belongs to a session that is not this browser's (§2: the OP MUST ask): after the user agrees,
    both end."""
    async with own_browser(app_client, "10.1.4.2") as http:
        elsewhere = Browser(app_client, http, signed_in.browser.user)
        other_tokens = await elsewhere.tokens(signed_in.client_id)
        page = await signed_in.logout(
            id_token_hint=other_tokens["id_token"], post_logout_redirect_uri=SIGNED_OUT
        )
        assert await signed_in.still_signed_in() and await elsewhere.signed_in(signed_in.client_id)
        agreed = await signed_in.confirm(page)
        assert agreed.status_code == 303 and agreed.headers["location"] == SIGNED_OUT
        assert not await signed_in.still_signed_in()
        assert not await elsewhere.signed_in(signed_in.client_id)


async def test_a_session_already_gone_still_redirects(signed_in: SignedIn) -> None:
    first = await signed_in.logout(id_token_hint=signed_in.id_token, post_logout_redirect_uri=SIGNED_OUT)
    again = await signed_in.logout(id_token_hint=signed_in.id_token, post_logout_redirect_uri=SIGNED_OUT)
    assert first.status_code == again.status_code == 302
    assert again.headers["location"] == SIGNED_OUT
