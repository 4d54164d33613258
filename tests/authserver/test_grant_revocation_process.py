"""Revoking a grant revokes its access tokens on every worker, within the revocation bound: real
``authserver serve`` processes with two workers, on SQLite and PostgreSQL.

A grant is one sign-in (a code redemption and its refresh-token rotations). Revoking its refresh token
(RFC 7009 §2.1), reusing a rotated one (RFC 9700 §4.14.2) and replaying its code (RFC 6749 §4.1.2, the
OpenID conformance suite's oidcc-codereuse) each make its access tokens inactive at introspection and
invalid at userinfo on both workers within ``REVOCATION_BOUND`` (sync interval 0.5 s, plus margin); the
same user's other grant at the same client stays active; revoking an access token revokes only that one.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token

from harness.authserver import AuthServer
from harness.polling import wait_for
from tests.authserver.test_e2e_process import (
    REDIRECT_URI,
    Person,
    _submit,
    discover,
    introspect,
    oauth_client,
    two_worker_server,  # noqa: F401 - the fixture, used through ``server``
)

REVOCATION_BOUND_SECONDS = 1.0
_BURST = 16


@pytest.fixture(scope="module")
def server(two_worker_server: AuthServer) -> AuthServer:  # noqa: F811 - the imported fixture
    return two_worker_server


@pytest.fixture(scope="module")
def metadata(server: AuthServer) -> dict[str, Any]:
    return discover(server)


@pytest.fixture(scope="module")
def person(server: AuthServer) -> Person:
    return Person(server)


@pytest.fixture(scope="module")
def web_client(server: AuthServer) -> dict[str, Any]:
    return server.create_client(
        f"web-{uuid.uuid4().hex[:6]}",
        ["authorization_code", "refresh_token"],
        scopes=["openid", "profile", "read"],
        redirect_uris=[REDIRECT_URI],
    )


@pytest.fixture(scope="module")
def resource_server(server: AuthServer) -> dict[str, Any]:
    return server.create_client(f"api-{uuid.uuid4().hex[:6]}", ["client_credentials"], scopes=["read"])


class Grants:
    """Sign-ins of ``person`` at ``client`` through the login and consent pages, and their tokens."""

    def __init__(self, server: AuthServer, metadata: dict[str, Any], client: dict[str, Any], person: Person):
        self.server, self.metadata, self.client, self.person = server, metadata, client, person

    def code(self) -> tuple[str, str]:
        """A fresh authorization code and its PKCE verifier."""
        oauth = oauth_client(
            self.client, scope="openid profile read", redirect_uri=REDIRECT_URI, code_challenge_method="S256"
        )
        verifier = generate_token(64)
        url, _ = oauth.create_authorization_url(
            self.metadata["authorization_endpoint"], code_verifier=verifier
        )
        with httpx.Client(timeout=10) as browser:
            page = browser.get(url)
            login = {"username": self.person.username, "password": self.person.password}
            signed_in = _submit(browser, page, login)
            # The first sign-in asks for consent; the user's answer is remembered for the next ones.
            answered = (
                signed_in if signed_in.is_redirect else _submit(browser, signed_in, {"decision": "allow"})
            )
            location = answered.headers["location"]
        return parse_qs(urlsplit(location).query)["code"][0], verifier

    def token(self, **form: str) -> httpx.Response:
        auth = (self.client["client_id"], self.client["client_secret"])
        return httpx.post(self.metadata["token_endpoint"], data=form, auth=auth, timeout=10)

    def redeem(self, code: str, verifier: str) -> httpx.Response:
        return self.token(
            grant_type="authorization_code", code=code, code_verifier=verifier, redirect_uri=REDIRECT_URI
        )

    def sign_in(self) -> dict[str, Any]:
        """One grant: the code's tokens, then one refresh-token rotation; its access tokens listed."""
        first = self.redeem(*self.code())
        assert first.status_code == 200, first.text
        second = self.token(grant_type="refresh_token", refresh_token=first.json()["refresh_token"])
        assert second.status_code == 200, second.text
        tokens = {"first": first.json(), "second": second.json()}
        tokens["access_tokens"] = [first.json()["access_token"], second.json()["access_token"]]
        self.server.seen_secrets.update({first.json()["refresh_token"], second.json()["refresh_token"]})
        return tokens


@pytest.fixture
def grants(
    server: AuthServer, metadata: dict[str, Any], web_client: dict[str, Any], person: Person
) -> Grants:
    return Grants(server, metadata, web_client, person)


