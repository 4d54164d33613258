"""The claims request parameter (OIDC Core §5.5) as the authorization endpoint reads it, and what the tokens
then carry, over the in-memory store."""

from __future__ import annotations

import json

import pytest

from authserver.protocol.authorization import RedirectError
from authserver.protocol.claims import parse_claims_request, requested_claims, userinfo_claim_names
from authserver.protocol.errors import InvalidRequest
from tests.support.oauth import pkce_pair
from tests.support.protocol_server import ProtocolServer


def test_a_claims_request_is_normalised_and_other_members_are_ignored() -> None:
    text = json.dumps(
        {"userinfo": {"name": {"essential": True}, "email": None}, "id_token": {}, "vp_token": {"x": 1}}
    )
    normalised = parse_claims_request(text)
    assert normalised == '{"userinfo":{"email":null,"name":{"essential":true}}}'
    assert requested_claims(normalised, "userinfo") == ("email", "name")
    assert requested_claims(normalised, "id_token") == ()
    assert parse_claims_request("{}") is None and parse_claims_request(None) is None
    # Only the names userinfo could return travel in the access token.
    asked = parse_claims_request('{"userinfo": {"shoe_size": null, "locale": null}}')
    assert userinfo_claim_names(asked) == "locale"


@pytest.mark.parametrize(
    "text",
    ["", "nope", "null", "[1]", '{"id_token": "name"}', '{"userinfo": {"name": [true]}}', "{" * 5000],
)
def test_malformed_claims_requests_are_invalid_requests(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_claims_request(text)


async def test_the_request_travels_to_the_code_and_the_access_token(server: ProtocolServer) -> None:
    client, user = server.web_client(), await server.user()
    claims = json.dumps({"userinfo": {"email": {"essential": True}}, "id_token": {"email": None}})
    code, verifier = await server.authorize(client, user, scope="openid", claims=claims)
    body = await server.redeem(client, code, verifier)
    # Each claim is asked for by name: email without email_verified (§5.5.1).
    assert await server.userinfo.handle(body["access_token"]) == {"sub": user.user_id, "email": user.email}
    id_token = server.keys.verify(body["id_token"], options={"verify_aud": False})
    assert id_token["email"] == user.email and "email_verified" not in id_token


async def test_a_malformed_request_goes_back_to_the_client(server: ProtocolServer) -> None:
    _, challenge = pkce_pair()
    with pytest.raises(RedirectError) as refused:
        await server.authorization_request(server.web_client(), challenge, claims='{"userinfo": 1}')
    assert "error=invalid_request" in refused.value.location
