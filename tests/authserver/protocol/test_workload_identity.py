"""Workload identity client authentication (RFC 7523 §2.2 with a trusted issuer's JWT) and the JWT bearer
grant (RFC 7523 §2.1): every rule of the token, over the in-memory store and an emulated cluster issuer's
keys (no HTTP, no database)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import jwt
import pytest

from authserver.protocol.client_assertion import ClientKeysUnavailable
from authserver.protocol.errors import InvalidClient, InvalidGrant, InvalidScope, UnauthorizedClient
from authserver.protocol.grants.client_credentials import ClientCredentialsGrant
from authserver.protocol.grants.jwt_bearer import JwtBearerGrant
from authserver.protocol.introspection_endpoint import IntrospectionEndpoint
from authserver.protocol.models import Client, ClientType, GrantType, TokenEndpointAuthMethod
from authserver.protocol.revocation_endpoint import RevocationEndpoint
from authserver.protocol.token_endpoint import TokenEndpoint
from authserver.protocol.trusted_issuers import TrustedIssuer, TrustedTokenVerifier
from authserver.protocol.usage import UsageCounter
from authserver.protocol.workload_identity import WorkloadAuthenticator
from tests.support.client_assertions import JWT_BEARER, public_pem
from tests.support.cluster_issuer import ClusterIssuer
from tests.support.protocol_server import API, ISSUER, ProtocolServer, form

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class Wired:
    """ProtocolServer's store and minter with one trusted issuer (a cluster) wired as web/services does."""

    def __init__(self) -> None:
        self.server = ProtocolServer()
        self.cluster = ClusterIssuer(port=6443)
        self.cluster.rotate()
        self.trusted = TrustedIssuer("kubernetes", self.cluster.issuer, (ISSUER,))
        self.fetches: list[bool] = []  # each key fetch's refresh flag
        self.published: list[dict[str, Any]] | None = None  # what a (re)fetch sees; None: the cluster's now
        self._cached: list[dict[str, Any]] | None = None
        self.unavailable: ClientKeysUnavailable | None = None
        self.clock_offset = 0.0  # seconds the verifier's clock runs ahead of the real one
        verifier = TrustedTokenVerifier(
            [self.trusted], self._keys, clock=lambda: time.time() + self.clock_offset
        )
        self.verifier = verifier
        store = self.server.store
        self.workloads = WorkloadAuthenticator(verifier, store.get_client_by_workload)
        minter = self.server.minter
        self.token_endpoint = TokenEndpoint(
            [ClientCredentialsGrant(minter), JwtBearerGrant(minter, verifier)],
            store.get_client,
            self.server.assertions,
            workloads=self.workloads,
        )
        inspector = self.server.inspector
        self.introspection = IntrospectionEndpoint(inspector, store.get_client, None, self.workloads)
        self.revocation = RevocationEndpoint(inspector, store.get_client, None, self.workloads)

    async def _keys(self, issuer: TrustedIssuer, refresh: bool) -> Sequence[Mapping[str, Any]]:
        assert issuer == self.trusted
        if self._cached is not None and not refresh:
            return self._cached
        self.fetches.append(refresh)
        if self.unavailable is not None:
            raise self.unavailable
        self._cached = self.published if self.published is not None else self.cluster.jwks()["keys"]
        return self._cached

    def client(self, namespace: str = "shop", name: str = "orders", **fields: Any) -> Client:
        values: dict[str, Any] = {
            "client_id": f"wl-{uuid.uuid4().hex[:8]}",
            "name": "Orders workload",
            "client_type": ClientType.CONFIDENTIAL,
            "grant_types": ("client_credentials",),
            "scopes": ("orders.read", "openid"),
            "audiences": (API,),
            "token_endpoint_auth_method": TokenEndpointAuthMethod.WORKLOAD_IDENTITY,
            "workload_issuer": "kubernetes",
            "workload_subject": f"system:serviceaccount:{namespace}:{name}",
            **fields,
        }
        return self.server.store.add_client(Client(**values))

    def sa_token(self, namespace: str = "shop", name: str = "orders", **claims: Any) -> str:
        return self.cluster.token(namespace, name, ISSUER, **claims)

    async def token(self, assertion: str, **extra: str) -> dict[str, Any]:
        params = form(
            grant_type="client_credentials",
            client_assertion_type=JWT_BEARER,
            client_assertion=assertion,
            **extra,
        )
        return (await self.token_endpoint.handle(params, None)).body

    async def refusal(self, assertion: str, **extra: str) -> str:
        with pytest.raises(InvalidClient) as refused:
            await self.token(assertion, **extra)
        assert refused.value.status_code == 401 and refused.value.error == "invalid_client"
        return refused.value.description