def _userinfo_status(metadata: dict[str, Any], token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.get(metadata["userinfo_endpoint"], headers=headers, timeout=10).status_code


class Observer:
    """Asks both workers about tokens in bursts (each request on its own connection, so the workers
    share them) and keeps what each burst saw, by when it began after the revocation."""

    def __init__(self, server: AuthServer, metadata: dict[str, Any], resource_server: dict[str, Any]):
        self.server, self.metadata, self.resource_server = server, metadata, resource_server
        self.route = urlsplit(metadata["introspection_endpoint"]).path

    def burst(self, tokens: list[str]) -> tuple[list[bool], int]:
        """(each introspection's ``active``, how many workers answered them)."""
        before = self.server.requests_by_worker(self.route)
        asks = [tokens[i % len(tokens)] for i in range(_BURST)]
        with ThreadPoolExecutor(max_workers=_BURST) as pool:
            answers = list(
                pool.map(lambda token: introspect(self.metadata, self.resource_server, token)["active"], asks)
            )
        after = self.server.requests_by_worker(self.route)
        workers = sum(1 for pid, count in after.items() if count > before.get(pid, 0))
        return answers, workers

    async def on_both_workers(self, tokens: list[str], *, active: bool) -> None:
        """Every answer about ``tokens`` is ``active`` in one burst that reached both workers."""

        def seen() -> bool:
            answers, workers = self.burst(tokens)
            return workers >= 2 and all(answer is active for answer in answers)

        await wait_for(seen, timeout=20, message=f"{tokens} not active={active} on both workers")

    async def revoked_within_bound(self, tokens: list[str], revoked_at: float) -> None:
        """No worker answers ``tokens`` active in a burst begun ``REVOCATION_BOUND_SECONDS`` after
        ``revoked_at``; wait until such a burst reached both workers."""
        late: list[tuple[float, int, int]] = []  # (began after revocation, active answers, workers)

        def reached_both_after_the_bound() -> bool:
            began = time.monotonic() - revoked_at
            answers, workers = self.burst(tokens)
            if began >= REVOCATION_BOUND_SECONDS:
                late.append((round(began, 3), sum(answers), workers))
            return any(entry[2] >= 2 for entry in late)

        await wait_for(reached_both_after_the_bound, timeout=20, message="no burst reached both workers")
        assert all(active == 0 for _, active, _ in late), f"active after the bound: {late}"
        for token in tokens:  # past the bound every worker refuses it at userinfo too
            assert {_userinfo_status(self.metadata, token) for _ in range(_BURST // 2)} == {401}


@pytest.fixture
def observer(server: AuthServer, metadata: dict[str, Any], resource_server: dict[str, Any]) -> Observer:
    return Observer(server, metadata, resource_server)


async def test_revoking_a_refresh_token_revokes_its_grants_access_tokens_on_every_worker(
    grants: Grants, observer: Observer
) -> None:
    grant, other = grants.sign_in(), grants.sign_in()  # the same user and client: two grants
    await observer.on_both_workers(grant["access_tokens"] + other["access_tokens"], active=True)

    with oauth_client(grants.client) as oauth:
        response = oauth.revoke_token(
            grants.metadata["revocation_endpoint"],
            token=grant["second"]["refresh_token"],
            token_type_hint="refresh_token",
        )
    revoked_at = time.monotonic()
    assert response.status_code == 200, response.text
    await observer.revoked_within_bound(grant["access_tokens"], revoked_at)
    await observer.on_both_workers(other["access_tokens"], active=True)
    assert _userinfo_status(grants.metadata, other["second"]["access_token"]) == 200


async def test_reusing_a_refresh_token_revokes_its_grants_access_tokens_on_every_worker(
    grants: Grants, observer: Observer
) -> None:
    grant, other = grants.sign_in(), grants.sign_in()
    reuse = grants.token(grant_type="refresh_token", refresh_token=grant["first"]["refresh_token"])
    revoked_at = time.monotonic()
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant", reuse.text
    await observer.revoked_within_bound(grant["access_tokens"], revoked_at)
    await observer.on_both_workers(other["access_tokens"], active=True)


async def test_oidcc_codereuse(grants: Grants, observer: Observer) -> None:
    """The access token of a code's first redemption is refused at userinfo and introspection once the
    code is presented again (OpenID conformance oidcc-codereuse; RFC 6749 §4.1.2)."""
    code, verifier = grants.code()
    first = grants.redeem(code, verifier)
    assert first.status_code == 200, first.text
    access_token = first.json()["access_token"]
    grants.server.seen_secrets.add(first.json()["refresh_token"])
    assert _userinfo_status(grants.metadata, access_token) == 200
    other = grants.sign_in()

    replay = grants.redeem(code, verifier)
    revoked_at = time.monotonic()
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant", replay.text
    await observer.revoked_within_bound([access_token], revoked_at)
    refresh = grants.token(grant_type="refresh_token", refresh_token=first.json()["refresh_token"])
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"
    await observer.on_both_workers(other["access_tokens"], active=True)


async def test_revoking_an_access_token_revokes_only_that_token(grants: Grants, observer: Observer) -> None:
    grant = grants.sign_in()
    revoked, kept = grant["access_tokens"]
    with oauth_client(grants.client) as oauth:
        response = oauth.revoke_token(
            grants.metadata["revocation_endpoint"], token=revoked, token_type_hint="access_token"
        )
    revoked_at = time.monotonic()
    assert response.status_code == 200, response.text
    await observer.revoked_within_bound([revoked], revoked_at)
    await observer.on_both_workers([kept], active=True)  # the same grant's other access token
    refresh = grants.token(grant_type="refresh_token", refresh_token=grant["second"]["refresh_token"])
    assert refresh.status_code == 200, refresh.text  # and its refresh token still work
    grants.server.seen_secrets.add(refresh.json()["refresh_token"])
