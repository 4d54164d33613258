"""The real operator against the emulated API: an AuthServer's trusted token issuers (spec.workloadIdentity)
rendered into its pods, its own cluster's issuer read from the API server's discovery document, and the
ClusterRoleBinding of the pods' ServiceAccount, which goes with the AuthServer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.kube import AUTHSERVERS, custom_resource
from harness.kube_emulator import AuthyardEmulator
from harness.polling import wait_for
from tests.operator.kubeapi import KubeApi

NS = "platform"
BINDINGS = "rbac.authorization.k8s.io/v1/clusterrolebindings"
CLUSTER_ISSUER = "https://oidc.cluster.example.com/id/4F2A"


def _path(name: str = "") -> str:
    return f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers" + (f"/{name}" if name else "")


def _issuers(emulator: AuthyardEmulator, name: str) -> list[dict[str, Any]] | None:
    configmap = emulator.get("v1/configmaps", NS, f"{name}-trusted-issuers")
    if configmap is None:
        return None
    issuers: list[dict[str, Any]] = json.loads(configmap["data"]["trusted-issuers.json"])["issuers"]
    return issuers


def _binding(emulator: AuthyardEmulator, name: str) -> dict[str, Any] | None:
    return emulator.get(BINDINGS, None, f"authyard-issuer-discovery.{NS}.{name}")


def _ready(emulator: AuthyardEmulator, name: str) -> dict[str, Any]:
    status = (emulator.get(AUTHSERVERS, NS, name) or {}).get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})


@pytest.fixture
async def running(operator, emulator: AuthyardEmulator):  # type: ignore[no-untyped-def]
    emulator.create_namespace(NS)
    emulator.service_account_issuer = CLUSTER_ISSUER
    yield await operator("authyard_operator.main")


async def test_trusted_issuers_reach_the_pods_and_the_binding_follows_the_spec(
    running, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    await kube.post(_path(), custom_resource("AuthServer", "auth", NS, {}))
    issuers = await wait_for(lambda: _issuers(emulator, "auth"), timeout=20, message="no trusted issuers")
    assert issuers == [
        {
            "name": "kubernetes",
            "issuer": CLUSTER_ISSUER,  # from the emulated API server's discovery document
            "jwks_uri": "https://kubernetes.default.svc/openid/v1/jwks",
            "ca_file": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
            "bearer_token_file": "/var/run/secrets/kubernetes.io/serviceaccount/token",
        }
    ]
    deployment = await wait_for(lambda: emulator.get("apps/v1/deployments", NS, "auth"), timeout=20)
    volumes = {volume["name"] for volume in deployment["spec"]["template"]["spec"]["volumes"]}
    assert {"trusted-issuers", "kube-api-access"} <= volumes
    config = emulator.get("v1/configmaps", NS, "auth-config")["data"]
    assert config["AUTHSERVER_TRUSTED_ISSUERS_FILE"] == "/etc/authserver/trusted-issuers/trusted-issuers.json"
    binding = await wait_for(lambda: _binding(emulator, "auth"), timeout=20, message="no ClusterRoleBinding")
    assert binding["roleRef"]["name"] == "system:service-account-issuer-discovery"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "auth", "namespace": NS}]

    # Another cluster instead of this one: the file follows, the binding goes.
    other = {"name": "prod", "issuer": "https://oidc.prod.example.com", "audiences": ["https://auth.example"]}
    spec = {"workloadIdentity": {"kubernetes": {"enabled": False}, "trustedIssuers": [other]}}
    await kube.merge(_path("auth"), {"spec": spec})
    await wait_for(
        lambda: (
            _issuers(emulator, "auth")
            == [
                {
                    "name": "prod",
                    "issuer": "https://oidc.prod.example.com",
                    "audiences": ["https://auth.example"],
                }
            ]
        ),
        timeout=20,
        message="the file does not follow the spec",
    )
    await wait_for(lambda: _binding(emulator, "auth") is None, timeout=20, message="binding not deleted")
    volumes = {
        v["name"]
        for v in emulator.get("apps/v1/deployments", NS, "auth")["spec"]["template"]["spec"]["volumes"]
    }
    assert "kube-api-access" not in volumes and "trusted-issuers" in volumes

    # Trusting no issuer at all: no file.
    await kube.merge(_path("auth"), {"spec": {"workloadIdentity": {"trustedIssuers": None}}})
    await wait_for(lambda: _issuers(emulator, "auth") is None, timeout=20, message="file not deleted")
    assert "AUTHSERVER_TRUSTED_ISSUERS_FILE" not in emulator.get("v1/configmaps", NS, "auth-config")["data"]


async def test_the_binding_goes_with_the_authserver(
    running, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    await kube.post(_path(), custom_resource("AuthServer", "gone", NS, {}))
    await wait_for(lambda: _binding(emulator, "gone"), timeout=20, message="no ClusterRoleBinding")
    await kube.delete(_path("gone"))
    await wait_for(lambda: emulator.get(AUTHSERVERS, NS, "gone") is None, timeout=20, message="not deleted")
    assert _binding(emulator, "gone") is None


async def test_unreadable_cluster_discovery_is_a_reason_not_a_crash(
    running, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    emulator.service_account_issuer = None
    await kube.post(_path(), custom_resource("AuthServer", "blind", NS, {}))
    condition = await wait_for(lambda: _ready(emulator, "blind") or None, timeout=20)
    assert (condition["status"], condition["reason"]) == ("False", "ClusterIssuerUnavailable")
    assert "/.well-known/openid-configuration" in condition["message"]
    assert "workloadIdentity.kubernetes.enabled" in condition["message"]
    assert emulator.get("apps/v1/deployments", NS, "blind") is None  # no pod with a half-made file

    emulator.service_account_issuer = CLUSTER_ISSUER  # the next resync reads it
    issuers = await wait_for(lambda: _issuers(emulator, "blind"), timeout=20, message="never recovered")
    assert issuers[0]["issuer"] == CLUSTER_ISSUER
    await wait_for(lambda: _ready(emulator, "blind").get("reason") != "ClusterIssuerUnavailable", timeout=20)


async def test_a_missing_issuer_ca_is_a_reason(running, emulator: AuthyardEmulator, kube: KubeApi) -> None:
    other = {
        "name": "prod",
        "issuer": "https://oidc.prod.example.com",
        "caConfigMapRef": {"name": "prod-ca", "key": "ca.crt"},
    }
    await kube.post(
        _path(), custom_resource("AuthServer", "cas", NS, {"workloadIdentity": {"trustedIssuers": [other]}})
    )
    condition = await wait_for(lambda: _ready(emulator, "cas") or None, timeout=20)
    assert (condition["status"], condition["reason"]) == ("False", "IssuerCAMissing")
    assert "spec.workloadIdentity.trustedIssuers[0].caConfigMapRef" in condition["message"]
    assert emulator.get("apps/v1/deployments", NS, "cas") is None
