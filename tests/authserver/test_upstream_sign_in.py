"""Sign-in through an upstream OpenID provider, against a real ``authserver serve`` on both databases.

The upstream here is a scripted provider on loopback (``tests.support.upstream_provider``): it can answer
wrongly in each way the relying party must refuse (ID tokens of another issuer, audience or nonce, a forged
signature, a foreign state), and two more providers are down (connection refused) and slow (never answers).
The browser is an httpx client with a cookie jar, following each redirect by hand. The happy path through a
real provider and a real browser is ``test_upstream_browser.py``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from harness.authserver import ADMIN_TOKEN, AuthServer
from tests.conftest import server_process
from tests.support.oauth import hidden_fields, pkce_pair
from tests.support.upstream_provider import ScriptedProvider, closed_port, scripted_provider, silent_listener

REDIRECT_URI = "http://127.0.0.1:9/callback"  # never contacted: the test stops at the redirect
SCOPE = "openid profile email groups"
UPSTREAM_TIMEOUT_SECONDS = 1.0


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedProvider]:
    with scripted_provider("authyard", f"upstream-{secrets.token_urlsafe(12)}") as provider:
        yield provider


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    with silent_listener() as port:
        yield port


def providers_file(directory: Path, upstream: ScriptedProvider, silent_port: int) -> Path:
    secret = directory / "upstream-secret"
    secret.write_text(upstream.client_secret + "\n")  # as a mounted Secret may end
    common = {"type": "oidc", "client_id": upstream.client_id, "client_secret_file": str(secret)}
    document = {
        "local_accounts": True,
        "providers": [
            {
                **common,
                "name": "scripted",
                "display_name": "Scripted IdP",
                "issuer": upstream.issuer,
                "scopes": ["openid", "profile", "email", "groups"],
            },
            {
                **common,
                "name": "strict",
                "display_name": "Strict IdP",
                "issuer": upstream.issuer,
                "allowed_email_domains": ["Corp.Example"],
                "allowed_groups": ["admins"],
            },
            {
                **common,
                "name": "down",
                "display_name": "Down IdP",
                "issuer": f"http://127.0.0.1:{closed_port()}",
            },
            {
                **common,
                "name": "slow",
                "display_name": "Slow IdP",
                "issuer": f"http://127.0.0.1:{silent_port}",
            },
        ],
    }
    path = directory / "identity-providers.json"
    path.write_text(json.dumps(document))
    return path


@pytest.fixture(scope="module")
def server(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    upstream: ScriptedProvider,
    silent_port: int,
) -> Iterator[AuthServer]:
    path = providers_file(tmp_path_factory.mktemp("idp"), upstream, silent_port)
    with server_process(
        backend,
        request,
        workers=1,
        AUTHSERVER_IDENTITY_PROVIDERS_FILE=str(path),
        AUTHSERVER_UPSTREAM_TIMEOUT=f"{UPSTREAM_TIMEOUT_SECONDS}s",
    ) as started:
        yield started


@pytest.fixture(scope="module")
def client(server: AuthServer) -> dict[str, Any]:
    return server.create_client(
        "Upstream App", ["authorization_code"], scopes=SCOPE.split(), redirect_uris=[REDIRECT_URI]
    )


@pytest.fixture(autouse=True)
def no_defect(upstream: ScriptedProvider) -> Iterator[None]:
    upstream.defect = None
    yield
    upstream.defect = None


def person(**claims: Any) -> dict[str, Any]:
    name = f"p-{uuid.uuid4().hex[:8]}"
    return {
        "sub": f"upstream-{uuid.uuid4().hex}",
        "preferred_username": name,
        "email": f"{name}@corp.example",
        "email_verified": True,
        "name": "Pat Upstream",
        "groups": ["admins", "devs"],
        **claims,
    }


class Browser:
    """One browser: a cookie jar, redirects followed by hand (each hop is checked)."""

    def __init__(self, server: AuthServer, client: dict[str, Any]) -> None:
        self.server = server
        self.client = client
        self.http = httpx.Client(follow_redirects=False, timeout=15)
        self.verifier, challenge = pkce_pair()
        self.authorize_url = f"{server.base_url}/authorize?" + urlencode(
            {
                "response_type": "code",
                "client_id": client["client_id"],
                "redirect_uri": REDIRECT_URI,
                "scope": SCOPE,
                "state": "rp-state",
                "nonce": "rp-nonce",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "prompt": "consent",
            }
        )

    def close(self) -> None:
        self.http.close()

    def login_page(self) -> httpx.Response:
        page = self.http.get(self.authorize_url)
        assert page.status_code == 200 and 'id="username"' in page.text
        return page

    def upstream_start(self, page: httpx.Response, name: str) -> str:
        found = re.search(rf'id="upstream-{name}" href="([^"]+)"', page.text)
        assert found, f"the login page offers no {name} button"
        return self.server.base_url + unescape(found.group(1))

    def sign_in_upstream(self, name: str) -> httpx.Response:
        """Click the provider's button and follow the redirects to the provider and back; the answer of
        Authyard's callback (or of the start, when it does not redirect)."""
        started = self.http.get(self.upstream_start(self.login_page(), name))
        if started.status_code != 302:
            return started
        to_provider = started.headers["location"]
        query = parse_qs(urlsplit(to_provider).query)
        # OIDC Core §3.1.2.1 with PKCE S256 and a nonce, always.
        assert query["response_type"] == ["code"] and query["code_challenge_method"] == ["S256"]
        assert query["nonce"][0] and query["state"][0] and query["code_challenge"][0]
        assert query["redirect_uri"] == [f"{self.server.base_url}/upstream/{name}/callback"]
        back = self.http.get(to_provider)
        assert back.status_code == 302
        return self.http.get(back.headers["location"])

    def consent_and_code(self, consent_page: httpx.Response) -> str:
        assert consent_page.status_code == 200 and 'id="allow"' in consent_page.text, consent_page.text
        answer = self.http.post(
            f"{self.server.base_url}/authorize/consent",
            data={**hidden_fields(consent_page.text), "decision": "allow"},
        )
        assert answer.status_code == 303
        query = parse_qs(urlsplit(answer.headers["location"]).query)
        assert query["state"] == ["rp-state"]
        return query["code"][0]

    def tokens(self, code: str) -> dict[str, Any]:
        answer = httpx.post(
            f"{self.server.base_url}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": self.verifier,
                "client_id": self.client["client_id"],
                "client_secret": self.client["client_secret"],
            },
            timeout=15,
        )
        assert answer.status_code == 200, answer.text
        tokens: dict[str, Any] = answer.json()
        return tokens


