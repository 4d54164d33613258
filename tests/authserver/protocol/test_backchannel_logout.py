"""OpenID Connect Back-Channel Logout 1.0, the OP's decisions: the logout token (§2.4), verified as an RP
would (§2.6) against the published keys; how an RP's answer is judged (§2.8); the retry policy's backoff and
bounds, with the time and the randomness given (no sleeps)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import jwt
import pytest

from authserver.crypto.keyset import KeySet
from authserver.crypto.keyset_document import new_document
from authserver.protocol.backchannel_logout import (
    BACKCHANNEL_LOGOUT_EVENT,
    LOGOUT_TOKEN_LIFETIME_SECONDS,
    RetryPolicy,
    Verdict,
    judge,
    logout_token,
)
from authserver.protocol.models import Client, ClientType
from authserver.protocol.tokens import TokenMinter, TokenPolicy

ISSUER = "https://auth.example.com"
KEYS = KeySet.from_document(new_document("ES256", ["RS256", "EdDSA"]))


def _minter(keys: KeySet = KEYS) -> TokenMinter:
    policy = TokenPolicy(
        issuer=ISSUER,
        access_token_ttl=timedelta(minutes=5),
        refresh_token_ttl=timedelta(days=1),
        authorization_code_ttl=timedelta(minutes=1),
        default_audience="https://api.example.com",
    )
    return TokenMinter(policy, lambda: keys)


def _client(alg: str | None = None) -> Client:
    return Client(
        "portal",
        "Portal",
        ClientType.CONFIDENTIAL,
        ("authorization_code",),
        ("openid",),
        redirect_uris=("https://portal.example.com/cb",),
        id_token_signed_response_alg=alg,
        backchannel_logout_uri="https://portal.example.com/bc",
    )


def _verified_as_an_rp_would(token: str, client_id: str, alg: str) -> dict[str, Any]:
    """§2.6: the signature with the OP's published key and the client's ID-token algorithm, iss, aud, iat,
    exp; then typ, events, sid/sub and no nonce."""
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "logout+jwt"  # §2.4 (explicit typing, RFC 8725 §3.11)
    published = {key["kid"]: key for key in json.loads(KEYS.jwks_json)["keys"]}
    key = jwt.PyJWK(published[header["kid"]])
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=[alg],
        audience=client_id,
        issuer=ISSUER,
        options={"require": ["iss", "aud", "iat", "exp", "jti"]},
    )
    assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
    assert "nonce" not in claims  # §2.4: MUST NOT
    return claims


@pytest.mark.parametrize(("registered", "alg"), [(None, "ES256"), ("RS256", "RS256"), ("EdDSA", "EdDSA")])
def test_a_logout_token_is_signed_with_the_clients_id_token_algorithm(
    registered: str | None, alg: str
) -> None:
    token = logout_token(_minter(), _client(registered), subject="user-1", session_id="sid-1")
    assert jwt.get_unverified_header(token)["alg"] == alg
    claims = _verified_as_an_rp_would(token, "portal", alg)
    assert (claims["sub"], claims["sid"], claims["aud"], claims["iss"]) == (
        "user-1",
        "sid-1",
        "portal",
        ISSUER,
    )


def test_a_logout_token_lives_two_minutes_and_each_has_its_own_jti() -> None:
    first = logout_token(_minter(), _client(), subject="u", session_id="s", now=1_800_000_000)
    second = logout_token(_minter(), _client(), subject="u", session_id="s", now=1_800_000_000)
    claims = [jwt.decode(token, options={"verify_signature": False}) for token in (first, second)]
    assert claims[0]["iat"] == 1_800_000_000
    assert claims[0]["exp"] - claims[0]["iat"] == LOGOUT_TOKEN_LIFETIME_SECONDS == 120
    assert claims[0]["jti"] != claims[1]["jti"]  # §2.4: unique, for the RP's replay check


def test_a_logout_token_is_refused_where_an_id_token_is_expected() -> None:
    """Its typ and its lack of nonce and auth_time keep it from passing as an ID token; and an RP checking
    its typ refuses an ID token sent as a logout token."""
    token = logout_token(_minter(), _client(), subject="u", session_id="s")
    with pytest.raises(jwt.InvalidTokenError):
        KEYS.verify(token, typ="JWT", issuer=ISSUER, audience="portal")
    assert KEYS.verify(token, typ="logout+jwt", issuer=ISSUER, audience="portal")["sid"] == "s"


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.DELIVERED),
        (204, Verdict.DELIVERED),  # §2.8: some frameworks turn an empty 200 into 204
        (400, Verdict.GIVE_UP),  # §2.8: the RP refused the token; it would refuse it again
        (401, Verdict.GIVE_UP),
        (404, Verdict.GIVE_UP),
        (302, Verdict.GIVE_UP),  # never followed (§2.5): a misregistered URI
        (201, Verdict.GIVE_UP),
        (408, Verdict.RETRY),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
        (None, Verdict.RETRY),  # refused, reset, timed out
    ],
)
def test_an_rps_answer_is_judged(status: int | None, verdict: Verdict) -> None:
    assert judge(status) is verdict


def test_retries_back_off_exponentially_within_the_jitter() -> None:
    policy = RetryPolicy(max_attempts=6, first_delay=1.0, max_delay=30.0, deadline=1000.0)
    low = [policy.delay_before(attempt, 0.0, 0.0) for attempt in range(2, 7)]
    high = [policy.delay_before(attempt, 0.0, 0.999999) for attempt in range(2, 7)]
    assert low == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert high == pytest.approx([1.5, 3.0, 6.0, 12.0, 24.0], rel=1e-5)
    assert policy.delay_before(4, 0.0, 0.5) == 4.0  # the middle of the jitter: the plain exponential


def test_retries_are_bounded_in_attempts_in_total_time_and_per_wait() -> None:
    policy = RetryPolicy(max_attempts=4, first_delay=1.0, max_delay=3.0, deadline=20.0)
    assert policy.delay_before(4, 0.0, 0.5) == 3.0  # 4 s capped at max_delay
    assert policy.delay_before(5, 0.0, 0.5) is None  # a fifth attempt: more than max_attempts
    assert policy.delay_before(3, 17.5, 0.5) == 2.0  # 19.5 s: still before the deadline
    assert policy.delay_before(3, 18.5, 0.5) is None  # it would start after the deadline


def test_the_default_policy_gives_up_within_two_minutes_after_at_most_six_attempts() -> None:
    policy = RetryPolicy()
    elapsed, attempt = 0.0, 1
    while (delay := policy.delay_before(attempt + 1, elapsed, 0.999999)) is not None:
        attempt += 1
        elapsed += delay + 5.0  # each attempt may also take its whole request timeout
    assert attempt == 6 and elapsed <= policy.deadline + 5.0
