"""Workload identity and the JWT bearer grant end to end: a real ``authserver serve --workers 2`` on SQLite
and PostgreSQL, configured as the README says (AUTHSERVER_TRUSTED_ISSUERS_FILE naming an emulated cluster
issuer that serves its discovery document and JWKS only to a bearer token), clients registered with
``authserver clients create``, and httpx sending projected service-account tokens minted by that issuer."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from harness.authserver import ADMIN_TOKEN, AuthServer
from harness.polling import wait_for
from tests.conftest import server_process
from tests.support.client_assertions import JWT_BEARER, public_pem
from tests.support.cluster_issuer import ClusterIssuer, serving_cluster_issuer

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
NAMESPACE = "shop"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
POD_TOKEN = "pod-token-" + "a" * 40  # what the server's own pod mounts and sends to the API server


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterIssuer]:
    with serving_cluster_issuer({POD_TOKEN}) as served:
        yield served


@pytest.fixture(scope="module")
def pod_token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serviceaccount") / "token"
    path.write_text(POD_TOKEN)
    return path


@pytest.fixture(scope="module")
def server(
    backend: str, request: pytest.FixtureRequest, cluster: ClusterIssuer, pod_token_file: Path
) -> Iterator[AuthServer]:
    issuers = {
        "issuers": [
            {"name": "kubernetes", "issuer": cluster.issuer, "bearer_token_file": str(pod_token_file)}
        ]
    }
    path = pod_token_file.parent / "trusted-issuers.json"
    path.write_text(json.dumps(issuers))
    env = {"AUTHSERVER_TRUSTED_ISSUERS_FILE": str(path), "AUTHSERVER_TRUSTED_ISSUER_CACHE": "1s"}
    with server_process(backend, request, **env) as started:
        yield started


def _register(server: AuthServer, service_account: str, *extra: str) -> dict[str, Any]:
    args = [
        "clients",
        "create",
        "--name",
        f"{service_account} workload",
        "--grant-type",
        "client_credentials",
    ]
    args += ["--scope", "orders.read", "--token-endpoint-auth-method", "workload_identity"]
    args += ["--workload-issuer", "kubernetes"]
    args += ["--workload-subject", f"system:serviceaccount:{NAMESPACE}:{service_account}", *extra]
    created: dict[str, Any] = json.loads(server.cli(*args).stdout)
    return created


def _authenticated(assertion: str, **extra: str) -> dict[str, str]:
    return {"client_assertion_type": JWT_BEARER, "client_assertion": assertion, **extra}


def _token(server: AuthServer, assertion: str, **extra: str) -> httpx.Response:
    form = {"grant_type": "client_credentials", **_authenticated(assertion, **extra)}
    return httpx.post(f"{server.base_url}/token", data=form, timeout=10)


async def _atoken(server: AuthServer, assertion: str, **extra: str) -> httpx.Response:
    form = {"grant_type": "client_credentials", **_authenticated(assertion, **extra)}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        return await http.post("/token", data=form)


async def _all_accepted(server: AuthServer, assertion: str, times: int = 6) -> bool:
    """Accepted on ``times`` new connections (so by both workers, in all likelihood)."""
    return all([(await _atoken(server, assertion)).status_code == 200 for _ in range(times)])


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def _refused(response: httpx.Response, description: str, error: str = "invalid_client") -> None:
    assert response.status_code == (401 if error == "invalid_client" else 400), response.text
    body = response.json()
    assert body["error"] == error and description in body["error_description"], body


def _service_account() -> str:
    return f"orders-{uuid.uuid4().hex[:6]}"


def test_a_workload_client_is_registered_without_a_secret(server: AuthServer) -> None:
    service_account = _service_account()
    created = _register(server, service_account)
    assert "client_secret" not in created and created["has_secret"] is False
    assert created["token_endpoint_auth_method"] == "workload_identity"
    assert created["workload_identity"] == {
        "issuer": "kubernetes",
        "subject": f"system:serviceaccount:{NAMESPACE}:{service_account}",
    }
    shown = httpx.get(
        f"{server.base_url}/admin/clients/{created['client_id']}", headers=ADMIN, timeout=10
    ).json()
    assert shown["workload_identity"] == created["workload_identity"]
    # One workload is one client: a second registration of it is refused, by the CLI and the admin API.
    again = server.cli(
        "clients", "create", "--name", "twin", "--grant-type", "client_credentials",
        "--token-endpoint-auth-method", "workload_identity", "--workload-issuer", "kubernetes",
        "--workload-subject", f"system:serviceaccount:{NAMESPACE}:{service_account}", check=False,
    )  # fmt: skip
    assert again.returncode == 2 and "another client is registered for this workload" in again.stderr
    put = httpx.put(
        f"{server.base_url}/admin/clients/twin-{uuid.uuid4().hex[:6]}",
        headers=ADMIN,
        json={
            "name": "twin",
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "workload_identity",
            "workload_identity": created["workload_identity"],
        },
        timeout=10,
    )
    assert put.status_code == 409, put.text
    unknown = server.cli(
        "clients", "create", "--name", "elsewhere", "--grant-type", "client_credentials",
        "--token-endpoint-auth-method", "workload_identity", "--workload-issuer", "other-cluster",
        "--workload-subject", "system:serviceaccount:a:b", check=False,
    )  # fmt: skip
    assert unknown.returncode == 2 and "other-cluster is not a trusted issuer" in unknown.stderr


async def test_a_pod_gets_introspects_and_revokes_tokens_with_its_service_account_token(
    server: AuthServer, cluster: ClusterIssuer
) -> None:
    service_account = _service_account()
    client_id = _register(server, service_account)["client_id"]
    projected = cluster.token(NAMESPACE, service_account, server.issuer)
    # The same projected token, sent again and again (as a pod does until the kubelet rotates it), on new
    # connections that land on either worker; with and without client_id.
    tokens = []
    for attempt in range(12):
        extra = {"client_id": client_id} if attempt % 2 else {}
        response = await _atoken(server, projected, **extra)
        assert response.status_code == 200, response.text
        tokens.append(response.json()["access_token"])
    claims = _claims(tokens[0])
    assert claims["client_id"] == client_id and claims["sub"] == client_id
    assert claims["scope"] == "orders.read"
    form = {"token": tokens[0], **_authenticated(projected)}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        introspected = await http.post("/introspect", data=form)
        assert introspected.status_code == 200 and introspected.json()["active"] is True, introspected.text
        revoked = await http.post("/revoke", data=form)
        assert revoked.status_code == 200, revoked.text

    async def inactive_everywhere() -> bool:
        for _ in range(6):  # new connections: either worker, each once it synced the revocation
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
                answer = await http.post("/introspect", data=form)
            if answer.status_code != 200 or answer.json() != {"active": False}:
                return False
        return True

    await wait_for(inactive_everywhere, timeout=10, message="the revoked token is still active")
    # The server fetched the cluster's keys with its own pod's token, as the API server requires.
    assert f"Bearer {POD_TOKEN}" in cluster.authorizations


async def test_a_key_rotation_on_the_issuer_while_tokens_are_live(
    server: AuthServer, cluster: ClusterIssuer
) -> None:
    service_account = _service_account()
    _register(server, service_account)
    old_kid = cluster.signing_kid
    old = cluster.token(NAMESPACE, service_account, server.issuer)
    assert (await _atoken(server, old)).status_code == 200
    cluster.rotate()
    new = cluster.token(NAMESPACE, service_account, server.issuer)
    assert jwt.get_unverified_header(new)["kid"] != old_kid
    # An unknown kid has the keys fetched again (at most every 5 s per worker): both workers pick it up.
    await wait_for(
        lambda: _all_accepted(server, new),
        timeout=20,
        interval=0.5,
        message="a token under the issuer's new key is not accepted",
    )
    assert await _all_accepted(server, old)  # its key is still published
    cluster.retire(old_kid)

    async def old_refused() -> bool:
        for _ in range(6):
            response = await _atoken(server, old)
            if response.status_code != 401 or "has kid" not in response.json()["error_description"]:
                return False
        return True

    await wait_for(
        old_refused,
        timeout=20,
        interval=0.5,
        message="a token whose key left the issuer's set is still accepted",
    )
    assert await _all_accepted(server, new)


async def test_the_bearer_token_file_is_read_again_for_each_fetch(
    server: AuthServer, cluster: ClusterIssuer, pod_token_file: Path
) -> None:
    """The kubelet rotates the server pod's own token: the next fetch sends the new one."""
    service_account = _service_account()
    _register(server, service_account)
    rotated = "pod-token-" + uuid.uuid4().hex
    await asyncio.to_thread(pod_token_file.write_text, rotated)
    cluster.accepted_tokens = {POD_TOKEN, rotated}
    cluster.rotate()
    token = cluster.token(NAMESPACE, service_account, server.issuer)
    await wait_for(
        lambda: _all_accepted(server, token, 1),
        timeout=20,
        interval=0.5,
        message="a token under a new key is not accepted after the bearer token file changed",
    )
    assert f"Bearer {rotated}" in cluster.authorizations


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forged(cluster: ClusterIssuer, claims: dict[str, Any], alg: str) -> str:
    header = _b64(json.dumps({"alg": alg, "kid": cluster.signing_kid}).encode())
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
    if alg == "none":
        return f"{signing_input}."
    key = public_pem(cluster.keys[-1].private)  # the alg-confusion attack keys HMAC with the public key
    return f"{signing_input}.{_b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())}"


