"""private_key_jwt client authentication (RFC 7523 §2.2 and §3, OIDC Core §9): every rule of the assertion,
at the token, introspection and revocation endpoints, over the in-memory store (no HTTP, no database)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from authlib.oauth2.rfc7523.assertion import private_key_jwt_sign
from joserfc.jwk import RSAKey

from authserver.protocol.client_assertion import (
    AssertionPolicy,
    ClientAssertionVerifier,
    ClientKeysUnavailable,
)
from authserver.protocol.errors import InvalidClient
from authserver.protocol.models import Client, ClientType, TokenEndpointAuthMethod
from tests.support.client_assertions import (
    JWT_BEARER,
    PrivateKey,
    ec_key,
    ed_key,
    hmac_with,
    private_pem,
    public_jwk,
    public_pem,
    rsa_key,
    sign,
    unsigned,
)
from tests.support.oauth import basic
from tests.support.protocol_server import API, ISSUER, TOKEN_ENDPOINT, ProtocolServer, RegisteredForTest, form


def _client(
    server: ProtocolServer, keys: list[dict[str, Any]] | None = None, **fields: Any
) -> RegisteredForTest:
    """A private_key_jwt client with ``keys`` inline (None: a jwks_uri, served by ``server.served_keys``)."""
    values: dict[str, Any] = {
        "client_id": f"pk-{uuid.uuid4().hex[:8]}",
        "name": "Signing service",
        "client_type": ClientType.CONFIDENTIAL,
        "grant_types": ("client_credentials",),
        "scopes": ("orders.read",),
        "audiences": (API,),
        "token_endpoint_auth_method": TokenEndpointAuthMethod.PRIVATE_KEY_JWT,
        "jwks": json.dumps({"keys": keys}) if keys is not None else None,
        "jwks_uri": None if keys is not None else "https://svc.example.com/jwks.json",
        **fields,
    }
    return RegisteredForTest(server.store.add_client(Client(**values)))


def _params(assertion: str, **extra: str) -> dict[str, list[str]]:
    return form(
        grant_type="client_credentials", client_assertion_type=JWT_BEARER, client_assertion=assertion, **extra
    )


async def _token(
    server: ProtocolServer, assertion: str, authorization: str | None = None, **extra: str
) -> dict[str, Any]:
    return (await server.token_endpoint.handle(_params(assertion, **extra), authorization)).body


async def _refusal(
    server: ProtocolServer, assertion: str, authorization: str | None = None, **extra: str
) -> str:
    with pytest.raises(InvalidClient) as refused:
        await _token(server, assertion, authorization, **extra)
    assert refused.value.status_code == 401 and refused.value.error == "invalid_client"
    return refused.value.description


@pytest.mark.parametrize(
    ("algorithm", "make_key"),
    [("RS256", rsa_key), ("PS256", rsa_key), ("ES256", ec_key), ("EdDSA", ed_key)],
)
async def test_a_client_signing_with_its_registered_key_gets_a_token(
    server: ProtocolServer, algorithm: str, make_key: Any
) -> None:
    private: PrivateKey = make_key()
    client = _client(server, [public_jwk(private, "k1")])
    body = await _token(server, sign(private, algorithm, client.client_id, TOKEN_ENDPOINT, kid="k1"))
    assert server.keys.verify(body["access_token"], audience=API)["client_id"] == client.client_id
    # No kid: the one key of the algorithm's type; the issuer as audience; a client_id that agrees.
    body = await _token(
        server, sign(private, algorithm, client.client_id, ISSUER), client_id=client.client_id
    )
    assert body["token_type"] == "Bearer"


async def test_an_assertion_signed_by_authlib_is_accepted(server: ProtocolServer) -> None:
    """Authlib's own private_key_jwt signer: an hour-long assertion, aud the token endpoint, a random jti."""
    private = rsa_key()
    client = _client(server, [public_jwk(private, "authlib")])
    key = RSAKey.import_key(private_pem(private), parameters={"kid": "authlib"})
    assertion = private_key_jwt_sign(
        key, client.client_id, TOKEN_ENDPOINT, alg="RS256", header={"kid": "authlib"}
    )
    body = await _token(server, assertion if isinstance(assertion, str) else assertion.decode())
    assert body["token_type"] == "Bearer"


