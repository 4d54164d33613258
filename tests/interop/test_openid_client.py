"""panva's ``openid-client`` (npm, v6) as the relying party, against a real 2-worker ``authserver serve``.

A new user's first program: discovery, the authorization URL with PKCE, state and nonce, the callback's
checks and ID-token validation (``max_age`` included), refresh, introspection, userinfo and revocation, all
with openid-client's defaults (client_secret_post for a client that has only a secret). The test only plays
the user on the login and consent pages.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.authserver import AuthServer, running_server
from harness.polling import wait_for
from tests.interop.node_packages import installed
from tests.support.oauth import hidden_fields

REDIRECT_URI = "http://127.0.0.1:9/callback"  # never contacted: the user agent stops at the redirect
SCOPE = "openid profile email"
ANSWER_TIMEOUT_SECONDS = 30.0
REVOCATION_BOUND_SECONDS = 5.0  # the documented bound is the revocation sync interval (0.5 s); slack here


@pytest.fixture(scope="module")
def rp_directory() -> Path:
    return installed("openid_client")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    with running_server(tmp_path_factory.mktemp("openid-client"), workers=2) as server:
        yield server


@pytest.fixture(scope="module")
def registered(server: AuthServer) -> dict[str, Any]:
    # Registered as a platform team would, with no client-authentication method named.
    return server.create_client(
        "openid-client app",
        ["authorization_code", "refresh_token"],
        scopes=SCOPE.split(),
        redirect_uris=[REDIRECT_URI],
    )


@pytest.fixture(scope="module")
def user(server: AuthServer) -> dict[str, str]:
    username = f"rp-{uuid.uuid4().hex[:8]}"
    password = f"pw-{secrets.token_urlsafe(18)}"
    created = server.create_user(username, password, email=f"{username}@example.com", name="R. P. User")
    return {"username": username, "password": password, "user_id": created["user_id"]}


class RelyingParty:
    """``node rp.mjs``: one JSON command per line in, one JSON answer per line out."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def call(self, command: str, **arguments: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write((json.dumps({"command": command, **arguments}) + "\n").encode())
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), ANSWER_TIMEOUT_SECONDS)
        assert line, f"openid-client exited while answering {command}"
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def ok(self, command: str, **arguments: Any) -> dict[str, Any]:
        answer = await self.call(command, **arguments)
        assert answer["ok"], f"{command}: {answer}"
        return answer


@pytest.fixture
async def rp(
    rp_directory: Path, server: AuthServer, registered: dict[str, Any]
) -> AsyncIterator[RelyingParty]:
    process = await asyncio.create_subprocess_exec(
        "node",
        str(rp_directory / "rp.mjs"),
        cwd=rp_directory,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    party = RelyingParty(process)
    try:
        discovered = await party.ok(
            "discover",
            issuer=server.issuer,
            client_id=registered["client_id"],
            client_secret=registered["client_secret"],
        )
        assert discovered["issuer"] == server.issuer
        yield party
    finally:
        assert process.stdin is not None
        process.stdin.close()
        await asyncio.wait_for(process.wait(), 10)


async def sign_in(browser: httpx.AsyncClient, url: str, user: dict[str, str]) -> tuple[str, bool]:
    """Follow the authorization URL as the user: sign in when asked, allow when asked. The callback URL the
    server redirects to, and whether the password was asked."""
    page = await browser.get(url)
    asked_password = 'name="password"' in page.text
    if asked_password:
        page = await browser.post(
            "/authorize/login",
            data={**hidden_fields(page.text), "username": user["username"], "password": user["password"]},
        )
    if page.status_code == 200 and 'name="decision"' in page.text:
        page = await browser.post(
            "/authorize/consent", data={**hidden_fields(page.text), "decision": "allow"}
        )
    assert page.status_code in (302, 303), page.text[:2000]
    location = page.headers["location"]
    assert location.startswith(REDIRECT_URI), location
    return location, asked_password


@pytest.fixture
async def browser(server: AuthServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        yield client


async def test_openid_client_signs_in_refreshes_introspects_reads_userinfo_and_revokes(
    rp: RelyingParty, browser: httpx.AsyncClient, user: dict[str, str], registered: dict[str, Any]
) -> None:
    url = (await rp.ok("authorization_url", redirect_uri=REDIRECT_URI, scope=SCOPE))["url"]
    callback, asked_password = await sign_in(browser, url, user)
    assert asked_password
    signed_in = await rp.ok("callback", url=callback)  # PKCE, state, nonce, iss and the ID token checked
    claims = signed_in["claims"]
    assert claims["sub"] == user["user_id"]
    assert claims["aud"] == registered["client_id"] or registered["client_id"] in claims["aud"]
    assert claims["email"] == f"{user['username']}@example.com"
    assert isinstance(claims["auth_time"], int)
    assert signed_in["refresh_token"]

    userinfo = (await rp.ok("userinfo", access_token=signed_in["access_token"], subject=user["user_id"]))[
        "userinfo"
    ]
    assert userinfo["sub"] == user["user_id"] and userinfo["name"] == "R. P. User"

    introspection = (await rp.ok("introspect", token=signed_in["access_token"]))["introspection"]
    assert introspection["active"] is True
    assert introspection["client_id"] == registered["client_id"]

    refreshed = await rp.ok("refresh", refresh_token=signed_in["refresh_token"])
    assert refreshed["refresh_token"] != signed_in["refresh_token"]
    assert refreshed["claims"] is None or refreshed["claims"]["sub"] == user["user_id"]

    await rp.ok("revoke", token=refreshed["refresh_token"])
    refused = await rp.call("refresh", refresh_token=refreshed["refresh_token"])
    assert not refused["ok"] and refused["error"] == "invalid_grant", refused

    # RFC 7009 §2.1: the access tokens of the revoked grant go too (within the revocation bound).
    async def inactive(token: str) -> bool:
        return (await rp.ok("introspect", token=token))["introspection"]["active"] is False

    for token in (signed_in["access_token"], refreshed["access_token"]):
        await wait_for(lambda token=token: inactive(token), timeout=REVOCATION_BOUND_SECONDS)


async def test_openid_client_max_age_asks_for_the_password_again(
    rp: RelyingParty, browser: httpx.AsyncClient, user: dict[str, str]
) -> None:
    url = (await rp.ok("authorization_url", redirect_uri=REDIRECT_URI, scope=SCOPE))["url"]
    first = await rp.ok("callback", url=(await sign_in(browser, url, user))[0])
    auth_time = first["claims"]["auth_time"]

    # The session must be older than max_age=1 (OIDC Core §3.1.2.1): the clock has to pass, not a state.
    await wait_for(lambda: time.time() >= auth_time + 2, timeout=5, interval=0.1)
    url = (await rp.ok("authorization_url", redirect_uri=REDIRECT_URI, scope=SCOPE, max_age=1))["url"]
    callback, asked_password = await sign_in(browser, url, user)
    assert asked_password, "a session older than max_age was not asked to sign in again"
    # openid-client refuses an ID token whose auth_time is older than max_age allows.
    second = await rp.ok("callback", url=callback)
    assert second["claims"]["auth_time"] > auth_time
