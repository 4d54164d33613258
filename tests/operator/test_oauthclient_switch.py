"""Switching an OAuthClient between authentication methods: ClientSecret → ServiceAccount → PrivateKeyJWT →
ClientSecret, each step reconciled against the emulated API, with the credentials Secret read at each step.

The admin API here is an in-process stand-in (httpx.MockTransport) that records what the operator registers
and, like the real one, refuses a secret sent with a secretless method: the auth server on this branch does
not know ``workload_identity`` yet. The PrivateKeyJWT path against a real server is in
test_integration_oauthclient_authentication.py."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from authyard_operator.admin_client import AdminClient
from authyard_operator.kube.client import Kube
from authyard_operator.kube.config import ClusterConfig
from authyard_operator.reconcile.oauthclient import ClientReconciler
from authyard_operator.reconcile.outcome import Outcome
from cryptography.hazmat.primitives.asymmetric import ec

from harness.kube import AUTHSERVERS, OAUTHCLIENTS
from harness.kube_emulator import AuthyardEmulator
from harness.operator import PLATFORM, TEAM
from tests.operator.stack import SECRET_KEYS, decoded, oauthclient

ISSUER = "https://auth.example.com"
ADMIN_URL = "http://auth.platform.svc:8080"
SECRETLESS = ("private_key_jwt", "workload_identity")
CONNECTION_KEYS = {
    "client_id", "issuer", "token_endpoint", "jwks_uri", "scope", "audience", "token_endpoint_auth_method",
    "OAUTH_CLIENT_ID", "OAUTH_ISSUER", "OAUTH_TOKEN_URL", "OAUTH_JWKS_URI", "OAUTH_SCOPE", "OAUTH_AUDIENCE",
    "OAUTH_TOKEN_ENDPOINT_AUTH_METHOD",
}  # fmt: skip
AUDIENCE_KEYS = {"service_account_token_audience", "OAUTH_SERVICE_ACCOUNT_TOKEN_AUDIENCE"}


class AdminApi:
    """The admin API's client registrations as far as this test needs them: the last body PUT per client,
    and the secret the server would hold (none once a secretless method is registered)."""

    def __init__(self) -> None:
        self.puts: list[dict[str, Any]] = []
        self.secret: str | None = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == f"Bearer {'t' * 32}"
        if request.method != "PUT":
            return httpx.Response(405)
        body = json.loads(request.content)
        if body.get("token_endpoint_auth_method") in SECRETLESS:
            if "client_secret" in body or "secret_grace_period" in body:
                return httpx.Response(400, json={"error": "invalid_request", "error_description": "secret"})
            self.secret = None  # the server drops the former secret
        else:
            self.secret = body.get("client_secret", self.secret)
        self.puts.append(body)
        return httpx.Response(200, json={"client_id": request.url.path.rsplit("/", 1)[-1]})


@pytest.fixture
def admin_api() -> AdminApi:
    return AdminApi()


@pytest.fixture
async def reconciler(emulator: AuthyardEmulator, admin_api: AdminApi) -> AsyncIterator[ClientReconciler]:
    for namespace in (PLATFORM, TEAM):
        emulator.create_namespace(namespace)
    spec = {"issuer": ISSUER, "clientPolicy": {"allowedNamespaces": [TEAM]}}
    emulator.create(AUTHSERVERS, {"metadata": {"name": "auth", "namespace": PLATFORM}, "spec": spec})
    ready = {
        "type": "Ready",
        "status": "True",
        "reason": "Ready",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    emulator.set_status(AUTHSERVERS, PLATFORM, "auth", {"issuer": ISSUER, "conditions": [ready]})
    token = base64.b64encode(b"t" * 32).decode()
    emulator.create(
        "v1/secrets", {"metadata": {"name": "auth-admin", "namespace": PLATFORM}, "data": {"token": token}}
    )
    kube = Kube(ClusterConfig(server=str(emulator.url).rstrip("/"), token="emulator-token"))
    try:
        async with httpx.AsyncClient(transport=httpx.MockTransport(admin_api.handle)) as http:
            yield ClientReconciler(kube, AdminClient(http), ADMIN_URL)
    finally:
        await kube.close()


async def _reconcile(emulator: AuthyardEmulator, reconciler: ClientReconciler) -> Outcome:
    outcome = await reconciler.reconcile(emulator.get(OAUTHCLIENTS, TEAM, "orders") or {}, datetime.now(UTC))
    emulator.set_status(OAUTHCLIENTS, TEAM, "orders", outcome.status)
    return outcome


def _ready(outcome: Outcome) -> dict[str, Any]:
    return next(c for c in outcome.status["conditions"] if c["type"] == "Ready")


def _switch(emulator: AuthyardEmulator, authentication: dict[str, Any] | None) -> None:
    emulator.patch(OAUTHCLIENTS, TEAM, "orders", {"spec": {"authentication": None}})
    if authentication is not None:
        emulator.patch(OAUTHCLIENTS, TEAM, "orders", {"spec": {"authentication": authentication}})


def _secret(emulator: AuthyardEmulator) -> dict[str, str]:
    return decoded(emulator.get("v1/secrets", TEAM, "orders-oauth"))


def _public_jwk(kid: str) -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key)), "kid": kid}


async def test_switching_methods_leaves_no_secret_behind_and_a_new_one_on_return(
    emulator: AuthyardEmulator, reconciler: ClientReconciler, admin_api: AdminApi
) -> None:
    emulator.create(OAUTHCLIENTS, oauthclient("orders"))
    outcome = await _reconcile(emulator, reconciler)
    assert _ready(outcome)["status"] == "True", outcome
    first = _secret(emulator)
    assert first["client_secret"] == first["OAUTH_CLIENT_SECRET"] == admin_api.secret
    assert first["token_endpoint_auth_method"] == "client_secret_basic"

    # ClientSecret → ServiceAccount: the registration first (the server drops the secret), then the Secret.
    _switch(emulator, {"method": "ServiceAccount", "serviceAccountName": "orders-api"})
    outcome = await _reconcile(emulator, reconciler)
    assert _ready(outcome)["status"] == "True", outcome
    registered = admin_api.puts[-1]
    assert registered["token_endpoint_auth_method"] == "workload_identity"
    assert registered["workload_identity"] == {
        "issuer": "kubernetes",
        "subject": f"system:serviceaccount:{TEAM}:orders-api",
    }
    assert admin_api.secret is None
    connection = _secret(emulator)
    assert set(connection) == CONNECTION_KEYS | AUDIENCE_KEYS
    assert connection["token_endpoint_auth_method"] == "workload_identity"
    assert connection["service_account_token_audience"] == ISSUER
    assert connection["client_id"] == f"{TEAM}.orders" and connection["token_endpoint"] == f"{ISSUER}/token"
    removed = [event for event in outcome.events if event.reason == "SecretRemoved"]
    assert removed and "Secret orders-oauth" in removed[0].message
    assert outcome.status["secretName"] == "orders-oauth"

    # ServiceAccount → PrivateKeyJWT from a ConfigMap: missing, then not public, then usable.
    reference = {"name": "orders-keys", "key": "jwks.json"}
    _switch(emulator, {"method": "PrivateKeyJWT", "jwksConfigMapRef": reference})
    puts = len(admin_api.puts)
    missing = _ready(await _reconcile(emulator, reconciler))
    assert (missing["status"], missing["reason"]) == ("False", "JwksConfigMapNotFound")
    private = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1())))
    emulator.create("v1/configmaps", {"metadata": {"name": "orders-keys", "namespace": TEAM},
                                      "data": {"jwks.json": json.dumps({"keys": [private]})}})  # fmt: skip
    invalid = _ready(await _reconcile(emulator, reconciler))
    assert (invalid["status"], invalid["reason"]) == ("False", "JwksInvalid")
    assert "private members" in invalid["message"] and private["d"] not in invalid["message"]
    assert len(admin_api.puts) == puts, "nothing is registered while the keys are unusable"
    key = _public_jwk("k1")
    emulator.patch("v1/configmaps", TEAM, "orders-keys", {"data": {"jwks.json": json.dumps({"keys": [key]})}})
    outcome = await _reconcile(emulator, reconciler)
    assert _ready(outcome)["status"] == "True", outcome
    registered = admin_api.puts[-1]
    assert registered["token_endpoint_auth_method"] == "private_key_jwt"
    assert registered["jwks"] == {"keys": [key]} and "workload_identity" not in registered
    connection = _secret(emulator)
    assert set(connection) == CONNECTION_KEYS  # no token audience any more
    assert connection["token_endpoint_auth_method"] == "private_key_jwt"

    # PrivateKeyJWT → ClientSecret: a new secret, never the old one.
    _switch(emulator, None)
    outcome = await _reconcile(emulator, reconciler)
    assert _ready(outcome)["status"] == "True", outcome
    last = _secret(emulator)
    assert last["client_secret"] == admin_api.secret and last["client_secret"] != first["client_secret"]
    assert len(last["client_secret"]) >= 43 and last["token_endpoint_auth_method"] == "client_secret_basic"
    assert admin_api.puts[-1]["client_secret"] == last["client_secret"]

    # No version of the Secret written while the client was secretless held any secret.
    versions = [
        decoded(v) for v in emulator.history("v1/secrets", TEAM) if v["metadata"]["name"] == "orders-oauth"
    ]
    secretless = [v for v in versions if v.get("token_endpoint_auth_method") in SECRETLESS]
    assert len(secretless) >= 2 and not any(set(SECRET_KEYS) & set(v) for v in secretless)


async def test_an_issuer_the_authserver_does_not_trust_is_never_registered(
    emulator: AuthyardEmulator, reconciler: ClientReconciler, admin_api: AdminApi
) -> None:
    auth = {"method": "ServiceAccount", "serviceAccountName": "orders-api", "issuer": "prod-cluster"}
    emulator.create(OAUTHCLIENTS, oauthclient("orders", authentication=auth))
    refused = _ready(await _reconcile(emulator, reconciler))
    assert (refused["status"], refused["reason"]) == ("False", "IssuerNotTrusted")
    assert "'prod-cluster'" in refused["message"] and admin_api.puts == []

    trusted = {"trustedIssuers": [{"name": "prod-cluster", "issuer": "https://k8s.prod.example.com",
                                   "audiences": ["https://auth.prod.example.com"]}]}  # fmt: skip
    emulator.patch(AUTHSERVERS, PLATFORM, "auth", {"spec": {"workloadIdentity": trusted}})
    outcome = await _reconcile(emulator, reconciler)
    assert _ready(outcome)["status"] == "True", outcome
    assert admin_api.puts[-1]["workload_identity"]["issuer"] == "prod-cluster"
    assert _secret(emulator)["service_account_token_audience"] == "https://auth.prod.example.com"


async def test_a_secret_someone_else_owns_is_never_overwritten_by_a_secretless_client(
    emulator: AuthyardEmulator, reconciler: ClientReconciler, admin_api: AdminApi
) -> None:
    theirs = base64.b64encode(b"their-data").decode()
    emulator.create("v1/secrets", {"metadata": {"name": "orders-oauth", "namespace": TEAM},
                                   "data": {"other": theirs}})  # fmt: skip
    auth = {"method": "PrivateKeyJWT", "jwksUri": "https://orders.example.com/jwks.json"}
    emulator.create(OAUTHCLIENTS, oauthclient("orders", authentication=auth))
    conflict = _ready(await _reconcile(emulator, reconciler))
    assert (conflict["status"], conflict["reason"]) == ("False", "SecretConflict")
    assert _secret(emulator) == {"other": "their-data"} and admin_api.puts == []
