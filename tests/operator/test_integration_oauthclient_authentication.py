"""OAuthClient spec.authentication end to end: the real operator against the emulated API, registering with a
real `authserver serve` on PostgreSQL; tokens are requested with what the operator's Secret says, signing
client assertions (RFC 7523 §2.2) with PyJWT."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from harness.operator import TEAM
from harness.polling import wait_for
from tests.operator.kubeapi import ApiException
from tests.operator.stack import Stack, clients_path, oauthclient, token

pytestmark = pytest.mark.postgres

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class Signer:
    """A client's private key and the public JWK the OAuthClient names."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.key = ec.generate_private_key(ec.SECP256R1())
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        self.jwk: dict[str, str] = {**public, "kid": kid, "use": "sig", "alg": "ES256"}

    async def token(self, credentials: dict[str, str]) -> httpx.Response:
        now = int(time.time())
        claims = {
            "iss": credentials["client_id"], "sub": credentials["client_id"],
            "aud": credentials["token_endpoint"], "iat": now, "exp": now + 60, "jti": str(uuid.uuid4()),
        }  # fmt: skip
        assertion = jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": self.kid})
        async with httpx.AsyncClient() as http:
            return await http.post(
                credentials["token_endpoint"],
                data={
                    "grant_type": "client_credentials",
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": assertion,
                },
            )


def _path(name: str) -> str:
    return f"{clients_path()}/{name}"


async def _spec_applied(stack: Stack, name: str, generation: int) -> None:
    await wait_for(
        lambda: stack.is_ready(name) and stack.client_status(name).get("observedGeneration") == generation,
        timeout=30,
        message=f"{name} generation {generation} not Ready",
    )


async def test_client_secret_to_private_key_jwt_and_back_with_real_tokens(stack: Stack) -> None:
    await stack.kube.post(clients_path(), oauthclient("orders"))
    await _spec_applied(stack, "orders", 1)
    with_secret = stack.secret("orders-oauth")
    assert (await token(with_secret)).status_code == 200

    signer = Signer("k1")
    auth: dict[str, Any] = {
        "method": "PrivateKeyJWT",
        "jwks": {"keys": [signer.jwk]},
        "signingAlgorithm": "ES256",
    }
    await stack.kube.merge(_path("orders"), {"spec": {"authentication": auth}})
    await _spec_applied(stack, "orders", 2)
    connection = stack.secret("orders-oauth")
    assert "client_secret" not in connection and "OAUTH_CLIENT_SECRET" not in connection
    assert connection["token_endpoint_auth_method"] == "private_key_jwt"
    assert (await token(with_secret)).status_code == 401, "the old secret must be revoked by the switch"
    answer = await signer.token(connection)
    assert answer.status_code == 200, answer.text
    registered = (await stack.admin("GET", "/admin/clients/team-a.orders")).json()
    assert registered["token_endpoint_auth_method"] == "private_key_jwt"
    assert registered["token_endpoint_auth_signing_alg"] == "ES256"

    await stack.kube.merge(_path("orders"), {"spec": {"authentication": None}})
    await _spec_applied(stack, "orders", 3)
    renewed = stack.secret("orders-oauth")
    assert renewed["client_secret"] != with_secret["client_secret"]
    assert (await token(renewed)).status_code == 200
    assert (await token(with_secret)).status_code == 401
    assert (await signer.token(renewed)).status_code == 401, "keys of a client back on ClientSecret"
    events = stack.emulator.events(TEAM, name="orders")
    assert any(event.get("reason") == "SecretRemoved" for event in events)


async def test_keys_from_a_config_map_follow_its_changes(stack: Stack) -> None:
    # A secret client beside it, so that the teardown's secrets scan has a client secret to look for too.
    await stack.kube.post(clients_path(), oauthclient("orders"))
    await _spec_applied(stack, "orders", 1)
    reference = {"name": "billing-keys", "key": "jwks.json"}
    auth = {"method": "PrivateKeyJWT", "jwksConfigMapRef": reference}
    await stack.kube.post(clients_path(), oauthclient("billing", authentication=auth))
    missing = await wait_for(lambda: stack.ready("billing") or None, timeout=20)
    assert (missing["status"], missing["reason"]) == ("False", "JwksConfigMapNotFound")

    first, second = Signer("k1"), Signer("k2")
    config_map: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "billing-keys", "namespace": TEAM},
        "data": {"jwks.json": json.dumps({"keys": [first.jwk]})},
    }
    await stack.kube.post(f"/api/v1/namespaces/{TEAM}/configmaps", config_map)
    await wait_for(lambda: stack.is_ready("billing"), timeout=30, message="not Ready once the keys exist")
    assert stack.emulator.active_watches("v1/configmaps") > 0, "the operator does not watch ConfigMaps"
    connection = stack.secret("billing-oauth")
    assert (await first.token(connection)).status_code == 200

    # A new key set: the registration follows (the old key stops working, the new one works).
    await stack.kube.merge(
        f"/api/v1/namespaces/{TEAM}/configmaps/billing-keys",
        {"data": {"jwks.json": json.dumps({"keys": [second.jwk]})}},
    )

    async def second_key_works() -> bool:
        return (await second.token(connection)).status_code == 200

    await wait_for(second_key_works, timeout=30, interval=0.5, message="the new key never reached the server")
    assert (await first.token(connection)).status_code == 401

    # A key set that is no public JWK Set: Ready=False, and the server keeps the last good keys.
    private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(second.key))
    stack.seen_secrets.add(private["d"])  # the teardown's scan: never in a status, an Event or a log
    await stack.kube.merge(
        f"/api/v1/namespaces/{TEAM}/configmaps/billing-keys",
        {"data": {"jwks.json": json.dumps({"keys": [private]})}},
    )
    refused = await wait_for(lambda: (c := stack.ready("billing")).get("status") == "False" and c, timeout=30)
    assert refused["reason"] == "JwksInvalid" and private["d"] not in json.dumps(refused)
    assert (await second.token(connection)).status_code == 200


async def test_bad_authentication_specs_are_refused(stack: Stack) -> None:
    await stack.kube.post(clients_path(), oauthclient("orders"))  # a client secret for the secrets scan
    await _spec_applied(stack, "orders", 1)
    http_uri = {"method": "PrivateKeyJWT", "jwksUri": "http://keys.example.com/jwks.json"}
    with pytest.raises(ApiException) as rejected:
        await stack.kube.post(clients_path(), oauthclient("plain", authentication=http_uri))
    assert rejected.value.status == 422 and "jwksUri" in rejected.value.body
    assert stack.client("plain") is None

    untrusted = {"method": "ServiceAccount", "serviceAccountName": "orders-api", "issuer": "elsewhere"}
    await stack.kube.post(clients_path(), oauthclient("stranger", authentication=untrusted))
    refused = await wait_for(lambda: stack.ready("stranger") or None, timeout=20)
    assert (refused["status"], refused["reason"]) == ("False", "IssuerNotTrusted")
    assert (await stack.admin("GET", "/admin/clients/team-a.stranger")).status_code == 404
    assert stack.emulator.get("v1/secrets", TEAM, "stranger-oauth") is None
