"""OpenID Connect's authorization-request parameters (OIDC Core §3.1.2.1, §6): what is accepted, what is
refused, and how each error reaches the client."""

from __future__ import annotations

import time

import jwt
import pytest

from authserver.crypto.keyset import KeySet
from authserver.crypto.keyset_document import new_document
from authserver.protocol.authorization import AuthorizationRequest, RedirectError
from tests.support.oauth import pkce_pair, query_of
from tests.support.protocol_server import ISSUER, REDIRECT, ProtocolServer


async def _request(server: ProtocolServer, **params: str) -> AuthorizationRequest:
    return await server.authorization_request(server.web_client(), pkce_pair()[1], **params)


async def _refused(server: ProtocolServer, **params: str) -> dict[str, str]:
    with pytest.raises(RedirectError) as refused:
        await _request(server, **params)
    assert refused.value.location.startswith(f"{REDIRECT}?")
    return query_of(refused.value.location)


@pytest.mark.parametrize(
    ("prompt", "kept"),
    [
        ("login", "login"),
        ("consent login", "consent login"),
        ("login  login", "login"),
        ("select_account", "select_account"),
        ("none", "none"),
    ],
)
async def test_prompt_is_a_space_separated_list(server: ProtocolServer, prompt: str, kept: str) -> None:
    assert (await _request(server, prompt=prompt)).prompt == kept


@pytest.mark.parametrize("prompt", ["none login", "consent none", "login create", "bogus"])
async def test_prompt_none_with_others_or_an_unknown_value_is_invalid_request(
    server: ProtocolServer, prompt: str
) -> None:
    query = await _refused(server, prompt=prompt)
    assert query["error"] == "invalid_request" and query["state"] == "st-1" and query["iss"] == ISSUER


@pytest.mark.parametrize("max_age", ["-1", "1.5", "soon", "12345678901"])
async def test_max_age_must_be_a_number_of_seconds(server: ProtocolServer, max_age: str) -> None:
    assert (await _refused(server, max_age=max_age))["error"] == "invalid_request"


async def test_max_age_bounds_the_sign_in_and_prompt_login_demands_one_after_the_request(
    server: ProtocolServer,
) -> None:
    before = time.time()
    plain = await _request(server)
    assert plain.signed_in_since is None and before <= plain.started_at <= time.time()
    aged = await _request(server, max_age="60")
    assert aged.max_age == 60 and aged.signed_in_since == aged.started_at - 60
    zero = await _request(server, max_age="0")
    assert zero.signed_in_since == zero.started_at  # like prompt=login
    fresh = await _request(server, prompt="login", max_age="60")
    assert fresh.signed_in_since == fresh.started_at  # the stricter bound


@pytest.mark.parametrize(
    ("parameter", "error"),
    [("request", "request_not_supported"), ("request_uri", "request_uri_not_supported")],
)
async def test_request_objects_are_refused_as_unsupported(
    server: ProtocolServer, parameter: str, error: str
) -> None:
    value = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0." if parameter == "request" else "https://rp.example/r"
    query = await _refused(server, **{parameter: value})
    assert query["error"] == error and query["state"] == "st-1" and query["iss"] == ISSUER


async def test_display_locales_acr_values_and_unknown_parameters_are_ignored(server: ProtocolServer) -> None:
    request = await _request(
        server,
        display="popup",
        ui_locales="se",
        claims_locales="se",
        acr_values="1 2",
        extension="whatever",
    )
    assert request.scope == "openid profile orders.read"


async def test_id_token_hint_names_the_subject_of_an_id_token_this_server_issued(
    server: ProtocolServer,
) -> None:
    expired = server.keys.sign(
        {"iss": ISSUER, "sub": "u-42", "aud": "someone", "exp": int(time.time()) - 3600}, "JWT"
    )
    assert (await _request(server, id_token_hint=expired)).id_token_hint_sub == "u-42"

    other_keys = KeySet.from_document(new_document("ES256"))
    forged = other_keys.sign({"iss": ISSUER, "sub": "u-42", "exp": int(time.time()) + 60}, "JWT")
    other_issuer = server.keys.sign({"iss": "https://elsewhere", "sub": "u-42"}, "JWT")
    access_token = server.keys.sign({"iss": ISSUER, "sub": "u-42"}, "at+jwt")
    unsigned = jwt.encode({"iss": ISSUER, "sub": "u-42"}, key=None, algorithm="none")
    for hint in (forged, other_issuer, access_token, unsigned, "not-a-jwt"):
        assert (await _refused(server, id_token_hint=hint))["error"] == "invalid_request", hint


async def test_login_hint_is_kept_bounded(server: ProtocolServer) -> None:
    assert (await _request(server, login_hint="alice")).login_hint == "alice"
    assert (await _request(server, login_hint="a" * 1000)).login_hint == "a" * 255