@pytest.fixture
def browser(server: AuthServer, client: dict[str, Any]) -> Iterator[Browser]:
    with new_browser(server, client) as opened:
        yield opened


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def signed_in_through(browser: Browser, name: str) -> dict[str, Any]:
    tokens = browser.tokens(browser.consent_and_code(browser.sign_in_upstream(name)))
    return {"id_token": claims_of(tokens["id_token"]), "access_token": claims_of(tokens["access_token"])}


@contextlib.contextmanager
def new_browser(server: AuthServer, client: dict[str, Any]) -> Iterator[Browser]:
    """A browser of its own (no cookies from an earlier sign-in)."""
    opened = Browser(server, client)
    try:
        yield opened
    finally:
        opened.close()


def test_a_first_sign_in_provisions_a_linked_user_and_a_later_one_refreshes_it(
    server: AuthServer, client: dict[str, Any], upstream: ScriptedProvider
) -> None:
    upstream.person = person()
    with new_browser(server, client) as first_browser:
        first = signed_in_through(first_browser, "scripted")
    id_token = first["id_token"]
    assert id_token["preferred_username"] == upstream.person["preferred_username"]
    assert (id_token["name"], id_token["email"], id_token["email_verified"]) == (
        "Pat Upstream",
        upstream.person["email"],
        True,
    )
    assert id_token["groups"] == ["admins", "devs"] and first["access_token"]["groups"] == ["admins", "devs"]
    assert id_token["nonce"] == "rp-nonce"  # the relying party's own, not the upstream's
    assert id_token["sub"] != upstream.person["sub"]  # a local user, linked to the upstream subject

    upstream.person = {**upstream.person, "name": "Pat Renamed", "groups": ["devs"], "email_verified": False}
    with new_browser(server, client) as again_browser:
        again = signed_in_through(again_browser, "scripted")
    assert again["id_token"]["sub"] == id_token["sub"]  # the same person: the stable link
    assert again["id_token"]["name"] == "Pat Renamed" and again["id_token"]["groups"] == ["devs"]
    assert again["id_token"]["email_verified"] is False
    assert upstream.token_requests >= 2


