"""Apache httpd + Debian's ``mod_auth_openidc`` as the relying party, a headless Chromium as the user.

The module is configured as its documentation says for any OpenID provider (discovery, a client secret, PKCE
S256), against a real 2-worker ``authserver serve``. Chromium opens the protected page, is sent to the login
and consent pages, comes back to the page; the module's info hook shows the session it built from our ID
token, and a later request refreshes its access token with our refresh token. Signing out through the
application (the module's logout URL, which sends the browser to our end_session_endpoint) ends the session
here too: the next visit asks for the password again. The client is registered with the module's back-channel
logout endpoint: when an administrator ends a user's sessions at the server, the module accepts the logout
token and drops that user's session (the next visit asks for the password), and only that one.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.authserver import ADMIN_TOKEN, AuthServer, running_server
from harness.polling import wait_for
from harness.ports import free_port
from tests.interop.apache import ApacheRelyingParty, running_apache
from tests.support.browser import launched_chromium

pytestmark = pytest.mark.browser

SCOPE = "openid profile email"
TIMEOUT_MS = 20_000
# mod_auth_openidc refreshes when the access token has fewer seconds left than this: more than the
# server's default access-token lifetime, so the next request to the protected page refreshes.
REFRESH_BEFORE_EXPIRY_SECONDS = 3600
DELIVERY_TIMEOUT_SECONDS = 10.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with running_server(tmp_path_factory.mktemp("mod-auth-openidc"), workers=2) as server:
        yield server


def admin(server: AuthServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A request to the server's admin API (``/admin<path>``) with the harness's admin token."""
    server.seen_secrets.add(ADMIN_TOKEN)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    return httpx.request(method, f"{server.base_url}/admin{path}", headers=headers, timeout=10, **kwargs)


def new_account(server: AuthServer, name: str) -> dict[str, str]:
    """A user who signs in with a password, created through the admin API (quicker than the CLI)."""
    username, password = f"{name.lower()}-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(16)
    server.seen_secrets.add(password)
    created = admin(
        server,
        "POST",
        "/users",
        json={"username": username, "password": password, "email": f"{username}@example.com", "name": name},
    )
    assert created.status_code == 201, created.text
    return {"username": username, "password": password, "user_id": created.json()["user_id"]}


@pytest.fixture(scope="module")
def account(server: AuthServer) -> dict[str, str]:
    return new_account(server, "Carol")


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
        # The module's back-channel logout endpoint; it finds its session by the logout token's sid.
        backchannel_logout_uri=f"http://127.0.0.1:{apache_port}/app/redirect_uri?logout=backchannel",
        backchannel_logout_session_required=True,
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


def poll(waiting: Coroutine[Any, Any, object]) -> None:
    """Run a ``harness.polling.wait_for`` to its end from this thread, where Playwright's sync API keeps an
    event loop of its own running (so ``asyncio.run`` is refused here): in a thread of its own."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, waiting).result()


def sign_in(context: Any, apache: ApacheRelyingParty, server: AuthServer, account: dict[str, str]) -> Any:
    """A page of ``context`` signed in at Apache as ``account`` (through our login and, once, consent pages)
    and showing the protected page."""
    page = context.new_page()
    page.goto(apache.protected_url)
    page.fill("#username", account["username"])
    page.fill("#password", account["password"])
    page.click("#sign-in")
    if page.url.startswith(server.base_url + "/authorize"):  # no consent remembered for this user yet
        page.click("#allow")
    page.wait_for_url(apache.protected_url)
    assert "The protected page" in page.content(), apache.error_log()[-3000:]
    return page


def test_a_backchannel_logout_from_the_server_ends_the_session_at_mod_auth_openidc(
    browser: Any, apache: ApacheRelyingParty, server: AuthServer
) -> None:
    # Before the sign-out test on purpose: that sign-out also sends the module a logout token (for a session
    # it has already dropped, which it warns about), late enough to land in this test's window.
    erin, frank = new_account(server, "Erin"), new_account(server, "Frank")
    erin_context, frank_context = browser.new_context(), browser.new_context()
    erin_context.set_default_timeout(TIMEOUT_MS)
    frank_context.set_default_timeout(TIMEOUT_MS)
    try:
        erin_page = sign_in(erin_context, apache, server, erin)
        frank_page = sign_in(frank_context, apache, server, frank)
        delivered = sample(server, "authserver_backchannel_logout_deliveries_total", outcome="delivered")
        requests_before, log_before = len(apache.access_log()), len(apache.error_log())

        def backchannel_posts() -> list[str]:
            return [line for line in apache.access_log()[requests_before:] if line.startswith("POST ")]

        # An administrator ends Erin's sessions: the server POSTs a logout token with her session's sid to
        # the module (OpenID Connect Back-Channel Logout 1.0 §2.5), which drops the session it keeps for it.
        ended = admin(server, "DELETE", f"/users/{erin['username']}/sessions")
        assert ended.status_code == 204, ended.text
        # Both sides of the one POST: the server counts it delivered when it has the answer, Apache logs it
        # after answering.
        poll(
            wait_for(
                lambda: (
                    backchannel_posts()
                    and sample(server, "authserver_backchannel_logout_deliveries_total", outcome="delivered")
                    >= delivered + 1
                ),
                timeout=DELIVERY_TIMEOUT_SECONDS,
                message=lambda: f"no delivery\n{server.log_text()[-3000:]}\n{apache.error_log()[-3000:]}",
            )
        )
        # The module accepted the token (§2.8: 200) and logged no complaint about it (it warns, for instance,
        # when it finds no session for the token's sid). No session of this module's earlier tests ended, so
        # no other logout token can land here.
        assert backchannel_posts() == ["POST /app/redirect_uri?logout=backchannel 200"], backchannel_posts()
        complaints = [
            line
            for line in apache.error_log()[log_before:].splitlines()
            if "auth_openidc:error" in line or "auth_openidc:warn" in line
        ]
        assert not complaints, complaints

        # Erin's next visit finds no session at Apache, nor at the server: the password is asked again.
        erin_page.goto(f"{apache.protected_url}?after=backchannel-logout")
        erin_page.wait_for_selector("#sign-in")
        assert erin_page.url.startswith(server.base_url + "/authorize"), erin_page.url
        # Frank, signed in at the same Apache, keeps his session.
        again = f"{apache.protected_url}?after=erins-logout"
        frank_page.goto(again)
        assert frank_page.url == again and "The protected page" in frank_page.content()
        assert "Traceback" not in server.log_text()
    finally:
        erin_context.close()
        frank_context.close()


def test_signing_out_through_mod_auth_openidc_ends_the_session_at_the_server(
    browser: Any, apache: ApacheRelyingParty, server: AuthServer, account: dict[str, str]
) -> None:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = sign_in(context, apache, server, account)

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
