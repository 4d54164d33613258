"""A browser signing one user into clients over the in-process application, and the ID tokens it gets: for
the sign-in session and logout tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import httpx

from authserver.protocol.models import User
from authserver.protocol.session_end import EndedSession
from harness.accounts import new_user
from tests.support.app import store_of
from tests.support.oauth import PASSWORD, hidden_fields, pkce_pair, query_of, redeem_code, register

REDIRECT = "https://rp.example.com/session-callback"
SIGNED_OUT = "https://rp.example.com/signed-out"


async def skip_consent_client(app_client: httpx.AsyncClient) -> str:
    """A public code-flow client with refresh tokens that is never shown the consent page."""
    client_id, _ = await register(
        app_client,
        type="public",
        grant_types=["authorization_code", "refresh_token"],
        scopes=["openid", "profile"],
        redirect_uris=[REDIRECT],
        post_logout_redirect_uris=[SIGNED_OUT],
        skip_consent=True,
    )
    return client_id


async def signed_up(app_client: httpx.AsyncClient) -> User:
    username = f"s-{uuid.uuid4().hex[:8]}"
    user = new_user(username, PASSWORD, email=f"{username}@example.com", name="Session User")
    await store_of(app_client).create_user(user)
    return user


class Browser:
    """One browser signing one user into clients, as relying parties drive it."""

    def __init__(self, app: httpx.AsyncClient, browser: httpx.AsyncClient, user: User) -> None:
        self.app, self.browser, self.user = app, browser, user

    async def authorize(self, client_id: str, **extra: str) -> tuple[httpx.Response, str]:
        verifier, challenge = pkce_pair()
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "scope": "openid profile",
            "state": "st",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        return await self.browser.get(f"/authorize?{urlencode(params)}"), verifier

    async def tokens(self, client_id: str) -> dict[str, Any]:
        """Sign in if asked to; the tokens of the code that comes back."""
        page, verifier = await self.authorize(client_id)
        if page.status_code == 200:
            fields = {**hidden_fields(page.text), "username": self.user.username, "password": PASSWORD}
            page = await self.browser.post("/authorize/login", data=fields)
        assert page.status_code in (302, 303), page.text
        code = query_of(page.headers["location"])["code"]
        tokens = await redeem_code(self.app, code, verifier, REDIRECT, client_id=client_id)
        assert tokens.status_code == 200, tokens.text
        return dict(tokens.json())

    async def signed_in(self, client_id: str) -> bool:
        """Whether prompt=none gets a code (someone is signed in) rather than login_required."""
        page, _ = await self.authorize(client_id, prompt="none")
        returned = query_of(page.headers["location"])
        assert "code" in returned or returned["error"] == "login_required", returned
        return "code" in returned


def claims(app: httpx.AsyncClient, id_token: str) -> dict[str, Any]:
    keyset = app.app.state.services.keyset()  # type: ignore[attr-defined]
    return keyset.verify(id_token, options={"verify_aud": False})  # type: ignore[no-any-return]


class Recorder:
    """A session-end listener that remembers what it heard."""

    def __init__(self) -> None:
        self.heard: list[EndedSession] = []

    def session_ended(self, ended: EndedSession) -> None:
        self.heard.append(ended)


@contextmanager
def recording(app_client: httpx.AsyncClient) -> Iterator[Recorder]:
    """A ``Recorder`` among the application's session-end listeners while the block runs."""
    listeners = app_client.app.state.services.session_end_listeners  # type: ignore[attr-defined]
    heard = Recorder()
    listeners.append(heard)
    try:
        yield heard
    finally:
        listeners.remove(heard)