def test_a_username_or_email_of_a_local_account_never_links_to_it(
    server: AuthServer, client: dict[str, Any], upstream: ScriptedProvider, browser: Browser
) -> None:
    """The upstream says it is the local administrator (same username, same e-mail): it gets a user of its
    own, under the name qualified by the provider."""
    local = f"admin-{uuid.uuid4().hex[:6]}"
    created = server.create_user(local, secrets.token_urlsafe(16), email=f"{local}@corp.example")
    upstream.person = person(preferred_username=local, email=f"{local}@corp.example")
    signed_in = signed_in_through(browser, "scripted")["id_token"]
    assert signed_in["sub"] != created["user_id"]
    assert signed_in["preferred_username"] == f"{local}@scripted"


@pytest.mark.parametrize("defect", ["issuer", "audience", "nonce", "azp", "signature", "response_iss"])
def test_an_id_token_the_relying_party_must_refuse_gives_a_page_naming_the_provider(
    browser: Browser, upstream: ScriptedProvider, defect: str
) -> None:
    """OIDC Core §3.1.3.7: another issuer, another audience, another nonce, several audiences without our
    azp, a signature by a key the provider does not publish; or an answer naming another issuer (RFC 9207
    §2.4, a mix-up): no sign-in, a page saying which provider."""
    upstream.person = person()
    upstream.defect = defect
    page = browser.sign_in_upstream("scripted")
    assert page.status_code == 502
    assert "Signing in with Scripted IdP failed: its answer could not be accepted." in page.text
    assert "authyard_session" not in page.headers.get("set-cookie", "")
    assert 'id="username"' in page.text  # local sign-in stays at hand
    assert "Traceback" not in page.text and "id_token" not in page.text


def test_an_answer_with_another_state_is_refused(browser: Browser, upstream: ScriptedProvider) -> None:
    upstream.person = person()
    upstream.defect = "state"
    tokens_before = upstream.token_requests
    page = browser.sign_in_upstream("scripted")
    assert page.status_code == 400
    assert "does not belong to a sign-in started in this browser" in page.text
    assert upstream.token_requests == tokens_before  # the code was never redeemed


def test_an_answer_arriving_in_another_browser_is_refused(
    server: AuthServer, client: dict[str, Any], browser: Browser, upstream: ScriptedProvider
) -> None:
    """The callback URL with a valid code and state, opened by a browser that did not start the sign-in
    (login CSRF, RFC 9700 §4.7.1): refused, and the code is not redeemed."""
    upstream.person = person()
    started = browser.http.get(browser.upstream_start(browser.login_page(), "scripted"))
    callback = browser.http.get(started.headers["location"]).headers["location"]
    tokens_before = upstream.token_requests
    with httpx.Client(timeout=15) as victim:
        page = victim.get(callback)
    assert page.status_code == 400 and "started in this browser" in page.text
    assert upstream.token_requests == tokens_before


def test_the_providers_refusal_is_a_page_naming_it(browser: Browser, upstream: ScriptedProvider) -> None:
    upstream.defect = "error"
    page = browser.sign_in_upstream("scripted")
    assert page.status_code == 403
    assert "Signing in with Scripted IdP failed: it did not sign you in." in page.text


@pytest.mark.parametrize(
    ("claims", "says"),
    [
        ({"email": "pat@elsewhere.example"}, "people of the e-mail domain elsewhere.example may not sign in"),
        ({"email_verified": False}, "it gave no verified e-mail address"),
        ({"groups": ["devs"]}, "you are not in a group that may sign in here"),
    ],
)
def test_the_allow_lists_refuse_people_outside_them(
    browser: Browser, upstream: ScriptedProvider, claims: dict[str, Any], says: str
) -> None:
    upstream.person = person(**claims)
    page = browser.sign_in_upstream("strict")
    assert page.status_code == 403
    assert f"Signing in with Strict IdP failed: {says}" in page.text


