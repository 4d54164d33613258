"""Signing in to Kubernetes with an Authyard ID token (docs/kubernetes-sign-in.md).

The e2e workflow's kubectl-sign-in job runs scripts/kind-oidc-issuer.sh, which starts Authyard behind TLS
and creates a kind cluster whose API server trusts it through a structured authentication configuration
(issuer, audience `kubectl`, `preferred_username` and `groups` with the prefix `authyard:`). Here a person
signs in through Authyard's own pages as a kubectl login helper would (authorization code, PKCE, a loopback
redirect URI), and kubectl, with nothing but that ID token, is that person to the API server: their name,
their groups, and the RBAC a group binding grants. Without that job's variables the module is skipped;
with AUTHYARD_E2E_REQUIRE_OIDC (set by the job) that is a failure instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from e2e.conftest import Cluster

pytestmark = pytest.mark.kubectl_sign_in

ISSUER = os.environ.get("AUTHYARD_E2E_OIDC_ISSUER", "")
CA_FILE = os.environ.get("AUTHYARD_E2E_OIDC_CA", "")
ADMIN_TOKEN = os.environ.get("AUTHYARD_E2E_OIDC_ADMIN_TOKEN", "")
CLIENT_ID = "kubectl"  # the audience the API server's authentication configuration expects
REDIRECT_URI = "http://localhost:8000"  # a login helper's loopback listener (RFC 8252 §7.3)
ROLE_BINDING = "authyard-e2e-platform-view"


@pytest.fixture(scope="module")
def authyard() -> Iterator[httpx.Client]:
    if not (ISSUER and CA_FILE and ADMIN_TOKEN):
        reason = "no Authyard issuer the API server trusts (scripts/kind-oidc-issuer.sh sets them)"
        if os.environ.get("AUTHYARD_E2E_REQUIRE_OIDC"):
            pytest.fail(f"{reason}; AUTHYARD_E2E_REQUIRE_OIDC is set", pytrace=False)
        pytest.skip(reason)
    with httpx.Client(base_url=ISSUER, verify=CA_FILE, timeout=30) as http:
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        registration = {
            "name": "kubectl",
            "type": "public",
            "grant_types": ["authorization_code", "refresh_token"],
            "scopes": ["openid", "profile", "email", "groups", "offline_access"],
            "redirect_uris": [REDIRECT_URI],
        }
        response = http.put(f"/admin/clients/{CLIENT_ID}", json=registration, headers=admin)
        assert response.status_code in (200, 201), response.text
        yield http


def _create_user(http: httpx.Client, username: str, groups: list[str]) -> str:
    password = secrets.token_urlsafe(16)
    body = {"username": username, "password": password, "groups": groups}
    response = http.post("/admin/users", json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 201, response.text
    return password


def _hidden(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def _id_token(http: httpx.Client, username: str, password: str) -> str:
    """Authorization code with PKCE through the real sign-in and consent pages (what a kubectl login helper
    drives in a browser), then the token request as the public client."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile groups",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "prompt": "login consent",
    }
    http.cookies.clear()
    page = http.get(f"/authorize?{urlencode(params)}")
    assert page.status_code == 200, page.text
    credentials = {"username": username, "password": password}
    login = http.post("/authorize/login", data={**_hidden(page.text), **credentials})
    assert login.status_code == 200, login.text
    consent = http.post("/authorize/consent", data={**_hidden(login.text), "decision": "allow"})
    assert consent.status_code == 303, consent.text
    query = {key: values[0] for key, values in parse_qs(urlsplit(consent.headers["location"]).query).items()}
    assert query["state"] == params["state"]
    token = http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": CLIENT_ID,
        },
    )
    assert token.status_code == 200, token.text
    return str(token.json()["id_token"])


@pytest.fixture(scope="module")
def token_kubeconfig(cluster: Cluster) -> Iterator[Path]:
    """A kubeconfig with the cluster's address and CA and no credentials of its own: kubectl's --token is
    then the only thing the API server can authenticate (a client certificate would win over it)."""
    view = json.loads(cluster.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    server = view["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kind", "cluster": server}],
        "users": [{"name": "token", "user": {}}],
        "contexts": [{"name": "token", "context": {"cluster": "kind", "user": "token"}}],
        "current-context": "token",
    }
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "kubeconfig"
        path.write_text(json.dumps(config))
        yield path


def _as(kubeconfig: Path, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - a fixed kubectl command line
        ["kubectl", "--kubeconfig", str(kubeconfig), "--token", token, *args],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _whoami(kubeconfig: Path, token: str) -> dict[str, Any]:
    result = _as(kubeconfig, token, "auth", "whoami", "-o", "json")
    assert result.returncode == 0, result.stderr
    info: dict[str, Any] = json.loads(result.stdout)["status"]["userInfo"]
    return info


def test_kubectl_with_an_authyard_id_token_is_the_person_with_their_groups(
    cluster: Cluster, authyard: httpx.Client, token_kubeconfig: Path
) -> None:
    alice = f"alice-{secrets.token_hex(3)}"
    bob = f"bob-{secrets.token_hex(3)}"
    alice_token = _id_token(authyard, alice, _create_user(authyard, alice, ["platform"]))
    bob_token = _id_token(authyard, bob, _create_user(authyard, bob, []))

    seen = _whoami(token_kubeconfig, alice_token)
    assert seen["username"] == f"authyard:{alice}"
    assert "authyard:platform" in seen["groups"] and "system:authenticated" in seen["groups"]
    assert _whoami(token_kubeconfig, bob_token)["username"] == f"authyard:{bob}"

    # RBAC through the group claim: a binding for authyard:platform lets Alice read, and not Bob.
    cluster.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": ROLE_BINDING},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "authyard:platform"}
                ],
            }
        ]
    )
    try:
        allowed = _as(token_kubeconfig, alice_token, "auth", "can-i", "list", "pods", "-A")
        assert allowed.stdout.strip() == "yes"
        denied = _as(token_kubeconfig, bob_token, "auth", "can-i", "list", "pods", "-A")
        assert denied.stdout.strip() == "no"
        assert _as(token_kubeconfig, alice_token, "get", "namespaces").returncode == 0
    finally:
        cluster.delete("clusterrolebinding", ROLE_BINDING)


def test_a_tampered_or_foreign_token_is_unauthorized(authyard: httpx.Client, token_kubeconfig: Path) -> None:
    carol = f"carol-{secrets.token_hex(3)}"
    token = _id_token(authyard, carol, _create_user(authyard, carol, ["platform"]))
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["preferred_username"] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for bad in (f"{header}.{forged}.{signature}", token[:-4] + "AAAA"):
        result = _as(token_kubeconfig, bad, "auth", "whoami")
        assert result.returncode != 0 and "Unauthorized" in result.stderr, result.stderr
