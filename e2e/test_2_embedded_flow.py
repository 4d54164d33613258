"""The platform engineer's and the application's path on the embedded AuthServer example:

AuthServer Ready -> OAuthClients Ready -> a token from the generated Secret's credentials, verified
against JWKS -> scaling rules -> client-secret rotation with a grace period -> deletion and cleanup
(children gone through ownerReferences, the client unregistered, finalizers that do not hang without the
AuthServer).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from e2e import support
from e2e.conftest import Cluster
from e2e.support import client_credentials_token as token

PLATFORM, TEAM_A, TEAM_B = "platform", "team-a", "team-b"
SERVER = "auth"
M2M, SPA = "orders-api", "storefront"


@pytest.fixture(scope="module")
def deployed(cluster: Cluster, operator: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for namespace in (PLATFORM, TEAM_A, TEAM_B):
        cluster.ensure_namespace(namespace)
    server = support.allow_client_namespaces(support.example("authserver-embedded.yaml"), [TEAM_A, TEAM_B])
    m2m, spa = support.example("oauthclient-m2m.yaml"), support.example("oauthclient-spa.yaml")
    cluster.apply([server])
    cluster.apply([m2m, spa])
    yield {"server": server, "m2m": m2m, "spa": spa}
    if not os.environ.get("AUTHYARD_E2E_KEEP"):
        for namespace in (TEAM_A, TEAM_B, PLATFORM):
            cluster.kubectl(
                "delete", "namespace", namespace, "--ignore-not-found", "--wait=false", check=False
            )


def test_authserver_becomes_ready(cluster: Cluster, deployed: dict[str, Any]) -> None:
    server = cluster.wait_ready("authserver", SERVER, PLATFORM, timeout=420)
    assert server["status"]["issuer"] == "http://auth.platform.svc:8080"
    assert server["status"]["readyReplicas"] == 1
    assert server["status"]["signingKeys"]["activeKid"]
    printed = cluster.kubectl("get", "authservers", namespace=PLATFORM).stdout
    assert SERVER in printed and "True" in printed


def test_clients_become_ready_and_get_their_secret(cluster: Cluster, deployed: dict[str, Any]) -> None:
    m2m = cluster.wait_ready("oauthclient", M2M, TEAM_A, timeout=180)
    spa = cluster.wait_ready("oauthclient", SPA, TEAM_B, timeout=180)
    assert m2m["status"]["clientId"] == f"{TEAM_A}.{M2M}"
    assert spa["status"]["clientId"] == f"{TEAM_B}.{SPA}"
    data = cluster.secret_data(deployed["m2m"]["spec"]["secret"]["name"], TEAM_A)
    assert set(support.CLIENT_SECRET_KEYS) <= set(data)
    assert data["client_id"] == m2m["status"]["clientId"]
    assert data["token_endpoint"] == "http://auth.platform.svc:8080/token"  # noqa: S105 - a URL
    assert len(data["client_secret"]) >= 43


def test_token_from_the_secret_verifies_against_jwks(cluster: Cluster, deployed: dict[str, Any]) -> None:
    data = cluster.secret_data(deployed["m2m"]["spec"]["secret"]["name"], TEAM_A)
    with cluster.port_forward(f"svc/{SERVER}", 8080, PLATFORM) as port:
        response = token(
            support.local_url(data["token_endpoint"], port), data["client_id"], data["client_secret"]
        )
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        access_token = response.json()["access_token"]
        jwks = httpx.get(support.local_url(data["jwks_uri"], port), timeout=10).json()
    header, claims = support.verify_access_token(
        access_token, jwks, issuer=data["issuer"], audience="https://orders.example.com"
    )
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    assert claims["client_id"] == data["client_id"]
    assert set(claims["scope"].split()) == {"orders.read", "orders.write"}
    assert claims["exp"] - claims["iat"] == 300  # accessTokenTTL: 5m


def test_embedded_sqlite_cannot_scale_out(cluster: Cluster, deployed: dict[str, Any]) -> None:
    """Rejected at apply time by the CRD's validation rules, with a message that says what to do."""
    result = cluster.patch("authserver", SERVER, PLATFORM, {"spec": {"replicas": 2}})
    assert result.returncode != 0
    assert "spec.database" in result.stderr or "exactly one replica" in result.stderr, result.stderr


