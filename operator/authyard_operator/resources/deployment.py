"""The auth server Deployment: the pods, their configuration, probes and hardening.

What the pods run is the auth server's contract: ``authserver migrate`` as an init container, then
``authserver serve``; configuration from the ConfigMap (envFrom) and Secrets (secretKeyRef); the signing
keys as a mounted Secret *directory* (not subPath: the kubelet only refreshes whole-volume mounts, and the
server reloads the file when a signing-key rotation lands).
"""

from __future__ import annotations

from typing import Any

from authyard_operator.capacity import CapacityPlan
from authyard_operator.constants import (
    CONFIG_HASH_ANNOTATION,
    DEFAULT_IMAGE,
    HTTP_PORT,
    PGBOUNCER_DATABASE_ALIAS,
    PGBOUNCER_PORT,
    SERVER_UID,
    TERMINATION_GRACE_PERIOD_SECONDS,
)
from authyard_operator.resources import identity_providers
from authyard_operator.resources.configmap import (
    BACKCHANNEL_CA_DIR,
    BACKCHANNEL_CA_FILE_NAME,
    DATA_DIR,
    KEYS_DIR,
)
from authyard_operator.resources.meta import Names, labels, object_meta, selector_labels
from authyard_operator.resources.secrets import ADMIN_TOKEN_KEY, SESSION_SECRET_KEY
from authyard_operator.resources.trusted_issuers import issuer_volumes
from authyard_operator.sizing import PoolSizing
from authyard_operator.spec.authserver import AuthServerSpec

# Inside a pod the server must listen on every interface for the kubelet's probes and the Service.
SERVE = ["authserver", "serve", "--host", "0.0.0.0", "--port", str(HTTP_PORT)]  # noqa: S104
DEFAULT_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "256Mi"},
}


def container_security_context(uid: int = SERVER_UID) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context(uid: int = SERVER_UID) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,  # the SQLite volume and the keys Secret become readable/writable by the server
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_resources(spec: AuthServerSpec, plan: CapacityPlan | None = None) -> dict[str, Any]:
    """spec.resources or the defaults; a capacity plan sets the CPU request (the rules keep it out of
    spec.resources)."""
    if spec.resources is None:
        result = {kind: dict(values) for kind, values in DEFAULT_RESOURCES.items()}
    else:
        result = {}
        if spec.resources.requests:
            result["requests"] = dict(spec.resources.requests)
        if spec.resources.limits:
            result["limits"] = dict(spec.resources.limits)
    if plan is not None:
        result["requests"] = {**result.get("requests", {}), "cpu": plan.cpu_request}
    return result


def _env(name: str, namespace: str, spec: AuthServerSpec) -> list[dict[str, Any]]:
    """Variables from Secrets (never in the ConfigMap)."""
    admin = Names(name).admin
    env: list[dict[str, Any]] = []
    if spec.database is not None:
        ref = spec.database.url_secret_ref
        env.append(
            {
                "name": "AUTHSERVER_DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
            }
        )
    env += [
        {
            "name": "AUTHSERVER_ADMIN_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": admin, "key": ADMIN_TOKEN_KEY}},
        },
        {
            "name": "AUTHSERVER_SESSION_SECRET",
            "valueFrom": {"secretKeyRef": {"name": admin, "key": SESSION_SECRET_KEY}},
        },
    ]
    return env


def pgbouncer_overrides(name: str, namespace: str) -> list[dict[str, Any]]:
    """Point the server (not the migration, which needs a session: advisory locks, DDL) at PgBouncer,
    keeping the credentials in the user's URL Secret. PgBouncer listens without TLS inside the cluster."""
    return [
        {"name": "AUTHSERVER_DATABASE_HOST_OVERRIDE", "value": f"{Names(name).pgbouncer}.{namespace}.svc"},
        {"name": "AUTHSERVER_DATABASE_PORT_OVERRIDE", "value": str(PGBOUNCER_PORT)},
        {"name": "AUTHSERVER_DATABASE_NAME_OVERRIDE", "value": PGBOUNCER_DATABASE_ALIAS},
        {"name": "AUTHSERVER_DATABASE_SSL_OVERRIDE", "value": "disable"},
    ]


