"""The token issuers an AuthServer trusts (spec.workloadIdentity), as the file the server reads
(``AUTHSERVER_TRUSTED_ISSUERS_FILE``), and the RBAC its pods need to read their own cluster's issuer.

The file holds no secret: names, issuer URLs, audiences, key URLs and the paths of CA bundles and of the
pod's own service-account token, all mounted beside it. The in-cluster issuer (``kubernetes``) is reached
through the API server's Service with the pod's own token and the cluster CA, which the
``system:service-account-issuer-discovery`` ClusterRole allows (the operator binds it to the server's
ServiceAccount).
"""

from __future__ import annotations

import json
from typing import Any

from authyard_operator.resources.meta import Names, labels, object_meta
from authyard_operator.spec.authserver import KUBERNETES_ISSUER, AuthServerSpec

TRUSTED_ISSUERS_DIR = "/etc/authserver/trusted-issuers"
TRUSTED_ISSUERS_FILE_NAME = "trusted-issuers.json"
TRUSTED_ISSUERS_FILE = f"{TRUSTED_ISSUERS_DIR}/{TRUSTED_ISSUERS_FILE_NAME}"
ISSUER_CA_SUBDIR = "ca"
# Where Kubernetes mounts a pod's own credentials; the server pods mount them explicitly (see deployment.py).
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICE_ACCOUNT_TOKEN_FILE = f"{SERVICE_ACCOUNT_DIR}/token"
CLUSTER_CA_FILE = f"{SERVICE_ACCOUNT_DIR}/ca.crt"
CLUSTER_CA_CONFIGMAP = "kube-root-ca.crt"  # published in every namespace by kube-controller-manager
IN_CLUSTER_API = "https://kubernetes.default.svc"
# The API server's service-account issuer discovery (KEP-1393): the document names the issuer, the JWKS
# holds its keys.
CLUSTER_DISCOVERY_PATH = "/.well-known/openid-configuration"
CLUSTER_JWKS_PATH = "/openid/v1/jwks"
ISSUER_DISCOVERY_ROLE = "system:service-account-issuer-discovery"
COMPONENT = "trusted-issuers"


def issuer_ca_file(issuer_name: str) -> str:
    return f"{TRUSTED_ISSUERS_DIR}/{ISSUER_CA_SUBDIR}/{issuer_name}.crt"


def trusts_any_issuer(spec: AuthServerSpec) -> bool:
    return bool(spec.workload_identity.names())


def trusted_issuers_document(spec: AuthServerSpec, cluster_issuer: str | None) -> dict[str, Any] | None:
    """The file's content; None when the AuthServer trusts no issuer. ``cluster_issuer``: the ``issuer`` of
    the API server's discovery document (needed when workloadIdentity.kubernetes is enabled)."""
    identity = spec.workload_identity
    issuers: list[dict[str, Any]] = []
    if identity.kubernetes.enabled:
        if not cluster_issuer:
            raise ValueError("the cluster's service-account issuer is unknown (its discovery document)")
        issuers.append({
            "name": KUBERNETES_ISSUER,
            "issuer": cluster_issuer,
            "jwks_uri": f"{IN_CLUSTER_API}{CLUSTER_JWKS_PATH}",
            "ca_file": CLUSTER_CA_FILE,
            "bearer_token_file": SERVICE_ACCOUNT_TOKEN_FILE,
        })  # fmt: skip
    for trusted in identity.trusted_issuers:
        entry: dict[str, Any] = {"name": trusted.name, "issuer": trusted.issuer}
        if trusted.audiences:
            entry["audiences"] = list(trusted.audiences)
        if trusted.jwks_uri:
            entry["jwks_uri"] = trusted.jwks_uri
        if trusted.ca_config_map_ref is not None:
            entry["ca_file"] = issuer_ca_file(trusted.name)
        issuers.append(entry)
    return {"issuers": issuers} if issuers else None


def render_trusted_issuers_configmap(name: str, namespace: str, document: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(Names(name).trusted_issuers, namespace, name, COMPONENT),
        "data": {TRUSTED_ISSUERS_FILE_NAME: json.dumps(document, indent=2, sort_keys=True)},
    }


def issuer_discovery_binding_name(name: str, namespace: str) -> str:
    return f"authyard-issuer-discovery.{namespace}.{name}"


def render_issuer_discovery_binding(name: str, namespace: str) -> dict[str, Any]:
    """Lets the server pods read the cluster's issuer discovery document and JWKS, and nothing else.

    Cluster-scoped, so it carries no ownerReference (a namespaced owner is not valid for it): the operator
    deletes it when the AuthServer goes or stops trusting its cluster."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": issuer_discovery_binding_name(name, namespace),
            "labels": {**labels(name, COMPONENT), "authyard.dev/authserver-namespace": namespace},
        },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": ISSUER_DISCOVERY_ROLE,
        },
        "subjects": [{"kind": "ServiceAccount", "name": Names(name).server, "namespace": namespace}],
    }


def issuer_volumes(name: str, spec: AuthServerSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pod's volumes and mounts for the trusted issuers: the file with each issuer's CA bundle beside it,
    and, for the in-cluster issuer, the pod's own token and the cluster CA (the ServiceAccount mounts none
    by default)."""
    if not trusts_any_issuer(spec):
        return [], []
    identity = spec.workload_identity
    sources: list[dict[str, Any]] = [
        {
            "configMap": {
                "name": Names(name).trusted_issuers,
                "items": [{"key": TRUSTED_ISSUERS_FILE_NAME, "path": TRUSTED_ISSUERS_FILE_NAME}],
            }
        }
    ]
    for trusted in identity.trusted_issuers:
        reference = trusted.ca_config_map_ref
        if reference is not None:
            path = f"{ISSUER_CA_SUBDIR}/{trusted.name}.crt"
            sources.append(
                {"configMap": {"name": reference.name, "items": [{"key": reference.key, "path": path}]}}
            )
    volumes: list[dict[str, Any]] = [{"name": COMPONENT, "projected": {"sources": sources}}]
    mounts: list[dict[str, Any]] = [{"name": COMPONENT, "mountPath": TRUSTED_ISSUERS_DIR, "readOnly": True}]
    if identity.kubernetes.enabled:
        # What automountServiceAccountToken would mount, for this container only: a token the kubelet renews
        # (audience: the API server) and the cluster CA.
        credentials = [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
            {"configMap": {"name": CLUSTER_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        ]
        volumes.append({"name": "kube-api-access", "projected": {"sources": credentials}})
        mounts.append({"name": "kube-api-access", "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True})
    return volumes, mounts
