"""PgBouncer between the server pods and PostgreSQL: transaction pooling, sized from the budget.

Four objects: a ConfigMap with ``pgbouncer.ini`` (no secrets), a Secret with the ``[databases]`` section and
the ``userlist.txt`` (derived from the user's database URL Secret, which the operator reads), a Deployment
and a Service. The pods keep connecting with the user's URL; only its host and port are overridden to this
Service (see ``deployment.pgbouncer_overrides``). Clients authenticate to PgBouncer with the database
user's own password (SCRAM, checked against the plaintext auth file), and PgBouncer logs in to PostgreSQL
with the same credentials.

The files stay inside what both PgBouncer 1.18 (Debian's, which the tests run) and the default image's 1.24
accept: bare keys of ``[A-Za-z0-9_.*-]`` (the database is reached through a fixed alias), libpq-quoted
values, and only settings both versions know. The one difference in behaviour: 1.24 supports protocol-level
prepared statements and turns them on by default (``max_prepared_statements``, unknown to 1.18, so not set
here); the pods keep asyncpg's statement cache off behind PgBouncer anyway, so both versions see the same
traffic.
"""

from __future__ import annotations

import base64
from typing import Any

from authyard_operator.constants import (
    CONFIG_HASH_ANNOTATION,
    DEFAULT_PGBOUNCER_IMAGE,
    PGBOUNCER_DATABASE_ALIAS,
    PGBOUNCER_PORT,
    PGBOUNCER_UID,
)
from authyard_operator.dburl import DatabaseUrl
from authyard_operator.resources.deployment import container_security_context, pod_security_context
from authyard_operator.resources.meta import PGBOUNCER, Names, labels, object_meta, selector_labels
from authyard_operator.sizing import PoolSizing
from authyard_operator.spec.authserver import AuthServerSpec

# Side by side, not nested: a mount point inside a read-only ConfigMap volume cannot be created.
CONFIG_DIR = "/etc/pgbouncer/config"
SECRET_DIR = "/etc/pgbouncer/secret"  # noqa: S105 - a path
INI_KEY = "pgbouncer.ini"
DATABASES_KEY = "databases.ini"
USERLIST_KEY = "userlist.txt"


def pgbouncer_ini(sizing: PoolSizing, database: DatabaseUrl) -> str:
    settings = {
        "listen_addr": "0.0.0.0",  # noqa: S104 - the pod network; the Service routes to it
        "listen_port": str(PGBOUNCER_PORT),
        "unix_socket_dir": "",  # no socket file: the root filesystem is read-only
        "pool_mode": "transaction",
        "auth_type": "scram-sha-256",
        "auth_file": f"{SECRET_DIR}/{USERLIST_KEY}",
        # Server side: what reaches PostgreSQL, bounded by the budget (sizing.py).
        "default_pool_size": str(sizing.pooler_pool_size),
        "max_db_connections": str(sizing.pooler_pool_size),
        "min_pool_size": str(max(1, sizing.pooler_pool_size // 4)),
        "reserve_pool_size": "0",
        # Client side: every server pod's pool may land on this instance.
        "max_client_conn": str(sizing.pooler_max_client_conn),
        "ignore_startup_parameters": "extra_float_digits",
        "server_reset_query": "",  # transaction pooling: nothing session-scoped survives a transaction
        "log_connections": "0",
        "log_disconnections": "0",
        # TLS to PostgreSQL follows the URL's sslmode (ssl= / sslmode=); inside the cluster, none to clients.
        "server_tls_sslmode": database.sslmode or "prefer",
    }
    lines = ["[pgbouncer]", *(f"{key} = {value}" for key, value in settings.items())]
    # The [databases] section holds the host and database names; it comes from the Secret.
    lines.append(f"%include {SECRET_DIR}/{DATABASES_KEY}")
    return "\n".join(lines) + "\n"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _quote_conn_value(value: str) -> str:
    # A libpq-style connection-string value: single quotes, backslash escapes.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def databases_ini(database: DatabaseUrl) -> str:
    options = [
        f"host={_quote_conn_value(database.host)}",
        f"port={database.port}",
        f"dbname={_quote_conn_value(database.database)}",
    ]
    section = ["[databases]", f"{PGBOUNCER_DATABASE_ALIAS} = {' '.join(options)}"]
    return "\n".join(section) + "\n"


def userlist(database: DatabaseUrl) -> str:
    def quoted(text: str) -> str:
        return '"' + text.replace('"', '""') + '"'

    return f"{quoted(database.user)} {quoted(database.password)}\n"


def render_pgbouncer_configmap(
    name: str, namespace: str, sizing: PoolSizing, database: DatabaseUrl
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(Names(name).pgbouncer, namespace, name, PGBOUNCER),
        "data": {INI_KEY: pgbouncer_ini(sizing, database)},
    }


def render_pgbouncer_secret(name: str, namespace: str, database: DatabaseUrl) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(Names(name).pgbouncer, namespace, name, PGBOUNCER),
        "type": "Opaque",
        "data": {DATABASES_KEY: _b64(databases_ini(database)), USERLIST_KEY: _b64(userlist(database))},
    }


def render_pgbouncer_deployment(
    name: str, namespace: str, spec: AuthServerSpec, sizing: PoolSizing, config_hash: str
) -> dict[str, Any]:
    assert spec.database is not None
    names = Names(name)
    container = {
        "name": "pgbouncer",
        "image": spec.database.pooler.image or DEFAULT_PGBOUNCER_IMAGE,
        "command": ["pgbouncer", f"{CONFIG_DIR}/{INI_KEY}"],
        "ports": [{"name": "pgbouncer", "containerPort": PGBOUNCER_PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": container_security_context(PGBOUNCER_UID),
        "readinessProbe": {"tcpSocket": {"port": "pgbouncer"}, "periodSeconds": 5},
        "livenessProbe": {"tcpSocket": {"port": "pgbouncer"}, "periodSeconds": 10, "failureThreshold": 3},
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "secret", "mountPath": SECRET_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - the pod's own emptyDir
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": object_meta(names.pgbouncer, namespace, name, PGBOUNCER),
        "spec": {
            "replicas": sizing.pooler_instances,
            "selector": {"matchLabels": selector_labels(name, PGBOUNCER)},
            # The budget bounds PgBouncer's server connections: never run an extra instance during a rollout.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "revisionHistoryLimit": 5,
            "template": {
                "metadata": {
                    "labels": labels(name, PGBOUNCER),
                    "annotations": {CONFIG_HASH_ANNOTATION: config_hash},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(PGBOUNCER_UID),
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": names.pgbouncer}},
                        {"name": "secret", "secret": {"secretName": names.pgbouncer, "defaultMode": 0o440}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}},
                    ],
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": selector_labels(name, PGBOUNCER)},
                        }
                    ],
                },
            },
        },
    }


def render_pgbouncer_service(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(Names(name).pgbouncer, namespace, name, PGBOUNCER),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(name, PGBOUNCER),
            "ports": [
                {"name": "pgbouncer", "port": PGBOUNCER_PORT, "targetPort": "pgbouncer", "protocol": "TCP"}
            ],
        },
    }