@pytest.fixture
def wired() -> Wired:
    return Wired()


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


async def test_a_service_account_token_authenticates_its_client_without_a_client_id(wired: Wired) -> None:
    client = wired.client()
    body = await wired.token(wired.sa_token())
    claims = _claims(body["access_token"])
    assert claims["client_id"] == client.client_id and claims["sub"] == client.client_id
    assert claims["aud"] == API and body["scope"] == "orders.read"


async def test_a_client_id_sent_beside_the_token_must_name_that_workloads_client(wired: Wired) -> None:
    client = wired.client()
    other = wired.client(name="billing")
    token = wired.sa_token()
    body = await wired.token(token, client_id=client.client_id)
    assert _claims(body["access_token"])["client_id"] == client.client_id
    description = await wired.refusal(token, client_id=other.client_id)
    assert "is not the workload registered for this client" in description


async def test_the_same_projected_token_is_accepted_again_and_again(wired: Wired) -> None:
    """No jti single use: the kubelet hands a pod one token until it rotates it."""
    client = wired.client()
    token = wired.sa_token()
    for _ in range(5):
        body = await wired.token(token)
        assert _claims(body["access_token"])["client_id"] == client.client_id
    assert wired.fetches == [False]  # the issuer's keys were fetched once


async def test_introspection_and_revocation_authenticate_with_the_token(wired: Wired) -> None:
    wired.client()
    token = wired.sa_token()
    access = (await wired.token(token))["access_token"]
    credentials = {"client_assertion_type": JWT_BEARER, "client_assertion": token}
    answer = await wired.introspection.handle(form(token=access, **credentials), None)
    assert answer["active"] is True
    await wired.revocation.handle(form(token=access, **credentials), None)
    answer = await wired.introspection.handle(form(token=access, **credentials), None)
    assert answer == {"active": False}


async def test_a_token_under_a_new_key_fetches_the_keys_again_and_old_tokens_keep_working(
    wired: Wired,
) -> None:
    wired.client()
    old_kid = wired.cluster.signing_kid
    old = wired.sa_token()
    await wired.token(old)
    wired.cluster.rotate()
    new = wired.sa_token()
    await wired.token(new)
    assert wired.fetches == [False, True]
    await wired.token(old)  # its key is still published
    wired.cluster.retire(old_kid)
    wired._cached = None  # the cache expired: the next fetch sees the key gone
    description = await wired.refusal(old)
    assert f"no key of trusted issuer kubernetes has kid {old_kid!r}" in description


async def test_a_remembered_token_is_refused_once_it_expires(wired: Wired) -> None:
    wired.client()
    token = wired.sa_token()
    await wired.token(token)
    await wired.token(token)  # remembered: accepted without another key fetch
    assert wired.fetches == [False]
    lifetime = _claims(token)["exp"] - time.time()
    wired.clock_offset = lifetime + wired.verifier.leeway_seconds + 1
    assert "has expired" in await wired.refusal(token)


async def test_a_remembered_token_is_refused_when_its_issuer_keys_become_unavailable(wired: Wired) -> None:
    wired.client()
    token = wired.sa_token()
    await wired.token(token)
    wired.unavailable = ClientKeysUnavailable("the issuer's JWKS answered 503")
    wired._cached = None  # the key set's cache ran out; its refetch fails
    assert "keys of trusted issuer kubernetes are unavailable" in await wired.refusal(token)