async def test_a_jti_is_accepted_once(server: ProtocolServer) -> None:
    """RFC 7523 §3 item 7: a replayed assertion is refused, even at another endpoint."""
    private = ec_key()
    client = _client(server, [public_jwk(private)])
    assertion = sign(private, "ES256", client.client_id, TOKEN_ENDPOINT)
    await _token(server, assertion)
    assert "already used" in await _refusal(server, assertion)
    with pytest.raises(InvalidClient, match="already used"):
        await server.revocation.handle(
            form(token="x", client_assertion_type=JWT_BEARER, client_assertion=assertion), None
        )


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"exp": int(time.time()) - 60, "iat": int(time.time()) - 120}, "has expired"),
        ({"nbf": int(time.time()) + 120}, "not valid yet"),
        ({"iat": int(time.time()) + 120, "exp": int(time.time()) + 180}, "not valid yet"),
        ({"exp": int(time.time()) + 2 * 3600}, "more than 3600 s away"),
        ({"aud": "https://elsewhere.example.com/token"}, "aud must contain"),
        ({"aud": [API, "https://elsewhere.example.com"]}, "aud must contain"),
        ({"iss": "someone-else"}, "iss must be the client_id"),
        ({"jti": None}, "lacks the jti claim"),
        ({"exp": None}, "lacks the exp claim"),
        ({"jti": "x" * 300}, "jti must be"),
    ],
)
async def test_assertions_breaking_a_rule_are_refused(
    server: ProtocolServer, claims: dict[str, Any], expected: str
) -> None:
    private = ec_key()
    client = _client(server, [public_jwk(private)])
    assert expected in await _refusal(
        server, sign(private, "ES256", client.client_id, TOKEN_ENDPOINT, **claims)
    )


async def test_a_small_clock_skew_is_allowed_and_an_audience_list_may_name_the_server(
    server: ProtocolServer,
) -> None:
    private = ec_key()
    client = _client(server, [public_jwk(private)])
    now = int(time.time())
    skewed = sign(private, "ES256", client.client_id, [API, TOKEN_ENDPOINT], iat=now + 3, nbf=now + 3)
    assert (await _token(server, skewed))["token_type"] == "Bearer"
    # Authlib's hour, plus the clock leeway, is the longest accepted.
    assert await _token(server, sign(private, "ES256", client.client_id, ISSUER, exp=now + 3600 + 3))


async def test_sub_naming_another_client_is_checked_with_that_clients_keys(server: ProtocolServer) -> None:
    mine, theirs = ec_key(), ec_key()
    me = _client(server, [public_jwk(mine)])
    other = _client(server, [public_jwk(theirs)])
    forged = sign(mine, "ES256", other.client_id, TOKEN_ENDPOINT)
    assert "signature does not verify" in await _refusal(server, forged)
    # Signed by the named client, but iss names another: iss must be the client too.
    mixed = sign(theirs, "ES256", other.client_id, TOKEN_ENDPOINT, iss=me.client_id)
    assert "iss must be the client_id" in await _refusal(server, mixed)
    # A client_id parameter must name the same client as the assertion.
    honest = sign(mine, "ES256", me.client_id, TOKEN_ENDPOINT)
    assert "does not match" in await _refusal(server, honest, client_id=other.client_id)


async def test_alg_none_and_hmac_keyed_with_the_public_key_are_refused(server: ProtocolServer) -> None:
    """RFC 8725 §3.1-3.2: the algorithm comes from the allow-list and the key type, never from the token."""
    private = rsa_key()
    client = _client(server, [public_jwk(private, "k1")])
    assert "must be signed with" in await _refusal(server, unsigned(client.client_id, TOKEN_ENDPOINT, "k1"))
    confused = hmac_with(public_pem(private), client.client_id, TOKEN_ENDPOINT, "k1")
    assert "must be signed with" in await _refusal(server, confused)
    json_key = json.dumps(public_jwk(private, "k1")).encode()
    assert "must be signed with" in await _refusal(
        server, hmac_with(json_key, client.client_id, TOKEN_ENDPOINT)
    )


async def test_the_key_must_fit_the_algorithm_and_the_pinned_algorithm(server: ProtocolServer) -> None:
    rsa_private = rsa_key()
    client = _client(server, [public_jwk(rsa_private, "r")])
    # An ES256 header naming an RSA key's kid: no key of that type has it.
    assert "has kid 'r' for ES256" in await _refusal(
        server, sign(ec_key(), "ES256", client.client_id, ISSUER, kid="r")
    )
    pinned = _client(server, [public_jwk(rsa_private, "r")], token_endpoint_auth_signing_alg="PS256")
    assert "must be signed with PS256" in await _refusal(
        server, sign(rsa_private, "RS256", pinned.client_id, ISSUER, kid="r")
    )
    assert await _token(server, sign(rsa_private, "PS256", pinned.client_id, ISSUER, kid="r"))
    two = _client(server, [public_jwk(ec_key(), "a"), public_jwk(ec_key(), "b")])
    assert "send kid" in await _refusal(server, sign(ec_key(), "ES256", two.client_id, ISSUER))


async def test_an_unknown_kid_fetches_the_jwks_uri_again_and_picks_up_a_new_key(
    server: ProtocolServer,
) -> None:
    old, new = ec_key(), ec_key()
    client = _client(server)
    server.served_keys[client.client_id] = [public_jwk(old, "old")]
    assert await _token(server, sign(old, "ES256", client.client_id, TOKEN_ENDPOINT, kid="old"))
    assert server.key_fetches == [False]
    # The client rotated its keys: the unknown kid makes the server look again (refresh asked).
    server.served_keys[client.client_id] = [public_jwk(old, "old"), public_jwk(new, "new")]
    assert await _token(server, sign(new, "ES256", client.client_id, TOKEN_ENDPOINT, kid="new"))
    assert server.key_fetches == [False, True]
    unknown = sign(new, "ES256", client.client_id, TOKEN_ENDPOINT, kid="nobody")
    assert "no registered key of this client has kid 'nobody'" in await _refusal(server, unknown)


