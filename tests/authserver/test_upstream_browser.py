"""Sign-in through a real upstream OpenID provider in a real browser: headless Chromium goes from a relying
party's authorization request to Authyard's login page, to panva's ``oidc-provider`` (npm, on loopback:
its login and consent pages), back to Authyard's consent page and on to the relying party's redirect URI.
The ID token, userinfo and the access token carry the upstream person's mapped claims and groups; a second
sign-in after the person changed upstream refreshes them on the same local user.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from harness.authserver import AuthServer, running_server
from harness.polling import wait_for
from harness.ports import free_port
from tests.interop.node_packages import installed
from tests.support.browser import launched_chromium
from tests.support.oauth import pkce_pair

pytestmark = pytest.mark.browser

TIMEOUT_MS = 20_000
SCOPE = "openid profile email groups"
CLIENT_SECRET = f"authyard-at-upstream-{secrets.token_urlsafe(16)}"
ALICE = {
    "preferred_username": "alice",
    "email": "alice@corp.example",
    "email_verified": True,
    "name": "Alice Liddell",
    "groups": ["platform-admins", "developers"],
}


@pytest.fixture(scope="module")
def provider_directory() -> Path:
    return installed("oidc_provider")


@pytest.fixture(scope="module")
def upstream_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("upstream-browser")


@pytest.fixture(scope="module")
def server(workdir: Path, upstream_port: int) -> Iterator[AuthServer]:
    secret = workdir / "corp-client-secret"
    secret.write_text(CLIENT_SECRET)
    providers = workdir / "identity-providers.json"
    providers.write_text(
        json.dumps(
            {
                "providers": [
                    {
                        "name": "corp",
                        "display_name": "Corp SSO",
                        "type": "oidc",
                        "issuer": f"http://127.0.0.1:{upstream_port}",
                        "client_id": "authyard",
                        "client_secret_file": str(secret),
                        "scopes": SCOPE.split(),
                    }
                ]
            }
        )
    )
    with running_server(workdir / "server", AUTHSERVER_IDENTITY_PROVIDERS_FILE=str(providers)) as started:
        yield started


@pytest.fixture(scope="module")
def users_file(workdir: Path) -> Path:
    path = workdir / "upstream-users.json"
    path.write_text(json.dumps({"alice-sub": ALICE}))
    return path


@pytest.fixture(scope="module")
def upstream(
    provider_directory: Path, server: AuthServer, upstream_port: int, workdir: Path, users_file: Path
) -> Iterator[str]:
    clients = workdir / "upstream-clients.json"
    clients.write_text(
        json.dumps(
            [
                {
                    "client_id": "authyard",
                    "client_secret": CLIENT_SECRET,
                    "redirect_uris": [f"{server.base_url}/upstream/corp/callback"],
                    "token_endpoint_auth_method": "client_secret_basic",
                }
            ]
        )
    )
    issuer = f"http://127.0.0.1:{upstream_port}"
    log = (workdir / "oidc-provider.log").open("w")
    process = subprocess.Popen(
        ["node", "upstream.mjs"],
        cwd=provider_directory,
        env={
            **os.environ,
            "PORT": str(upstream_port),
            "CLIENTS_FILE": str(clients),
            "USERS_FILE": str(users_file),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        ready = wait_for(
            lambda: httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=2).status_code == 200,
            30,
            message=lambda: (workdir / "oidc-provider.log").read_text(),
        )
        # In a thread of its own: Playwright's sync API may already run an event loop in this one.
        with ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, ready).result()
        yield issuer
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


@pytest.fixture(scope="module")
def redirect_uri() -> str:
    return f"http://127.0.0.1:{free_port()}/callback"


@pytest.fixture(scope="module")
def client(server: AuthServer, redirect_uri: str) -> dict[str, Any]:
    return server.create_client(
        "Dashboard", ["authorization_code"], scopes=SCOPE.split(), redirect_uris=[redirect_uri]
    )


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with launched_chromium() as browser:
        yield browser


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def sign_in_through_corp(
    chromium: Any, server: AuthServer, client: dict[str, Any], redirect_uri: str
) -> dict[str, Any]:
    """One person in a fresh browser: the relying party's request, Authyard's login page, the upstream's
    login and consent, Authyard's consent, the code; the tokens the relying party gets for it."""
    verifier, challenge = pkce_pair()
    url = f"{server.base_url}/authorize?" + urlencode(
        {
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": redirect_uri,
            "scope": SCOPE,
            "state": "rp-state",
            "nonce": "rp-nonce",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "prompt": "consent",  # the consent page every time (the first sign-in's consent is remembered)
        }
    )
    context = chromium.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    arrived: list[str] = []

    def fulfil(route: Any) -> None:
        arrived.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<h1>back at the app</h1>")

    try:
        page = context.new_page()
        page.route(f"{redirect_uri}**", fulfil)
        page.goto(url)
        page.click("#upstream-corp")
        # oidc-provider's development login (any password) and its consent page.
        page.fill("input[name=login]", "alice-sub")
        page.fill("input[name=password]", "any")
        page.click("button[type=submit]")
        page.click("button:has-text('Continue')")
        # Back at Authyard: its own consent page for the relying party.
        page.wait_for_selector("#allow")
        assert "Dashboard" in page.content()
        page.click("#allow")
        page.wait_for_url(f"{redirect_uri}**")
    finally:
        context.close()
    query = parse_qs(urlsplit(arrived[-1]).query)
    assert query["state"] == ["rp-state"] and query["iss"] == [server.base_url]
    answer = httpx.post(
        f"{server.base_url}/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"][0],
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        auth=(client["client_id"], client["client_secret"]),
        timeout=15,
    )
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    userinfo = httpx.get(
        f"{server.base_url}/userinfo",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=15,
    )
    assert userinfo.status_code == 200
    return {
        "id_token": claims_of(tokens["id_token"]),
        "access_token": claims_of(tokens["access_token"]),
        "userinfo": userinfo.json(),
    }


def test_a_person_signs_in_through_the_upstream_and_the_tokens_carry_the_mapped_claims_and_groups(
    chromium: Any,
    server: AuthServer,
    upstream: str,
    client: dict[str, Any],
    redirect_uri: str,
    users_file: Path,
) -> None:
    first = sign_in_through_corp(chromium, server, client, redirect_uri)
    id_token = first["id_token"]
    assert id_token["iss"] == server.base_url and id_token["aud"] == client["client_id"]
    assert id_token["nonce"] == "rp-nonce"
    assert (
        id_token["preferred_username"],
        id_token["name"],
        id_token["email"],
        id_token["email_verified"],
    ) == (
        "alice",
        "Alice Liddell",
        "alice@corp.example",
        True,
    )
    assert id_token["groups"] == ["platform-admins", "developers"]
    assert first["userinfo"]["groups"] == ["platform-admins", "developers"]
    assert first["userinfo"]["sub"] == id_token["sub"]
    assert first["access_token"]["groups"] == ["platform-admins", "developers"]

    # Alice moves teams and changes her name upstream; her next sign-in brings it over.
    users_file.write_text(json.dumps({"alice-sub": {**ALICE, "name": "Alice Pleasance", "groups": ["sre"]}}))
    second = sign_in_through_corp(chromium, server, client, redirect_uri)
    assert second["id_token"]["sub"] == id_token["sub"]  # the same local user: the stable link
    assert second["id_token"]["name"] == "Alice Pleasance"
    assert second["id_token"]["groups"] == ["sre"] and second["userinfo"]["groups"] == ["sre"]
    assert second["id_token"]["preferred_username"] == "alice"