async def test_remembered_tokens_are_bounded(wired: Wired) -> None:
    wired.client()
    for _ in range(3):
        await wired.token(wired.sa_token())
    assert len(wired.verifier._remembered) == 3
    small = TrustedTokenVerifier([wired.trusted], wired._keys, remember=2)
    for _ in range(3):
        await small.verify(wired.sa_token(), wired.trusted, "client_assertion", InvalidClient)
    assert len(small._remembered) == 2


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (lambda w: w.cluster.token("shop", "orders", "https://other.example.com"), "aud must contain"),
        (lambda w: w.sa_token(issued_at=int(time.time()) - 1200), "has expired"),
        (lambda w: w.sa_token(nbf=int(time.time()) + 300), "is not valid yet"),
        (lambda w: w.sa_token(iat=int(time.time()) + 300), "is not valid yet"),
        (lambda w: w.sa_token(exp=None), "lacks the exp claim"),
        (lambda w: w.sa_token(namespace="other-team"), "no client is registered for workload"),
        (lambda w: w.sa_token(name="billing"), "no client is registered for workload"),
        (lambda w: w.sa_token(padding="x" * 9000), "longer than 8192 bytes"),
    ],
    ids=[
        "wrong-aud",
        "expired",
        "nbf-future",
        "iat-future",
        "no-exp",
        "other-namespace",
        "other-sa",
        "oversized",
    ],
)
async def test_each_broken_rule_is_invalid_client_naming_it(wired: Wired, make: Any, rule: str) -> None:
    wired.client()
    assert rule in await wired.refusal(make(wired))


async def test_another_namespaces_service_account_is_refused_for_a_named_client(wired: Wired) -> None:
    client = wired.client()
    wired.client(namespace="other-team")  # it exists, but is not this client
    description = await wired.refusal(wired.sa_token(namespace="other-team"), client_id=client.client_id)
    assert "system:serviceaccount:other-team:orders" in description
    assert "is not the workload registered for this client" in description


async def test_an_unknown_kid_looks_once_more_then_is_refused(wired: Wired) -> None:
    wired.client()
    await wired.token(wired.sa_token())
    stranger = ClusterIssuer(port=6443)
    stranger.rotate()  # same iss, a key the cluster never published
    description = await wired.refusal(stranger.token("shop", "orders", ISSUER))
    assert "no key of trusted issuer kubernetes has kid" in description
    assert wired.fetches == [False, True]


async def test_a_signature_by_another_key_under_a_known_kid_is_refused(wired: Wired) -> None:
    wired.client()
    forger = ClusterIssuer(port=6443)
    forger.rotate()
    forged = jwt.encode(
        _claims(wired.sa_token()),
        forger.keys[0].private,
        algorithm="RS256",
        headers={"kid": wired.cluster.signing_kid},
    )
    assert "signature does not verify" in await wired.refusal(forged)


async def test_alg_none_and_hmac_with_the_public_key_are_refused(wired: Wired) -> None:
    wired.client()
    claims = _claims(wired.sa_token())
    pem = public_pem(wired.cluster.keys[0].private)
    kid = wired.cluster.signing_kid
    none = f"{_b64(json.dumps({'alg': 'none', 'kid': kid}).encode())}.{_b64(json.dumps(claims).encode())}."
    signing_input = (
        f"{_b64(json.dumps({'alg': 'HS256', 'kid': kid}).encode())}.{_b64(json.dumps(claims).encode())}"
    )
    forged = f"{signing_input}.{_b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"
    for token in (none, forged):
        assert "must be signed with RS256 or PS256 or ES256 or EdDSA" in await wired.refusal(token)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_an_untrusted_issuer_is_refused(wired: Wired) -> None:
    client = wired.client()
    elsewhere = ClusterIssuer(port=7443)
    elsewhere.rotate()
    token = elsewhere.token("shop", "orders", ISSUER)
    assert "iss is not a trusted issuer" in await wired.refusal(token)
    assert "iss is not a trusted issuer" in await wired.refusal(token, client_id=client.client_id)


async def test_a_secret_client_cannot_authenticate_with_a_service_account_token(wired: Wired) -> None:
    secret_client = wired.server.confidential_client()
    description = await wired.refusal(wired.sa_token(), client_id=secret_client.client_id)
    assert "not registered for workload_identity" in description


async def test_a_workload_client_cannot_use_a_secret(wired: Wired) -> None:
    client = wired.client()
    params = form(grant_type="client_credentials", client_id=client.client_id, client_secret="x" * 32)
    with pytest.raises(InvalidClient) as refused:
        await wired.token_endpoint.handle(params, None)
    assert "registered for workload_identity: send a client_assertion" in refused.value.description


