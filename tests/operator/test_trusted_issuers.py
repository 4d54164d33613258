"""AuthServer spec.workloadIdentity rendered: the trusted-issuers file (AUTHSERVER_TRUSTED_ISSUERS_FILE), the
volumes that put it and what it points at into the pods, and the ClusterRoleBinding that lets the pods read
their own cluster's issuer."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
from authyard_operator.resources.bundle import Observed
from authyard_operator.resources.trusted_issuers import (
    ISSUER_DISCOVERY_ROLE,
    SERVICE_ACCOUNT_DIR,
    trusted_issuers_document,
)

from tests.operator.support import CLUSTER_ISSUER, by_kind, render, spec_of
from tests.operator.test_renderers import _a_ca_certificate

OTHER_CLUSTER = {
    "name": "prod",
    "issuer": "https://oidc.prod.example.com/cluster",
    "audiences": ["https://auth.example.com"],
    "jwksUri": "https://oidc.prod.example.com/cluster/keys",
    "caConfigMapRef": {"name": "prod-ca", "key": "ca.crt"},
}
EXTERNAL = {"name": "ci", "issuer": "https://token.actions.example.com"}


def _file(children: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    data = children[("ConfigMap", "auth-trusted-issuers")]["data"]
    assert set(data) == {"trusted-issuers.json"}
    document: dict[str, Any] = json.loads(data["trusted-issuers.json"])
    return document


def _pod(children: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = children[("Deployment", "auth")]["spec"]["template"]
    return pod


def _server(pod: dict[str, Any]) -> dict[str, Any]:
    (server,) = [c for c in pod["spec"]["containers"] if c["name"] == "authserver"]
    return server


def test_the_cluster_is_trusted_by_default_through_the_api_servers_service() -> None:
    desired = render({})
    children = by_kind(desired)
    assert _file(children) == {
        "issuers": [
            {
                "name": "kubernetes",
                "issuer": CLUSTER_ISSUER,  # what the API server's discovery document says
                "jwks_uri": "https://kubernetes.default.svc/openid/v1/jwks",
                "ca_file": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
                "bearer_token_file": "/var/run/secrets/kubernetes.io/serviceaccount/token",
            }
        ]
    }
    config = children[("ConfigMap", "auth-config")]["data"]
    assert config["AUTHSERVER_TRUSTED_ISSUERS_FILE"] == "/etc/authserver/trusted-issuers/trusted-issuers.json"

    pod = _pod(children)
    assert pod["spec"]["automountServiceAccountToken"] is False  # only the server container gets a token
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    assert volumes["trusted-issuers"]["projected"]["sources"] == [
        {"configMap": {"name": "auth-trusted-issuers",
                       "items": [{"key": "trusted-issuers.json", "path": "trusted-issuers.json"}]}}
    ]  # fmt: skip
    credentials = volumes["kube-api-access"]["projected"]["sources"]
    assert {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}} in credentials
    assert {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}} in (
        credentials
    )
    mounts = {mount["name"]: mount for mount in _server(pod)["volumeMounts"]}
    assert mounts["kube-api-access"] == {
        "name": "kube-api-access", "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True
    }  # fmt: skip
    assert mounts["trusted-issuers"]["mountPath"] == "/etc/authserver/trusted-issuers"

    (binding,) = desired.cluster_children
    assert binding["kind"] == "ClusterRoleBinding" and "namespace" not in binding["metadata"]
    assert "ownerReferences" not in binding["metadata"]  # a namespaced owner is invalid for it
    assert binding["metadata"]["name"] == "authyard-issuer-discovery.platform.auth"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ISSUER_DISCOVERY_ROLE
    }  # fmt: skip
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "auth", "namespace": "platform"}]
    kubernetes_validate.validate(binding, "1.32", strict=True)
    assert desired.cluster_unwanted == []


def test_listed_issuers_with_their_ca_bundles() -> None:
    ca = _a_ca_certificate("prod cluster CA")
    spec = {
        "workloadIdentity": {"kubernetes": {"enabled": False}, "trustedIssuers": [OTHER_CLUSTER, EXTERNAL]}
    }
    desired = render(spec, Observed(issuer_cas={"prod": ca}))
    children = by_kind(desired)
    assert _file(children) == {
        "issuers": [
            {
                "name": "prod",
                "issuer": "https://oidc.prod.example.com/cluster",
                "audiences": ["https://auth.example.com"],
                "jwks_uri": "https://oidc.prod.example.com/cluster/keys",
                "ca_file": "/etc/authserver/trusted-issuers/ca/prod.crt",
            },
            {"name": "ci", "issuer": "https://token.actions.example.com"},
        ]
    }
    pod = _pod(children)
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    assert {"configMap": {"name": "prod-ca", "items": [{"key": "ca.crt", "path": "ca/prod.crt"}]}} in (
        volumes["trusted-issuers"]["projected"]["sources"]
    )
    assert "kube-api-access" not in volumes  # no cluster issuer: no token in the pod
    # The cluster is not trusted: its binding must go.
    assert desired.cluster_children == []
    assert desired.cluster_unwanted == [
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "authyard-issuer-discovery.platform.auth")
    ]

    # A renewed CA bundle rolls the pods (the server reads it when a worker starts).
    renewed = render(spec, Observed(issuer_cas={"prod": _a_ca_certificate("prod cluster CA, renewed")}))
    assert desired.config_hash != renewed.config_hash
    with pytest.raises(ValueError, match=r"trustedIssuers\[0\].caConfigMapRef is not PEM CA certificates"):
        render(spec, Observed(issuer_cas={"prod": "-----BEGIN CERTIFICATE-----\nnot base64\n"}))


def test_an_authserver_trusting_no_issuer_has_no_file() -> None:
    desired = render({"workloadIdentity": {"kubernetes": {"enabled": False}}}, Observed())
    children = by_kind(desired)
    assert ("ConfigMap", "auth-trusted-issuers") not in children
    assert "AUTHSERVER_TRUSTED_ISSUERS_FILE" not in children[("ConfigMap", "auth-config")]["data"]
    volumes = {volume["name"] for volume in _pod(children)["spec"]["volumes"]}
    assert not volumes & {"trusted-issuers", "kube-api-access"}
    assert ("v1", "ConfigMap", "auth-trusted-issuers") in desired.unwanted


def test_the_cluster_issuer_follows_its_discovery_document() -> None:
    first = render({}, Observed(cluster_issuer="https://oidc.eks.example.com/id/ABC"))
    assert _file(by_kind(first))["issuers"][0]["issuer"] == "https://oidc.eks.example.com/id/ABC"
    second = render({}, Observed(cluster_issuer="https://oidc.eks.example.com/id/DEF"))
    assert first.config_hash != second.config_hash  # a new issuer rolls the pods
    with pytest.raises(ValueError, match="issuer is unknown"):
        trusted_issuers_document(spec_of({}), None)


def test_the_file_holds_no_secret() -> None:
    """Paths of the token and CAs, never their content: the ConfigMap is readable by anyone who reads
    ConfigMaps in the namespace."""
    ca = _a_ca_certificate("prod cluster CA")
    spec = {"workloadIdentity": {"trustedIssuers": [OTHER_CLUSTER]}}
    text = json.dumps(
        _file(by_kind(render(spec, Observed(cluster_issuer=CLUSTER_ISSUER, issuer_cas={"prod": ca}))))
    )
    assert "BEGIN CERTIFICATE" not in text and "eyJ" not in text