def test_client_secret_rotation_keeps_the_old_secret_working_for_the_grace_period(
    cluster: Cluster, deployed: dict[str, Any]
) -> None:
    secret_name = deployed["m2m"]["spec"]["secret"]["name"]
    before = cluster.secret_data(secret_name, TEAM_A)
    cluster.kubectl(
        "annotate", "oauthclient", M2M, "authyard.dev/rotate-secret=e2e-1", "--overwrite", namespace=TEAM_A
    )
    after = support.poll(
        lambda: (
            (data := cluster.secret_data(secret_name, TEAM_A))["client_secret"] != before["client_secret"]
            and data
        ),
        timeout=120,
        what="rotated client_secret in the Secret",
    )
    assert after["client_id"] == before["client_id"]
    client = cluster.wait_ready("oauthclient", M2M, TEAM_A, timeout=60)
    assert client["status"].get("lastRotation")
    with cluster.port_forward(f"svc/{SERVER}", 8080, PLATFORM) as port:
        url = support.local_url(after["token_endpoint"], port)
        assert token(url, after["client_id"], after["client_secret"]).status_code == 200
        assert token(url, before["client_id"], before["client_secret"]).status_code == 200  # grace period 1h
        assert token(url, before["client_id"], "not-the-secret").status_code == 401


def test_deleting_a_client_unregisters_it_and_removes_its_secret(
    cluster: Cluster, deployed: dict[str, Any]
) -> None:
    secret_name = deployed["m2m"]["spec"]["secret"]["name"]
    data = cluster.secret_data(secret_name, TEAM_A)
    admin_token = cluster.secret_data(f"{SERVER}-admin", PLATFORM)["token"]
    cluster.delete("oauthclient", M2M, TEAM_A)
    cluster.wait_gone("oauthclient", M2M, TEAM_A, timeout=120)
    cluster.wait_gone("secret", secret_name, TEAM_A, timeout=120)  # garbage-collected via ownerReferences
    with cluster.port_forward(f"svc/{SERVER}", 8080, PLATFORM) as port:
        admin = httpx.get(
            f"http://127.0.0.1:{port}/admin/clients/{data['client_id']}",
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=10,
        )
        assert admin.status_code == 404, admin.text
        assert (
            token(
                support.local_url(data["token_endpoint"], port), data["client_id"], data["client_secret"]
            ).status_code
            == 401
        )


def test_deleting_the_authserver_removes_its_children(cluster: Cluster, deployed: dict[str, Any]) -> None:
    names = {
        "deployment": SERVER,
        "service": SERVER,
        "serviceaccount": SERVER,
        "configmap": f"{SERVER}-config",
        "persistentvolumeclaim": f"{SERVER}-data",
    }
    secrets = [f"{SERVER}-signing-keys", f"{SERVER}-admin"]
    for kind, name in names.items():
        assert cluster.get(kind, name, PLATFORM) is not None, f"{kind} {name} should exist before the delete"
    cluster.delete("authserver", SERVER, PLATFORM)
    cluster.wait_gone("authserver", SERVER, PLATFORM, timeout=120)
    for kind, name in [*names.items(), *(("secret", secret) for secret in secrets)]:
        cluster.wait_gone(kind, name, PLATFORM, timeout=240)


def test_a_client_whose_authserver_is_gone_still_deletes(cluster: Cluster, deployed: dict[str, Any]) -> None:
    """The finalizer lets go (after unregisterTimeout, 1m in examples/helm/values-kind.yaml), never hangs."""
    cluster.delete("oauthclient", SPA, TEAM_B)
    cluster.wait_gone("oauthclient", SPA, TEAM_B, timeout=240)