async def test_unavailable_issuer_keys_are_invalid_client(wired: Wired) -> None:
    wired.client()
    wired.unavailable = ClientKeysUnavailable("its JWKS answered HTTP 401")
    description = await wired.refusal(wired.sa_token())
    assert "keys of trusted issuer kubernetes are unavailable: its JWKS answered HTTP 401" in description


# The JWT bearer grant (RFC 7523 §2.1)


def _caller(wired: Wired, **fields: Any) -> Any:
    values: dict[str, Any] = {
        "grant_types": (GrantType.JWT_BEARER.value,),
        "scopes": ("orders.read", "orders.write", "openid"),
        **fields,
    }
    return wired.server.confidential_client(**values)


async def _grant(wired: Wired, assertion: str, caller: Any = None, **extra: str) -> dict[str, Any]:
    caller = caller or _caller(wired)
    params = form(grant_type=JWT_BEARER_GRANT, assertion=assertion, **extra)
    return (await wired.token_endpoint.handle(params, caller.authorization)).body


async def test_the_jwt_bearer_grant_issues_a_token_about_the_assertions_subject(wired: Wired) -> None:
    caller = _caller(wired)
    body = await _grant(wired, wired.sa_token(), caller)
    claims = _claims(body["access_token"])
    assert claims["sub"] == "kubernetes:system:serviceaccount:shop:orders"
    assert claims["client_id"] == caller.client_id
    assert body["scope"] == "orders.read orders.write"  # the client's scopes, OIDC ones left out
    assert "refresh_token" not in body
    narrowed = await _grant(wired, wired.sa_token(), caller, scope="orders.read")
    assert narrowed["scope"] == "orders.read"
    with pytest.raises(InvalidScope):
        await _grant(wired, wired.sa_token(), caller, scope="orders.delete")


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (lambda w: w.cluster.token("shop", "orders", "https://other.example.com"), "aud must contain"),
        (lambda w: w.sa_token(issued_at=int(time.time()) - 1200), "assertion has expired"),
        (lambda w: w.sa_token(nbf=int(time.time()) + 300), "assertion is not valid yet"),
        (lambda w: w.sa_token(iss="https://elsewhere.example.com"), "assertion iss is not a trusted issuer"),
        (lambda w: "not-a-jwt", "assertion is not a well-formed JWT"),
    ],
    ids=["wrong-aud", "expired", "not-yet-valid", "untrusted", "garbage"],
)
async def test_a_broken_assertion_is_invalid_grant(wired: Wired, make: Any, rule: str) -> None:
    with pytest.raises(InvalidGrant) as refused:
        await _grant(wired, make(wired))
    assert refused.value.error == "invalid_grant" and rule in refused.value.description


async def test_the_grant_needs_registering(wired: Wired) -> None:
    caller = wired.server.confidential_client()  # client_credentials only
    with pytest.raises(UnauthorizedClient):
        await _grant(wired, wired.sa_token(), caller)


async def test_usage_counts_a_workloads_tokens_and_a_refusal_of_the_client_its_client_id_named(
    wired: Wired,
) -> None:
    usage = UsageCounter()
    endpoint = TokenEndpoint(
        [ClientCredentialsGrant(wired.server.minter)],
        wired.server.store.get_client,
        wired.server.assertions,
        usage,
        wired.workloads,
    )
    client, other = wired.client(), wired.client(name="billing")

    def params(**extra: str) -> dict[str, list[str]]:
        return form(
            grant_type="client_credentials",
            client_assertion_type=JWT_BEARER,
            client_assertion=wired.sa_token(),
            **extra,
        )

    await endpoint.handle(params(), None)  # found by the token's (issuer, sub)
    await endpoint.handle(params(client_id=client.client_id), None)
    with pytest.raises(InvalidClient, match="is not the workload registered for this client"):
        await endpoint.handle(params(client_id=other.client_id), None)
    with pytest.raises(InvalidClient):
        await endpoint.handle(params(client_id="nobody"), None)
    counts = {count.client_id: (count.tokens, count.errors, count.last_error) for count in usage.drain()}
    assert counts == {client.client_id: (2, 0, None), other.client_id: (0, 1, "invalid_client")}
