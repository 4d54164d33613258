"""The login and consent pages in headless Chromium (Debian's ``chromium`` + Playwright), against a real
``authserver serve`` process.

The redirect URI is a loopback URI registered on the client; nothing listens there: Playwright intercepts
the navigation (``page.route``) and the test reads ``code`` / ``state`` / ``error`` from its URL.
"""

from __future__ import annotations

import contextlib
import http.server
import secrets
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from harness.authserver import AuthServer, running_server
from harness.ports import free_port
from tests.support.browser import launched_chromium
from tests.support.oauth import basic, hidden_fields, pkce_pair

pytestmark = pytest.mark.browser

ATTACKER_ORIGIN = "http://attacker.test"  # never resolved: Playwright fulfils it
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with running_server(tmp_path_factory.mktemp("browser-server")) as process:
        yield process


@pytest.fixture(scope="module")
def metadata(server: AuthServer) -> dict[str, Any]:
    return httpx.get(server.base_url + "/.well-known/oauth-authorization-server", timeout=5).json()


@pytest.fixture(scope="module")
def redirect_uri() -> str:
    return f"http://127.0.0.1:{free_port()}/callback"


@pytest.fixture(scope="module")
def client(server: AuthServer, redirect_uri: str) -> dict[str, Any]:
    return server.create_client(
        "Browser Test App",
        ["authorization_code", "refresh_token"],
        scopes=["openid", "profile", "read"],
        redirect_uris=[redirect_uri],
    )


@pytest.fixture(scope="module")
def account(server: AuthServer) -> dict[str, str]:
    username, password = f"bob-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(16)
    server.create_user(username, password, email=f"{username}@example.com", name="Bob")
    return {"username": username, "password": password}


class Authorization:
    """One authorization request: its URL, PKCE verifier and state."""

    def __init__(self, metadata: dict[str, Any], client: dict[str, Any], redirect_uri: str) -> None:
        self.verifier, challenge = pkce_pair()
        self.state = secrets.token_urlsafe(12)
        self.redirect_uri = redirect_uri
        query = {
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": redirect_uri,
            "scope": "openid profile read",
            "state": self.state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "nonce": secrets.token_urlsafe(8),
            "prompt": "consent",  # the consent page every time: an earlier test's consent is remembered
        }
        self.url = f"{metadata['authorization_endpoint']}?{urlencode(query)}"


def catch_redirect(page: Any, redirect_uri: str) -> list[str]:
    """Fulfil navigations to the redirect URI (no listener needed) and record their URLs."""
    seen: list[str] = []

    def fulfil(route: Any) -> None:
        seen.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>callback reached</h1>")

    page.route(f"{redirect_uri}**", fulfil)
    return seen


def click_through_to_redirect(page: Any, button: str, redirect_uri: str) -> None:
    """Click ``button`` and wait until the browser arrives at the redirect URI; fail with what Chromium
    reported (console, blocked requests) when it does not."""
    problems: list[str] = []
    page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}"))
    page.on("requestfailed", lambda request: problems.append(f"failed {request.url}: {request.failure}"))
    page.click(button)
    try:
        page.wait_for_url(f"{redirect_uri}**", timeout=5_000)
    except PlaywrightTimeout:
        pytest.fail(
            f"clicking {button} did not reach the redirect URI {redirect_uri}; the browser stayed on "
            f"{page.url}; Chromium reported: {problems}"
        )


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def sign_in(page: Any, username: str, password: str) -> Any:
    page.fill("#username", username)
    page.fill("#password", password)
    with page.expect_response(lambda response: response.request.method == "POST") as posted:
        page.click("#sign-in")
    return posted.value


@contextlib.contextmanager
def framing_site(html: str) -> Iterator[str]:
    """A one-page site on its own loopback port (another origin than the server's) serving ``html``."""
    body = html.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}/"
    finally:
        site.shutdown()
        site.server_close()
        thread.join(5)


def test_login_and_allow_lands_on_redirect_uri_with_code_and_state(
    page: Any,
    server: AuthServer,
    metadata: dict[str, Any],
    client: dict[str, Any],
    account: dict[str, str],
    redirect_uri: str,
) -> None:
    auth = Authorization(metadata, client, redirect_uri)
    seen = catch_redirect(page, redirect_uri)
    response = page.goto(auth.url)
    assert response.status == 200
    assert "Browser Test App" in page.text_content("h1")
    assert sign_in(page, account["username"], account["password"]).status == 200
    assert page.text_content("#signed-in-user") == account["username"]
    assert {item.strip() for item in page.locator("ul.scopes li").all_text_contents()} == {
        "openid",
        "profile",
        "read",
    }
    click_through_to_redirect(page, "#allow", redirect_uri)
    assert page.text_content("h1") == "callback reached"
    assert len(seen) == 1
    result = query(seen[0])
    assert result["state"] == auth.state
    assert result["code"]
    assert result.get("iss") == metadata["issuer"]

    # The code the browser carried is a real one: it redeems once, with the PKCE verifier.
    token = httpx.post(
        metadata["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": result["code"],
            "redirect_uri": redirect_uri,
            "code_verifier": auth.verifier,
        },
        headers=basic(client["client_id"], client["client_secret"]),
        timeout=10,
    )
    assert token.status_code == 200, token.text
    assert {"access_token", "id_token", "refresh_token"} <= token.json().keys()