@pytest.mark.parametrize(
    ("case", "description"),
    [
        ("untrusted-issuer", "iss is not a trusted issuer"),
        ("wrong-aud", "aud must contain an audience trusted issuer kubernetes is accepted for"),
        ("expired", "client_assertion has expired"),
        ("not-yet-valid", "client_assertion is not valid yet"),
        ("other-namespace", "no client is registered for workload 'system:serviceaccount:payments:"),
        ("other-namespace-named", "is not the workload registered for this client"),
        ("unknown-kid", "no key of trusted issuer kubernetes has kid"),
        ("alg-none", "must be signed with RS256 or PS256 or ES256 or EdDSA"),
        ("hmac", "must be signed with RS256 or PS256 or ES256 or EdDSA"),
        ("oversized", "longer than 8192 bytes"),
    ],
)
def test_each_refusal_is_invalid_client_naming_the_rule(
    server: AuthServer, cluster: ClusterIssuer, case: str, description: str
) -> None:
    service_account = _service_account()
    client_id = _register(server, service_account)["client_id"]
    now = int(time.time())
    extra: dict[str, str] = {}
    if case == "untrusted-issuer":
        stranger = ClusterIssuer(port=1)
        stranger.rotate()
        assertion = stranger.token(NAMESPACE, service_account, server.issuer)
    elif case == "wrong-aud":
        assertion = cluster.token(NAMESPACE, service_account, "https://api.other.example")
    elif case == "expired":
        assertion = cluster.token(NAMESPACE, service_account, server.issuer, issued_at=now - 900)
    elif case == "not-yet-valid":
        assertion = cluster.token(NAMESPACE, service_account, server.issuer, issued_at=now + 300)
    elif case.startswith("other-namespace"):
        assertion = cluster.token("payments", service_account, server.issuer)
        if case.endswith("named"):
            extra = {"client_id": client_id}
    elif case == "unknown-kid":
        stranger = ClusterIssuer(port=cluster.port)  # the same iss, a key the cluster never published
        stranger.rotate()
        assertion = stranger.token(NAMESPACE, service_account, server.issuer)
    elif case in ("alg-none", "hmac"):
        claims = _claims(cluster.token(NAMESPACE, service_account, server.issuer))
        assertion = _forged(cluster, claims, "none" if case == "alg-none" else "HS256")
    else:
        assertion = cluster.token(NAMESPACE, service_account, server.issuer, padding="x" * 9000)
    _refused(_token(server, assertion, **extra), description)


