"""The relying party's rules of ``protocol.upstream_sign_in`` that no honest provider exercises: ID tokens
signed with ``none`` or with the client secret (HS256), by a key the header does not name, or expired;
claims mapped from unusual shapes; and the provider's JWK Set fetched again only when a kid is unknown and
at most every few seconds (``web.upstream_oidc``, against the scripted provider on loopback)."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from authserver.protocol.upstream_sign_in import (
    ClaimMapping,
    OidcUpstream,
    ProviderMetadata,
    UpstreamFailure,
    authorization_url,
    check_id_token,
    map_claims,
)
from authserver.web.upstream_oidc import RETRY_SECONDS, UpstreamOidcClient
from tests.support.upstream_provider import closed_port, scripted_provider

ISSUER = "https://login.corp.example"
UPSTREAM = OidcUpstream("corp", "Corp", ISSUER, "authyard", "client-secret-value-0123456789-ab")
METADATA = ProviderMetadata(
    issuer=ISSUER,
    authorization_endpoint=f"{ISSUER}/authorize?tenant=t1",
    token_endpoint=f"{ISSUER}/token",
    jwks_uri=f"{ISSUER}/jwks",
    id_token_algorithms=("ES256", "RS256", "HS256"),
)
KEY = ec.generate_private_key(ec.SECP256R1())
JWK = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(KEY.public_key())), "kid": "k1", "use": "sig"}


def id_token(key: Any = KEY, algorithm: str = "ES256", kid: str | None = "k1", **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": "authyard",
        "sub": "s-1",
        "iat": now,
        "exp": now + 3600,  # the parametrized tokens are made at collection, maybe minutes before their test
        "nonce": "n-1",
        **claims,
    }
    return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid} if kid else None)


def test_a_good_id_token_passes() -> None:
    assert check_id_token(id_token(), [JWK], METADATA, UPSTREAM, "n-1")["sub"] == "s-1"


@pytest.mark.parametrize(
    ("token", "detail"),
    [
        (jwt.encode({"iss": ISSUER, "sub": "s"}, None, algorithm="none"), "'none'"),
        # OIDC Core §10.1: HS256 would make the client secret the key; this server never accepts it.
        (id_token(key=UPSTREAM.client_secret, algorithm="HS256"), "'HS256'"),
        (id_token(kid="another-kid"), "no key of the provider's JWK Set fits"),
        (id_token(key=ec.generate_private_key(ec.SECP256R1())), "Signature verification failed"),
        (id_token(exp=int(time.time()) - 120), "has expired"),
        (id_token(iat=None), "iat"),
        (id_token(azp="someone-else"), "another authorized party"),
    ],
)
def test_id_tokens_the_relying_party_must_refuse(token: str, detail: str) -> None:
    with pytest.raises(UpstreamFailure) as refused:
        check_id_token(token, [JWK], METADATA, UPSTREAM, "n-1")
    assert detail in refused.value.detail
    assert refused.value.message == "its answer could not be accepted"


def test_the_authorization_url_keeps_the_endpoints_query_and_always_sends_pkce_and_nonce() -> None:
    url = authorization_url(
        METADATA, UPSTREAM, "https://auth.example/upstream/corp/callback", "st", "nn", "v" * 43
    )
    assert url.startswith(f"{ISSUER}/authorize?tenant=t1&response_type=code&client_id=authyard&")
    assert "state=st" in url and "nonce=nn" in url and "code_challenge_method=S256" in url
    assert "v" * 43 not in url  # the verifier itself never leaves the server


def test_claims_are_mapped_from_the_configured_names_and_odd_shapes_are_dropped() -> None:
    upstream = OidcUpstream(
        "corp", "Corp", ISSUER, "authyard", "s", claims=ClaimMapping(username="upn", groups="roles")
    )
    identity = map_claims(
        upstream,
        {
            "sub": "s-1",
            "upn": "kim@corp",
            "email": "Kim@Corp.Example",
            "email_verified": "true",
            "roles": "ops",
        },
    )
    assert (identity.username, identity.groups) == ("kim@corp", ("ops",))
    assert identity.email_verified is False  # the string "true" is not the boolean OIDC Core §5.1 says
    spaced = map_claims(upstream, {"sub": "s-2", "upn": "has space", "roles": [1, "a", "a", " "]})
    assert (spaced.username, spaced.groups, spaced.email) == (None, ("a",), None)
    with pytest.raises(UpstreamFailure, match="subject"):
        map_claims(upstream, {"sub": 42})


async def test_the_key_set_is_fetched_again_for_an_unknown_kid_at_most_every_few_seconds() -> None:
    now = [1000.0]
    with scripted_provider("authyard", "secret-value") as provider:
        upstream = OidcUpstream("scripted", "S", provider.issuer, "authyard", "secret-value")
        client = UpstreamOidcClient(timeout=2, clock=lambda: now[0])
        try:
            metadata = await client.metadata(upstream)
            first = await client.keys(upstream, metadata)
            assert [key["kid"] for key in first] == [provider.kid]
            provider.kid = "rotated"  # the provider's signing-key rotation
            # Right after a fetch, even an unknown kid does not fetch again (a flood of forged kids costs
            # nothing upstream); once the interval passed, it does.
            assert await client.keys(upstream, metadata, refresh=True) == first
            now[0] += RETRY_SECONDS + 0.1
            assert await client.keys(upstream, metadata) == first  # no unknown kid: the cached set
            assert [key["kid"] for key in await client.keys(upstream, metadata, refresh=True)] == ["rotated"]
        finally:
            await client.close()


async def test_a_provider_that_is_down_is_asked_again_only_after_a_few_seconds() -> None:
    now = [1000.0]
    down = OidcUpstream("down", "Down", f"http://127.0.0.1:{closed_port()}", "authyard", "s")
    client = UpstreamOidcClient(timeout=2, clock=lambda: now[0])
    try:
        with pytest.raises(UpstreamFailure) as first:
            await client.metadata(down)
        assert first.value.message == "it cannot be reached"
        with pytest.raises(UpstreamFailure) as remembered:
            await client.metadata(down)
        assert remembered.value is first.value  # no new connection attempt
        now[0] += RETRY_SECONDS + 0.1
        with pytest.raises(UpstreamFailure) as again:
            await client.metadata(down)
        assert again.value is not first.value
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"issuer": "https://login.evil.example"}, "names another issuer"),  # OIDC Discovery §4.3
        ({"jwks_uri": None}, "no usable jwks_uri"),
        ({"token_endpoint": "ftp://login.corp.example/token"}, "no usable token_endpoint"),
    ],
)
def test_a_discovery_document_that_cannot_be_used_is_refused(change: dict[str, Any], detail: str) -> None:
    document = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/authorize",
        "token_endpoint": f"{ISSUER}/token",
        "jwks_uri": f"{ISSUER}/jwks",
        **change,
    }
    with pytest.raises(UpstreamFailure) as refused:
        ProviderMetadata.parse(document, UPSTREAM)
    assert detail in refused.value.detail


def test_client_secret_post_only_when_the_provider_offers_only_it() -> None:
    document = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/authorize",
        "token_endpoint": f"{ISSUER}/token",
        "jwks_uri": f"{ISSUER}/jwks",
    }
    assert ProviderMetadata.parse(document, UPSTREAM).client_authentication() == "client_secret_basic"
    methods = ["client_secret_post", "client_secret_basic"]
    both = {**document, "token_endpoint_auth_methods_supported": methods}
    assert ProviderMetadata.parse(both, UPSTREAM).client_authentication() == "client_secret_basic"
    post = {**document, "token_endpoint_auth_methods_supported": ["client_secret_post"]}
    assert ProviderMetadata.parse(post, UPSTREAM).client_authentication() == "client_secret_post"
