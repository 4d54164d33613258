"""The modules of ``oidcc-backchannel-rp-initiated-logout-certification-test-plan`` (Back-Channel OP), each a
test named after its module and checking what that module checks, against a real ``authserver serve`` on
both databases, with a real back-channel logout receiver on loopback standing for the suite's RP.

oidcc-backchannel-rp-initiated-logout: a normal sign-in, then the end-session endpoint with the ID token as
hint; the OP must POST a logout token to the client's ``backchannel_logout_uri`` (OpenID Connect
Back-Channel Logout 1.0 §2.5) that passes the RP's validation (§2.6: signature, claims, ``sid``/``sub``
matching the ID token, no ``nonce``, only ``logout_token`` in the form), send the browser to the
``post_logout_redirect_uri`` with the state, and answer a following ``prompt=none`` with an error.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest

from harness.authserver import AuthServer, running_server
from harness.polling import wait_for
from tests.support.backchannel_receiver import Receiver, receiving
from tests.support.oauth import ADMIN_TOKEN, query_of
from tests.support.user_agent import RelyingParty, UserAgent

REDIRECT_URI = "http://127.0.0.1:9/oidcc-callback"  # never contacted: the tests read the Location header
POST_LOGOUT_REDIRECT_URI = "http://127.0.0.1:9/post_logout_redirect"
EVENT = "http://schemas.openid.net/event/backchannel-logout"


@dataclass
class Op:
    server: AuthServer
    metadata: dict[str, Any]
    receiver: Receiver
    username: str
    password: str
    clients: list[dict[str, Any]]

    def rp(self, index: int) -> RelyingParty:
        client = self.clients[index]
        return RelyingParty(
            self.server.issuer, self.metadata, client["client_id"], client["client_secret"], REDIRECT_URI
        )

    def logout_tokens(self) -> list[tuple[str, dict[str, list[str]]]]:
        return [(path, form) for path, _, form in self.receiver.requests]


@pytest.fixture(scope="module")
def op(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Op]:
    """One server per database; two clients registered for back-channel logout (session required, as the
    suite registers its client) and one without, all with the post-logout redirect URI; one user."""
    url = None
    if backend != "sqlite":
        url = request.getfixturevalue("postgres_cluster").create_database(f"bcl_{uuid.uuid4().hex[:10]}")
    with receiving(200) as receiver, running_server(tmp_path_factory.mktemp(f"bcl-{backend}"), url) as server:
        clients = [
            server.create_client(
                f"back-channel RP {n}",
                ["authorization_code", "refresh_token"],
                scopes=["openid", "profile"],
                redirect_uris=[REDIRECT_URI],
                pkce_optional=True,
                post_logout_redirect_uris=[POST_LOGOUT_REDIRECT_URI],
                backchannel_logout_uri=f"{receiver.uri}&rp={n}" if n < 2 else None,
                backchannel_logout_session_required=n < 2,
            )
            for n in range(3)
        ]
        password = secrets.token_urlsafe(18)
        server.create_user("bcl-user", password)
        metadata = httpx.get(f"{server.issuer}/.well-known/openid-configuration", timeout=15).json()
        yield Op(server, metadata, receiver, "bcl-user", password, clients)


def _until_received(op: Op, count: int) -> None:
    """Polls (bounded) until the receiver has had ``count`` requests: deliveries leave the sign-out's path."""
    asyncio.run(wait_for(lambda: len(op.receiver.requests) >= count, message=lambda: str(op.logout_tokens())))


def _signed_in(op: Op, browser: UserAgent, rp: RelyingParty) -> dict[str, Any]:
    """The code flow through the pages (a sign-in, or the browser's live session): the ID token's claims."""
    response = browser.through_pages(browser.authorize(rp.params()), op.username, op.password)
    tokens = rp.check_token_response(rp.redeem(rp.callback(response)["code"]))
    claims = rp.check_id_token(tokens["id_token"], tokens["access_token"])
    return {"id_token": tokens["id_token"], "claims": claims}


def _validated(op: Op, logout_token: str, client_id: str) -> dict[str, Any]:
    """§2.6, as the module's ValidateLogoutTokenSignature and ValidateLogoutTokenClaims do: a published key
    and an advertised algorithm, iss, aud, iat, jti, the event, sub or sid, and never a nonce."""
    header = jwt.get_unverified_header(logout_token)
    assert header["typ"] == "logout+jwt"  # §2.4 recommends the explicit type
    assert header["alg"] in op.metadata["id_token_signing_alg_values_supported"]
    keys = httpx.get(op.metadata["jwks_uri"], timeout=15).json()["keys"]
    [key] = [key for key in keys if key.get("kid") == header["kid"]]
    claims: dict[str, Any] = jwt.decode(
        logout_token,
        jwt.PyJWK(key).key,
        algorithms=[header["alg"]],
        audience=client_id,
        issuer=op.metadata["issuer"],
        options={"require": ["iss", "aud", "iat", "jti", "events"]},
    )
    assert claims["events"] == {EVENT: {}}
    assert "nonce" not in claims  # §2.4: MUST NOT
    assert "sub" in claims or "sid" in claims
    return claims


