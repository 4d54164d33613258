"""The login and consent decisions (OIDC Core §3.1.2): prompt handling, sign-in, the consent answer."""

from __future__ import annotations

import time

import pytest

from authserver.protocol.authorization import AuthorizationRequest
from authserver.protocol.authorization_flow import (
    LoginProblem,
    LoginSession,
    ReturnToClient,
    ShowConsent,
    ShowLogin,
)
from tests.support.oauth import PASSWORD, pkce_pair, query_of
from tests.support.protocol_server import ISSUER, REDIRECT, ProtocolServer


async def _request(server: ProtocolServer, **params: str) -> AuthorizationRequest:
    return await server.authorization_request(server.web_client(), pkce_pair()[1], **params)


@pytest.mark.parametrize(("signed_in", "error"), [(False, "login_required"), (True, "consent_required")])
async def test_prompt_none_goes_straight_back_with_what_would_be_needed(
    server: ProtocolServer, signed_in: bool, error: str
) -> None:
    request = await _request(server, prompt="none")
    session = server.session(await server.user()) if signed_in else None
    step = server.flow.start(request, session)
    assert isinstance(step, ReturnToClient) and step.location.startswith(f"{REDIRECT}?")
    assert query_of(step.location) == {"error": error, "state": "st-1", "iss": ISSUER}


async def test_a_signed_in_user_is_asked_to_consent_unless_the_client_wants_a_fresh_login(
    server: ProtocolServer,
) -> None:
    session = server.session(await server.user())
    assert server.flow.start(await _request(server), session) == ShowConsent(session)
    assert server.flow.start(await _request(server, prompt="consent"), session) == ShowConsent(session)
    assert server.flow.start(await _request(server, prompt="login"), session) == ShowLogin()
    assert server.flow.start(await _request(server), None) == ShowLogin()
    assert server.flow.start(await _request(server, prompt="consent"), None) == ShowLogin()


async def test_sign_in_checks_the_password(server: ProtocolServer) -> None:
    user = await server.user()
    before = int(time.time())
    session = await server.flow.sign_in(user.username, PASSWORD)
    assert isinstance(session, LoginSession)
    assert (session.user_id, session.username) == (user.user_id, user.username)
    assert before <= session.auth_time <= int(time.time())
    assert await server.flow.sign_in(user.username, "wrong password") is LoginProblem.WRONG_CREDENTIALS
    assert await server.flow.sign_in("nobody", PASSWORD) is LoginProblem.WRONG_CREDENTIALS
    assert await server.flow.sign_in("", PASSWORD) is LoginProblem.WRONG_CREDENTIALS


async def test_consent_issues_a_code_for_the_signed_in_user(server: ProtocolServer) -> None:
    client, user = server.web_client(), await server.user()
    verifier, challenge = pkce_pair()
    request = await server.authorization_request(client, challenge)
    session = LoginSession(user.user_id, user.username, 1_700_000_000)
    step = await server.flow.answer_consent(request, session, allowed=True)
    assert isinstance(step, ReturnToClient)
    query = query_of(step.location)
    assert set(query) == {"code", "state", "iss"} and query["iss"] == ISSUER
    body = await server.redeem(client, query["code"], verifier)
    claims = server.keys.verify(body["access_token"], typ="at+jwt", options={"verify_aud": False})
    assert claims["sub"] == user.user_id and claims["auth_time"] == 1_700_000_000


async def test_a_refusal_is_access_denied_and_a_lost_session_asks_to_sign_in_again(
    server: ProtocolServer,
) -> None:
    request = await _request(server)
    session = server.session(await server.user())
    denied = await server.flow.answer_consent(request, session, allowed=False)
    assert isinstance(denied, ReturnToClient)
    assert query_of(denied.location) == {
        "error": "access_denied",
        "error_description": "the user denied the request",
        "state": "st-1",
        "iss": ISSUER,
    }
    assert await server.flow.answer_consent(request, None, allowed=True) == ShowLogin(LoginProblem.SIGNED_OUT)
    assert not server.store.codes  # neither answer issued a code


def test_a_session_survives_its_cookie_and_a_malformed_one_is_no_session() -> None:
    session = LoginSession("u-1", "alice", 1_700_000_000)
    assert LoginSession.from_dict(session.to_dict()) == session
    for malformed in (None, {}, {"user_id": "u-1"}, {"user_id": "u", "username": "a", "auth_time": "soon"}):
        assert LoginSession.from_dict(malformed) is None