def test_the_allow_lists_let_people_inside_them_in(browser: Browser, upstream: ScriptedProvider) -> None:
    upstream.person = person(groups=["admins"])
    assert signed_in_through(browser, "strict")["id_token"]["groups"] == ["admins"]


@pytest.mark.parametrize(
    ("name", "status", "says"),
    [
        ("down", 502, "Down IdP failed: it cannot be reached."),
        ("slow", 504, "Slow IdP failed: it did not answer in time."),
    ],
)
def test_a_provider_down_or_slow_is_a_bounded_page_and_local_sign_in_still_works(
    server: AuthServer, browser: Browser, name: str, status: int, says: str
) -> None:
    began = time.monotonic()
    page = browser.sign_in_upstream(name)
    elapsed = time.monotonic() - began
    assert page.status_code == status and f"Signing in with {says}" in page.text
    assert elapsed < UPSTREAM_TIMEOUT_SECONDS + 5
    # The local administrator signs in from that very page.
    username, password = f"root-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(16)
    server.create_user(username, password)
    answer = browser.http.post(
        f"{server.base_url}/authorize/login",
        data={**hidden_fields(page.text), "username": username, "password": password},
    )
    assert answer.status_code == 200 and 'id="allow"' in answer.text  # signed in: the consent page


def test_local_membership_from_the_command_line_is_the_groups_claim_of_a_local_sign_in(
    server: AuthServer, browser: Browser
) -> None:
    username, password = f"ops-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(16)
    created = server.cli(
        "users",
        "create",
        "--username",
        username,
        "--password-stdin",
        "--group",
        "ops",
        "--group",
        "dev",
        stdin=password + "\n",
    )
    assert json.loads(created.stdout)["groups"] == ["ops", "dev"]
    page = browser.login_page()
    consent = browser.http.post(
        f"{server.base_url}/authorize/login",
        data={**hidden_fields(page.text), "username": username, "password": password},
    )
    tokens = browser.tokens(browser.consent_and_code(consent))
    assert claims_of(tokens["id_token"])["groups"] == ["ops", "dev"]
    assert claims_of(tokens["access_token"])["groups"] == ["ops", "dev"]


def test_a_disabled_user_cannot_sign_in_through_the_provider(
    server: AuthServer, client: dict[str, Any], upstream: ScriptedProvider
) -> None:
    upstream.person = person()
    with new_browser(server, client) as first:
        username = signed_in_through(first, "scripted")["id_token"]["preferred_username"]
    disabled = httpx.post(
        f"{server.base_url}/admin/users/{username}/disable",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=15,
    )
    assert disabled.status_code == 200, disabled.text
    with new_browser(server, client) as again:
        page = again.sign_in_upstream("scripted")
    assert page.status_code == 403
    assert "Signing in with Scripted IdP failed: your account here is disabled." in page.text


def test_a_request_too_large_for_the_state_cookie_is_said_at_once(
    server: AuthServer, client: dict[str, Any], upstream: ScriptedProvider
) -> None:
    """The pending request travels in the state cookie; one larger than browsers keep (RFC 6265 §6.1) would
    be dropped and the answer refused as another browser's. A large claims request is told so up front."""
    claims = {"userinfo": {f"https://claims.example/{index:04d}/" + "x" * 40: None for index in range(50)}}
    with new_browser(server, client) as browser:
        browser.authorize_url += "&" + urlencode({"claims": json.dumps(claims)})
        page = browser.sign_in_upstream("scripted")
    assert page.status_code == 400
    assert "too large to sign in with Scripted IdP" in page.text and 'id="username"' in page.text


def test_the_admin_api_says_which_provider_can_be_used(server: AuthServer) -> None:
    """Discovery and keys read for the scripted provider; the one that is down and the silent one are not
    usable, each saying why."""
    answer = httpx.get(
        f"{server.base_url}/admin/identity-providers",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=15,
    )
    assert answer.status_code == 200
    health = {provider["name"]: provider for provider in answer.json()["providers"]}
    assert health["scripted"]["healthy"] is True and health["scripted"]["kind"] == "oidc"
    assert health["down"]["healthy"] is False and health["down"]["detail"]
    assert health["slow"]["healthy"] is False and health["slow"]["detail"]