def test_oidcc_backchannel_logout_discovery_endpoint_verification(op: Op) -> None:
    assert op.metadata["backchannel_logout_supported"] is True
    # Certification requires sid in ID tokens and logout tokens (the module fails without it).
    assert op.metadata["backchannel_logout_session_supported"] is True
    assert op.metadata["end_session_endpoint"] == f"{op.server.issuer}/logout"


def test_oidcc_backchannel_rp_initiated_logout(op: Op) -> None:
    browser = UserAgent(op.server.issuer)
    try:
        first = _signed_in(op, browser, op.rp(0))
        second = _signed_in(op, browser, op.rp(1))  # the same browser session: no password asked
        _signed_in(op, browser, op.rp(2))  # signed in too, registered no back-channel URI
        sid = first["claims"]["sid"]
        assert second["claims"]["sid"] == sid and re.fullmatch(r"[A-Za-z0-9_-]{22,}", sid)
        op.receiver.requests.clear()

        state = secrets.token_urlsafe(16)
        response = browser.http.get(
            "/logout?"
            + urlencode(
                {
                    "id_token_hint": first["id_token"],
                    "post_logout_redirect_uri": POST_LOGOUT_REDIRECT_URI,
                    "state": state,
                }
            )
        )
        # CheckPostLogoutState, CheckForUnexpectedParametersInPostLogoutRedirect.
        assert response.status_code in (302, 303), response.text
        location = response.headers["location"]
        assert location.split("?")[0] == POST_LOGOUT_REDIRECT_URI and query_of(location) == {"state": state}

        _until_received(op, 2)
        received = {path: form for path, form in op.logout_tokens()}
        for n, signed_in in ((0, first), (1, second)):
            client_id = op.clients[n]["client_id"]
            [path] = [path for path in received if path.endswith(f"&rp={n}")]
            form = received[path]
            assert list(form) == ["logout_token"] and len(form["logout_token"]) == 1  # nothing else (§2.5)
            claims = _validated(op, form["logout_token"][0], client_id)
            assert claims["sid"] == signed_in["claims"]["sid"]  # CheckIdTokenSidMatchesLogoutToken
            assert claims["sub"] == signed_in["claims"]["sub"]  # CheckIdTokenSubMatchesLogoutToken
        assert len(op.receiver.requests) == 2  # one token per registered client of the session

        # The user is signed out: prompt=none must now be answered with an error, not a code.
        rp = op.rp(0)
        query = rp.callback(browser.authorize(rp.params(prompt="none")))
        assert query.get("error") == "login_required" and "code" not in query, query
    finally:
        browser.close()


def test_an_administrator_ending_the_users_sessions_logs_out_each_rp_of_each_session(op: Op) -> None:
    """Not a module: the other way a session ends. Two browsers of the user, each its own session; revoking
    the user's sessions through the admin API sends each session's RP a token with that session's sid."""
    browsers = [UserAgent(op.server.issuer) for _ in range(2)]
    try:
        sids = {_signed_in(op, browser, op.rp(0))["claims"]["sid"] for browser in browsers}
        assert len(sids) == 2
        op.receiver.requests.clear()
        response = httpx.delete(
            f"{op.server.issuer}/admin/users/{op.username}/sessions",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=15,
        )
        assert response.status_code in (200, 204), response.text
        _until_received(op, 2)
        client_id = op.clients[0]["client_id"]
        heard = {_validated(op, form["logout_token"][0], client_id)["sid"] for _, form in op.logout_tokens()}
        assert heard == sids
        for browser in browsers:  # each browser is signed out
            rp = op.rp(0)
            assert rp.callback(browser.authorize(rp.params(prompt="none")))["error"] == "login_required"
    finally:
        for browser in browsers:
            browser.close()


def test_the_cli_ending_a_users_sessions_sends_the_logout_tokens_before_it_exits(op: Op) -> None:
    """``authserver users sessions USER --revoke`` runs outside the server's workers: it delivers the logout
    tokens itself, before it returns."""
    browser = UserAgent(op.server.issuer)
    try:
        sid = _signed_in(op, browser, op.rp(0))["claims"]["sid"]
        op.receiver.requests.clear()
        ended = json.loads(op.server.cli("users", "sessions", op.username, "--revoke").stdout)
        assert sid in ended["ended"]
        [(_, form)] = op.logout_tokens()  # already there: the command waited for its delivery
        assert _validated(op, form["logout_token"][0], op.clients[0]["client_id"])["sid"] == sid
    finally:
        browser.close()