async def test_keys_that_cannot_be_had_are_invalid_client_with_the_reason(server: ProtocolServer) -> None:
    private = ec_key()
    client = _client(server)
    server.served_keys[client.client_id] = ClientKeysUnavailable("its jwks_uri did not answer within 3 s")
    description = await _refusal(server, sign(private, "ES256", client.client_id, TOKEN_ENDPOINT))
    assert description == "the client's keys are unavailable: its jwks_uri did not answer within 3 s"


async def test_an_oversized_or_malformed_assertion_is_refused_before_parsing(server: ProtocolServer) -> None:
    private = ec_key()
    client = _client(server, [public_jwk(private)])
    big = sign(private, "ES256", client.client_id, TOKEN_ENDPOINT, padding="x" * 9000)
    assert "longer than 8192 bytes" in await _refusal(server, big)
    assert "not a well-formed JWT" in await _refusal(server, "not-a-jwt")
    missing_sub = sign(private, "ES256", client.client_id, TOKEN_ENDPOINT, sub=None)
    assert "sub claim" in await _refusal(server, missing_sub)


async def test_one_method_per_request(server: ProtocolServer) -> None:
    """RFC 6749 §2.3: an assertion with a secret, a secret for a private_key_jwt client, an assertion for a
    secret client, or a wrong assertion type: each is invalid_client."""
    private = ec_key()
    client = _client(server, [public_jwk(private)])
    secret_client = server.confidential_client()
    assertion = sign(private, "ES256", client.client_id, TOKEN_ENDPOINT)
    assert "not a client_assertion and a secret" in await _refusal(
        server, assertion, basic(client.client_id, "whatever")["Authorization"]
    )
    assert "not a client_assertion and a secret" in await _refusal(
        server, assertion, client_secret="whatever"
    )
    with pytest.raises(InvalidClient, match="registered for private_key_jwt"):
        await server.token_endpoint.handle(
            form(grant_type="client_credentials"), basic(client.client_id, "guess")["Authorization"]
        )
    with pytest.raises(InvalidClient, match="registered for private_key_jwt"):
        await server.token_endpoint.handle(
            form(grant_type="client_credentials", client_id=client.client_id), None
        )
    theirs = sign(private, "ES256", secret_client.client_id, TOKEN_ENDPOINT)
    assert "not registered for private_key_jwt" in await _refusal(server, theirs)
    with pytest.raises(InvalidClient, match="client_assertion_type must be"):
        await server.token_endpoint.handle(
            form(grant_type="client_credentials", client_assertion_type="jwt", client_assertion=assertion),
            None,
        )


async def test_introspection_and_revocation_authenticate_with_an_assertion(server: ProtocolServer) -> None:
    private = ec_key()
    client = _client(server, [public_jwk(private)])
    token = (await _token(server, sign(private, "ES256", client.client_id, TOKEN_ENDPOINT)))["access_token"]

    def with_assertion(**params: str) -> dict[str, list[str]]:
        assertion = sign(private, "ES256", client.client_id, TOKEN_ENDPOINT)
        return form(client_assertion_type=JWT_BEARER, client_assertion=assertion, **params)

    assert (await server.introspection.handle(with_assertion(token=token), None))["active"] is True
    await server.revocation.handle(with_assertion(token=token), None)
    assert (await server.introspection.handle(with_assertion(token=token), None)) == {"active": False}


async def test_a_jti_is_kept_as_long_as_its_assertion_could_be_accepted(server: ProtocolServer) -> None:
    private = ec_key()
    client = _client(server, [public_jwk(private)])
    exp = int(time.time()) + 120
    await _token(server, sign(private, "ES256", client.client_id, TOKEN_ENDPOINT, exp=exp))
    (expires_at,) = server.store.used_client_assertions.values()
    assert expires_at.timestamp() == exp + 5  # the clock leeway past exp


async def test_the_maximum_lifetime_is_configurable(server: ProtocolServer) -> None:
    private = ec_key()
    client = _client(server, [public_jwk(private)])
    short = ClientAssertionVerifier(
        AssertionPolicy({TOKEN_ENDPOINT}, max_lifetime=timedelta(minutes=5)),
        server.assertions.keys,
        server.store.spend_client_assertion,
    )
    stored = await server.store.get_client(client.client_id)
    assert stored is not None
    with pytest.raises(InvalidClient, match="more than 300 s away"):
        await short.verify(
            stored, sign(private, "ES256", client.client_id, TOKEN_ENDPOINT, exp=int(time.time()) + 600)
        )
    await short.verify(
        stored, sign(private, "ES256", client.client_id, TOKEN_ENDPOINT, exp=int(time.time()) + 290)
    )
