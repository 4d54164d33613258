"""Apache httpd + Debian's ``mod_auth_openidc`` as the relying party, a headless Chromium as the user.

The module is configured as its documentation says for any OpenID provider (discovery, a client secret, PKCE
S256), against a real 2-worker ``authserver serve``. Chromium opens the protected page, is sent to the login
and consent pages, comes back to the page; the module's info hook shows the session it built from our ID
token, and a later request refreshes its access token with our refresh token. Signing out through the
application (the module's logout URL, which sends the browser to our end_session_endpoint) ends the session
here too: the next visit asks for the password again.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.authserver import AuthServer, running_server
from harness.ports import free_port
from tests.interop.apache import ApacheRelyingParty, running_apache
from tests.support.browser import launched_chromium

pytestmark = pytest.mark.browser

SCOPE = "openid profile email"
TIMEOUT_MS = 20_000
# mod_auth_openidc refreshes when the access token has fewer seconds left than this: more than the
# server's default access-token lifetime, so the next request to the protected page refreshes.
REFRESH_BEFORE_EXPIRY_SECONDS = 3600


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with running_server(tmp_path_factory.mktemp("mod-auth-openidc"), workers=2) as server:
        yield server


@pytest.fixture(scope="module")
def account(server: AuthServer) -> dict[str, str]:
    username, password = f"carol-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(16)
    created = server.create_user(username, password, email=f"{username}@example.com", name="Carol")
    return {"username": username, "password": password, "user_id": created["user_id"]}


@pytest.fixture(scope="module")
def apache_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def apache_client(server: AuthServer, apache_port: int) -> dict[str, Any]:
    return server.create_client(
        "Apache app",
        ["authorization_code", "refresh_token"],
        scopes=SCOPE.split(),
        redirect_uris=[f"http://127.0.0.1:{apache_port}/app/redirect_uri"],
        post_logout_redirect_uris=[f"http://127.0.0.1:{apache_port}/signed-out.html"],
    )


@pytest.fixture(scope="module")
def apache(
    server: AuthServer, apache_port: int, apache_client: dict[str, Any]
) -> Iterator[ApacheRelyingParty]:
    registered = apache_client
    port = apache_port
    with running_apache(
        port,
        server.issuer,
        registered["client_id"],
        registered["client_secret"],
        scope=SCOPE,
        extra=f"OIDCRefreshAccessTokenBeforeExpiry {REFRESH_BEFORE_EXPIRY_SECONDS}",
    ) as relying_party:
        yield relying_party


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as chromium:
        yield chromium


def session_info(context: Any, apache: ApacheRelyingParty) -> dict[str, Any]:
    response = context.request.get(apache.info_url)
    assert response.status == 200, f"{response.status} {response.text()[:500]}\n{apache.error_log()[-3000:]}"
    info: dict[str, Any] = response.json()
    return info


def sample(server: AuthServer, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``, from the server's /metrics."""
    text = httpx.get(server.base_url + "/metrics", timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for metric in family.samples:
            if metric.name == name and labels.items() <= metric.labels.items():
                total += metric.value
    return total


def refreshes(server: AuthServer, client_id: str) -> float:
    return sample(server, "authserver_tokens_issued_total", grant_type="refresh_token", client_id=client_id)


def test_mod_auth_openidc_signs_in_shows_the_page_and_refreshes(
    browser: Any,
    apache: ApacheRelyingParty,
    apache_client: dict[str, Any],
    server: AuthServer,
    account: dict[str, str],
) -> None:
    client_id = apache_client["client_id"]
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(apache.protected_url)
        assert page.url.startswith(server.base_url + "/authorize"), page.url
        page.fill("#username", account["username"])
        page.fill("#password", account["password"])
        page.click("#sign-in")
        page.click("#allow")
        page.wait_for_url(apache.protected_url)
        assert "The protected page" in page.content(), apache.error_log()[-3000:]

        # Every later visit finds the access token within REFRESH_BEFORE_EXPIRY_SECONDS of its expiry and
        # refreshes it through refresh-token rotation, without sending the user anywhere: never a reuse.
        before = refreshes(server, client_id)
        for visit in (2, 3):
            again = f"{apache.protected_url}?visit={visit}"  # not from the browser's cache: Apache sees it
            page.goto(again)
            assert page.url == again and "The protected page" in page.content()
        assert refreshes(server, client_id) >= before + 2, apache.error_log()[-3000:]
        assert sample(server, "authserver_refresh_token_reuse_total") == 0

        # The session the module keeps was built from our ID token and userinfo. (Read last: version 2.4.12's
        # info hook refreshes too, without keeping the rotated refresh token, so a later visit would present
        # the previous one and end the session as a reuse.)
        info = session_info(context, apache)
        assert info["id_token"]["sub"] == account["user_id"]
        assert info["id_token"]["iss"] == server.issuer
        assert info["id_token"]["email"] == f"{account['username']}@example.com"
        assert info["userinfo"]["name"] == "Carol"
        assert "Traceback" not in server.log_text()
    finally:
        context.close()


def test_signing_out_through_mod_auth_openidc_ends_the_session_at_the_server(
    browser: Any, apache: ApacheRelyingParty, server: AuthServer, account: dict[str, str]
) -> None:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(apache.protected_url)
        page.fill("#username", account["username"])
        page.fill("#password", account["password"])
        page.click("#sign-in")
        if page.url.startswith(server.base_url + "/authorize"):  # consent remembered from an earlier test
            page.click("#allow")
        page.wait_for_url(apache.protected_url)

        page.goto(apache.logout_url())
        page.wait_for_url(apache.signed_out_url + "*")
        assert "Signed out of the app" in page.content(), apache.error_log()[-3000:]

        # Our session ended too: the module's new sign-in finds nobody signed in and shows the login page,
        # instead of coming straight back with a code.
        page.goto(f"{apache.protected_url}?after=logout")
        page.wait_for_selector("#sign-in")
        assert page.url.startswith(server.base_url + "/authorize"), page.url
        assert "Traceback" not in server.log_text()
    finally:
        context.close()