def _volumes(name: str, spec: AuthServerSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    names = Names(name)
    volumes: list[dict[str, Any]] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        {"name": "signing-keys", "secret": {"secretName": names.signing_keys, "defaultMode": 0o440}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the pod's own emptyDir
        {"name": "signing-keys", "mountPath": KEYS_DIR, "readOnly": True},
    ]
    if spec.embedded:
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": names.data}})
        mounts.append({"name": "data", "mountPath": DATA_DIR})
    trusted_ca = spec.backchannel_logout.trusted_ca
    if trusted_ca is not None:
        items = [{"key": trusted_ca.key, "path": BACKCHANNEL_CA_FILE_NAME}]
        volumes.append({"name": "backchannel-ca", "configMap": {"name": trusted_ca.name, "items": items}})
        mounts.append({"name": "backchannel-ca", "mountPath": BACKCHANNEL_CA_DIR, "readOnly": True})
    if identity_providers.wanted(spec):
        volume, mount = identity_providers.volume(name, spec)
        volumes.append(volume)
        mounts.append(mount)
    issuer_volumes_, issuer_mounts = issuer_volumes(name, spec)
    return volumes + issuer_volumes_, mounts + issuer_mounts


def _strategy(spec: AuthServerSpec, sizing: PoolSizing) -> dict[str, Any]:
    if spec.embedded:
        return {"type": "Recreate"}  # one writer on a ReadWriteOnce volume
    if sizing.allows_surge:
        return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    # An extra pod would open connections beyond the budget: replace pods one by one instead.
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def render_deployment(
    name: str,
    namespace: str,
    spec: AuthServerSpec,
    sizing: PoolSizing,
    config_hash: str,
    plan: CapacityPlan | None = None,
) -> dict[str, Any]:
    names = Names(name)
    image = spec.image or DEFAULT_IMAGE
    env = _env(name, namespace, spec)
    env_from = [{"configMapRef": {"name": names.config}}]
    volumes, mounts = _volumes(name, spec)
    resources = container_resources(spec, plan)
    server_env = env + (pgbouncer_overrides(name, namespace) if spec.uses_pgbouncer else [])
    migrate = {
        "name": "migrate",
        "image": image,
        "command": ["authserver", "migrate"],
        "envFrom": env_from,
        "env": env,
        "resources": resources,
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }
    server = {
        "name": "authserver",
        "image": image,
        "command": [*SERVE, "--workers", str(spec.workers)],
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "envFrom": env_from,
        "env": server_env,
        "resources": resources,
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
        # The startup probe covers a slow first start (migrations on SQLite); liveness then restarts a hung
        # server, readiness takes it out of the Service while its database is unreachable.
        "startupProbe": _probe("/healthz", 2, 60),
        "livenessProbe": _probe("/healthz", 10, 3),
        "readinessProbe": _probe("/readyz", 5, 3),
    }
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": selector_labels(name)},
        "strategy": _strategy(spec, sizing),
        "revisionHistoryLimit": 5,
        "template": {
            "metadata": {"labels": labels(name), "annotations": {CONFIG_HASH_ANNOTATION: config_hash}},
            "spec": {
                "serviceAccountName": names.server,
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": pod_security_context(),
                "terminationGracePeriodSeconds": TERMINATION_GRACE_PERIOD_SECONDS,
                "initContainers": [migrate],
                "containers": [server],
                "volumes": volumes,
                "topologySpreadConstraints": [
                    {
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway",
                        "labelSelector": {"matchLabels": selector_labels(name)},
                    }
                ],
            },
        },
    }
    if not spec.autoscaled:
        # With an HPA the field is left out entirely: whoever sets it under server-side apply owns it, and the
        # operator must not fight the HPA over the replica count.
        deployment_spec = {"replicas": spec.replicas, **deployment_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(names.server, namespace, name),
        "spec": deployment_spec,
    }
