"""The login and consent decisions (OIDC Core §3.1.2): prompt handling, sign-in, the consent answer."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from authserver.protocol.authorization import AuthorizationRequest
from authserver.protocol.authorization_flow import (
    LoginProblem,
    LoginSession,
    ReturnToClient,
    ShowConsent,
    ShowLogin,
)
from authserver.protocol.models import User
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
    step = await server.flow.start(request, session)
    assert isinstance(step, ReturnToClient) and step.location.startswith(f"{REDIRECT}?")
    assert query_of(step.location) == {"error": error, "state": "st-1", "iss": ISSUER}


async def test_a_signed_in_user_is_asked_to_consent_unless_the_client_wants_a_fresh_login(
    server: ProtocolServer,
) -> None:
    session = server.session(await server.user())
    assert await server.flow.start(await _request(server), session) == ShowConsent(session)
    assert await server.flow.start(await _request(server, prompt="consent"), session) == ShowConsent(session)
    assert await server.flow.start(await _request(server, prompt="login"), session) == ShowLogin()
    assert await server.flow.start(await _request(server), None) == ShowLogin()
    assert await server.flow.start(await _request(server, prompt="consent"), None) == ShowLogin()


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
    precise = LoginSession("u-1", "alice", 1_700_000_000, 1_700_000_000.25)
    assert LoginSession.from_dict(precise.to_dict()) == precise
    for malformed in (
        None,
        {},
        {"user_id": "u-1"},
        {"user_id": "u", "username": "a", "auth_time": "soon"},
        {"user_id": "u", "username": "a", "auth_time": 1, "signed_in_at": "soon"},
    ):
        assert LoginSession.from_dict(malformed) is None
    # A cookie from before sub-second sign-in times counts from its auth_time.
    older = LoginSession.from_dict({"user_id": "u-1", "username": "alice", "auth_time": 1_700_000_000})
    assert older is not None and older.since == 1_700_000_000


def _signed_in(user: User, seconds_ago: float) -> LoginSession:
    at = time.time() - seconds_ago
    return LoginSession(user.user_id, user.username, int(at), at)


async def test_consent_is_remembered_and_asked_again_only_for_new_scopes(server: ProtocolServer) -> None:
    client, user = server.web_client(), await server.user()
    session = server.session(user)
    first = await server.authorization_request(client, pkce_pair()[1], scope="openid profile")
    assert await server.flow.start(first, session) == ShowConsent(session)
    assert isinstance(await server.flow.answer_consent(first, session, allowed=True), ReturnToClient)

    again = await server.authorization_request(client, pkce_pair()[1], scope="openid")
    step = await server.flow.start(again, session)  # a subset of what was allowed: no page
    assert isinstance(step, ReturnToClient) and set(query_of(step.location)) == {"code", "state", "iss"}
    wider = await server.authorization_request(client, pkce_pair()[1], scope="openid orders.read")
    assert await server.flow.start(wider, session) == ShowConsent(session)
    forced = await server.authorization_request(client, pkce_pair()[1], scope="openid", prompt="consent")
    assert await server.flow.start(forced, session) == ShowConsent(session)
    other_user = server.session(await server.user())
    assert await server.flow.start(again, other_user) == ShowConsent(other_user)  # per user
    # A refusal remembers nothing.
    await server.flow.answer_consent(wider, session, allowed=False)
    assert await server.store.granted_scopes(user.user_id, client.client_id) == {"openid", "profile"}


async def test_prompt_none_with_a_session_and_remembered_consent_returns_a_code(
    server: ProtocolServer,
) -> None:
    client, user = server.web_client(), await server.user()
    session = _signed_in(user, 30)
    await server.store.grant_consent(user.user_id, client.client_id, ["openid", "profile"], server_now())
    verifier, challenge = pkce_pair()
    request = await server.authorization_request(client, challenge, scope="openid profile", prompt="none")
    step = await server.flow.start(request, session)
    assert isinstance(step, ReturnToClient)
    body = await server.redeem(client, query_of(step.location)["code"], verifier)
    claims = server.keys.verify(body["id_token"], options={"verify_aud": False})
    assert claims["sub"] == user.user_id and claims["auth_time"] == session.auth_time

    async def error_for(**params: str) -> str:
        request = await server.authorization_request(
            client, pkce_pair()[1], scope="openid profile", prompt="none", **params
        )
        step = await server.flow.start(request, session)
        assert isinstance(step, ReturnToClient)
        return query_of(step.location).get("error", "")

    assert await error_for(max_age="10") == "login_required"  # signed in 30 s ago
    assert await error_for(max_age="10000") == ""
    hint = server.keys.sign({"iss": ISSUER, "sub": "someone-else"}, "JWT")
    assert await error_for(id_token_hint=hint) == "login_required"
    own = server.keys.sign({"iss": ISSUER, "sub": user.user_id}, "JWT")
    assert await error_for(id_token_hint=own) == ""


@pytest.mark.parametrize(
    ("params", "seconds_ago", "login"),
    [
        ({"prompt": "login"}, 5, True),
        ({"prompt": "select_account"}, 5, True),
        ({"max_age": "0"}, 5, True),
        ({"max_age": "1"}, 5, True),
        ({"max_age": "10000"}, 5, False),
        ({}, 86_400, False),
    ],
)
async def test_a_sign_in_too_old_for_the_request_shows_the_login_page(
    server: ProtocolServer, params: dict[str, str], seconds_ago: float, login: bool
) -> None:
    user = await server.user()
    session = _signed_in(user, seconds_ago)
    step = await server.flow.start(await _request(server, login_hint="alice", **params), session)
    assert (step == ShowLogin(login_hint="alice")) is login, step
    if not login:
        assert step == ShowConsent(session)


async def test_the_consent_answer_with_a_session_older_than_the_request_demands_is_refused(
    server: ProtocolServer,
) -> None:
    """prompt=login / max_age cannot be skipped by posting the signed request straight to the consent form
    with the session the browser already had."""
    user = await server.user()
    for params in ({"prompt": "login"}, {"max_age": "0"}, {"max_age": "2"}):
        request = await _request(server, **params)
        old = _signed_in(user, 5)
        step = await server.flow.answer_consent(request, old, allowed=True)
        assert step == ShowLogin(LoginProblem.SIGN_IN_AGAIN), params
    assert not server.store.codes and not server.store.consents

    request = await _request(server, prompt="login")
    signed_in = await server.flow.sign_in(user.username, PASSWORD)
    assert isinstance(signed_in, LoginSession) and signed_in.since >= request.started_at
    assert await server.flow.after_sign_in(request, signed_in) == ShowConsent(signed_in)
    step = await server.flow.answer_consent(request, signed_in, allowed=True)
    assert isinstance(step, ReturnToClient) and "code" in query_of(step.location)
    (stored,) = [entry.code for entry in server.store.codes.values()]
    assert stored.auth_time == signed_in.auth_time  # the sign-in that satisfied the request


def server_now() -> datetime:
    return datetime.now(UTC)