def test_the_jwt_bearer_grant(server: AuthServer, cluster: ClusterIssuer) -> None:
    metadata = httpx.get(f"{server.base_url}/.well-known/openid-configuration", timeout=10).json()
    assert JWT_BEARER_GRANT in metadata["grant_types_supported"]
    created = server.cli(
        "clients", "create", "--name", "gateway", "--grant-type", JWT_BEARER_GRANT,
        "--scope", "orders.read", "--scope", "orders.write",
    )  # fmt: skip
    gateway = json.loads(created.stdout)
    auth = (gateway["client_id"], gateway["client_secret"])
    server.seen_secrets.add(gateway["client_secret"])

    def grant(assertion: str, **extra: str) -> httpx.Response:
        form = {"grant_type": JWT_BEARER_GRANT, "assertion": assertion, **extra}
        return httpx.post(f"{server.base_url}/token", data=form, auth=auth, timeout=10)

    response = grant(cluster.token(NAMESPACE, "checkout", server.issuer), scope="orders.read")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "orders.read" and "refresh_token" not in body
    introspected = httpx.post(
        f"{server.base_url}/introspect", data={"token": body["access_token"]}, auth=auth, timeout=10
    ).json()
    assert introspected["active"] is True
    assert introspected["sub"] == f"kubernetes:system:serviceaccount:{NAMESPACE}:checkout"
    assert introspected["client_id"] == gateway["client_id"]
    expired = cluster.token(NAMESPACE, "checkout", server.issuer, issued_at=int(time.time()) - 900)
    _refused(grant(expired), "assertion has expired", error="invalid_grant")
    wrong_aud = cluster.token(NAMESPACE, "checkout", "https://api.other.example")
    _refused(grant(wrong_aud), "aud must contain", error="invalid_grant")
    # A client without the grant registered is refused it (RFC 6749 §5.2 unauthorized_client).
    other = json.loads(
        server.cli("clients", "create", "--name", "n", "--grant-type", "client_credentials").stdout
    )
    server.seen_secrets.add(other["client_secret"])
    refused = httpx.post(
        f"{server.base_url}/token",
        data={
            "grant_type": JWT_BEARER_GRANT,
            "assertion": cluster.token(NAMESPACE, "checkout", server.issuer),
        },
        auth=(other["client_id"], other["client_secret"]),
        timeout=10,
    )
    assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client", refused.text