def test_wrong_password_shows_error_and_stays_on_login_page(
    page: Any, metadata: dict[str, Any], client: dict[str, Any], account: dict[str, str], redirect_uri: str
) -> None:
    auth = Authorization(metadata, client, redirect_uri)
    seen = catch_redirect(page, redirect_uri)
    page.goto(auth.url)
    response = sign_in(page, account["username"], account["password"] + "-wrong")
    assert response.status == 401
    assert page.text_content("#login-error") == "Wrong username or password."
    assert page.is_visible("#password") and page.input_value("#password") == ""
    assert page.input_value("#username") == account["username"]
    assert not page.is_visible("#allow")
    assert urlsplit(page.url).path == urlsplit(metadata["authorization_endpoint"]).path + "/login"
    assert seen == []

    # The page still works: the right password now gets to the consent page.
    assert sign_in(page, account["username"], account["password"]).status == 200
    assert page.is_visible("#allow")


def test_deny_lands_on_redirect_uri_with_access_denied(
    page: Any, metadata: dict[str, Any], client: dict[str, Any], account: dict[str, str], redirect_uri: str
) -> None:
    auth = Authorization(metadata, client, redirect_uri)
    seen = catch_redirect(page, redirect_uri)
    page.goto(auth.url)
    sign_in(page, account["username"], account["password"])
    click_through_to_redirect(page, "#deny", redirect_uri)
    result = query(seen[0])
    assert result["error"] == "access_denied"
    assert result["state"] == auth.state
    assert "code" not in result


def test_pages_cannot_be_framed(
    page: Any, metadata: dict[str, Any], client: dict[str, Any], account: dict[str, str], redirect_uri: str
) -> None:
    auth = Authorization(metadata, client, redirect_uri)
    login = page.goto(auth.url)
    consent = sign_in(page, account["username"], account["password"])
    for response in (login, consent):
        headers = response.all_headers()
        assert headers.get("x-frame-options", "").upper() == "DENY", headers
        directives = [part.strip() for part in headers.get("content-security-policy", "").split(";")]
        assert "frame-ancestors 'none'" in directives, headers
        assert headers.get("cache-control") == "no-store"

    # And Chromium enforces it: a page on another (loopback) origin that frames the login page shows nothing
    # of it. The framing page comes from a real listener: Chromium's local-network checks would block a
    # loopback iframe inside a page Playwright fulfilled.
    with framing_site(f'<iframe id="victim" src="{auth.url}"></iframe>') as site:
        with page.expect_response(lambda response: response.url == auth.url) as framed:
            page.goto(site)
        assert framed.value.status == 200  # the server answered; the browser must refuse to render it
        page.wait_for_load_state()
        victim = next(frame for frame in page.frames if frame is not page.main_frame)
        assert not victim.url.startswith(metadata["issuer"]), victim.url  # Chromium shows its error page
        assert page.frame_locator("#victim").locator("#password").count() == 0


def test_forged_post_without_csrf_cookie_is_refused(
    page: Any, metadata: dict[str, Any], client: dict[str, Any], account: dict[str, str], redirect_uri: str
) -> None:
    auth = Authorization(metadata, client, redirect_uri)
    seen = catch_redirect(page, redirect_uri)
    page.goto(auth.url)
    fields = hidden_fields(page.content())
    assert {"request", "csrf_token"} <= fields.keys()
    login_url = page.url.split("?")[0] + "/login"

    # Another site auto-submits the login form with valid-looking fields and the right password:
    # SameSite=Strict keeps the CSRF cookie out of that cross-site post, so it must be refused.
    inputs = "".join(
        f'<input type="hidden" name="{name}" value="{value}">'
        for name, value in {**fields, **account}.items()
    )
    page.route(
        f"{ATTACKER_ORIGIN}/forge",
        lambda route: route.fulfill(
            status=200,
            content_type="text/html",
            body=f'<form id="f" method="post" action="{login_url}">{inputs}</form>'
            '<script>document.getElementById("f").submit()</script>',
        ),
    )
    with page.expect_response(lambda response: response.url == login_url) as forged:
        page.goto(f"{ATTACKER_ORIGIN}/forge")
    assert forged.value.status == 403
    assert forged.value.request.header_value("cookie") is None or "authyard_csrf" not in (
        forged.value.request.header_value("cookie") or ""
    )
    page.wait_for_load_state()
    assert "was not sent from our page" in page.text_content("body")
    assert not page.is_visible("#allow")

    # The same form from our own page, but with the CSRF cookie gone: refused too.
    page.goto(auth.url)
    page.context.clear_cookies()
    response = sign_in(page, account["username"], account["password"])
    assert response.status == 403
    assert "was not sent from our page" in page.text_content("body")
    assert seen == []