def test_fetches_are_counted_in_metrics(server: AuthServer, cluster: ClusterIssuer) -> None:
    service_account = _service_account()
    _register(server, service_account)
    assert _token(server, cluster.token(NAMESPACE, service_account, server.issuer)).status_code == 200
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    ok = [
        line
        for line in text.splitlines()
        if line.startswith('authserver_trusted_issuer_fetches_total{issuer="kubernetes",outcome="ok"}')
    ]
    assert ok and float(ok[0].split()[-1]) >= 1, ok
    assert 'authserver_client_jwks_fetches_total{outcome="timeout"}' in text


TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"


def test_a_service_account_token_is_exchanged_for_an_access_token_of_this_server(
    server: AuthServer, cluster: ClusterIssuer
) -> None:
    """RFC 8693 with a trusted issuer's JWT as the subject_token: a gateway (a confidential client whose
    policy accepts tokens meant for this server) exchanges a pod's projected token for an access token
    whose sub is the workload, namespaced by its issuer; its scope is the client's (never OpenID scopes: the
    workload is no user here); each refusal of the subject token is invalid_request with its rule named."""
    created = json.loads(
        server.cli(
            "clients",
            "create",
            "--name",
            "gateway",
            "--grant-type",
            TOKEN_EXCHANGE,
            "--scope",
            "orders.read",
            "--scope",
            "openid",
            "--exchange-subject-audience",
            server.issuer,
            "--exchange-allow-impersonation",
        ).stdout
    )
    gateway = (created["client_id"], created["client_secret"])
    service_account = _service_account()

    def exchange(subject_token: str, **extra: str) -> httpx.Response:
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": subject_token,
            "subject_token_type": JWT_TOKEN_TYPE,
            **extra,
        }
        return httpx.post(f"{server.base_url}/token", data=form, auth=gateway, timeout=10)

    answer = exchange(cluster.token(NAMESPACE, service_account, server.issuer))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    issued = _claims(body["access_token"])
    assert issued["sub"] == f"kubernetes:system:serviceaccount:{NAMESPACE}:{service_account}"
    assert issued["client_id"] == gateway[0] and issued["scope"] == "orders.read"
    introspected = httpx.post(
        f"{server.base_url}/introspect", data={"token": body["access_token"]}, auth=gateway, timeout=10
    ).json()
    assert introspected["active"] is True and introspected["sub"] == issued["sub"]

    _refused(
        exchange(cluster.token(NAMESPACE, service_account, server.issuer), scope="openid"),
        "scope exceeds",
        "invalid_scope",
    )
    _refused(
        exchange(cluster.token(NAMESPACE, service_account, "https://another.example")),
        "aud",
        "invalid_request",
    )
    _refused(
        exchange(cluster.token(NAMESPACE, service_account, server.issuer, issued_at=int(time.time()) - 4000)),
        "expired",
        "invalid_request",
    )
    untrusted = jwt.encode(
        {"iss": "https://elsewhere.example", "sub": "x", "aud": server.issuer, "exp": int(time.time()) + 60},
        "not-a-key-anyone-trusts",
        algorithm="HS256",
    )
    _refused(exchange(untrusted), "subject_token", "invalid_request")
