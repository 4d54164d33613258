"""The server's non-secret configuration, as ``AUTHSERVER_*`` variables the pods read through envFrom.

Secrets never go here: the database URL, the admin token and the session secret reach the pods through
secretKeyRef (see ``deployment.py``). The hash of this data is stamped on the pod template, so that any
configuration change rolls the pods.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from authyard_operator.constants import SHUTDOWN_DRAIN_SECONDS, SHUTDOWN_TIMEOUT_SECONDS
from authyard_operator.endpoints import effective_issuer
from authyard_operator.resources import identity_providers
from authyard_operator.resources.meta import Names, object_meta
from authyard_operator.resources.trusted_issuers import TRUSTED_ISSUERS_FILE, trusts_any_issuer
from authyard_operator.sizing import PoolSizing
from authyard_operator.spec.authserver import AuthServerSpec

KEYS_DIR = "/etc/authserver/keys"
KEYS_FILE_NAME = "signing-keys.json"
BACKCHANNEL_CA_DIR = "/etc/authserver/backchannel-ca"  # spec.backchannelLogout.trustedCA, mounted
BACKCHANNEL_CA_FILE_NAME = "ca.crt"
DATA_DIR = "/var/lib/authserver"
SQLITE_URL = f"sqlite+aiosqlite:///{DATA_DIR}/authserver.db"


def server_config(name: str, namespace: str, spec: AuthServerSpec, sizing: PoolSizing) -> dict[str, str]:
    config = {
        "AUTHSERVER_ISSUER": effective_issuer(name, namespace, spec),
        "AUTHSERVER_DB_POOL_MIN_SIZE": str(sizing.per_worker_min),
        "AUTHSERVER_DB_POOL_MAX_SIZE": str(sizing.per_worker_max),
        # PgBouncer in transaction pooling hands each transaction to any server connection, where the
        # statements asyncpg prepared earlier do not exist.
        "AUTHSERVER_DB_STATEMENT_CACHE": "false" if spec.uses_pgbouncer else "true",
        # Migrations run in the init container; only the embedded database also migrates on start.
        "AUTHSERVER_DB_AUTO_MIGRATE": "true" if spec.embedded else "false",
        "AUTHSERVER_ACCESS_TOKEN_TTL": spec.tokens.access_token_ttl,
        "AUTHSERVER_REFRESH_TOKEN_TTL": spec.tokens.refresh_token_ttl,
        "AUTHSERVER_LOGIN_SESSION_TTL": spec.sessions.lifetime,
        "AUTHSERVER_SESSION_IDLE_TIMEOUT": spec.sessions.idle_timeout,
        "AUTHSERVER_LOGIN_MAX_FAILURES_PER_ACCOUNT": str(spec.sign_in.max_failures_per_account),
        "AUTHSERVER_LOGIN_MAX_FAILURES_PER_ADDRESS": str(spec.sign_in.max_failures_per_address),
        "AUTHSERVER_LOGIN_FAILURE_WINDOW": spec.sign_in.failure_window,
        "AUTHSERVER_LOGIN_LOCKOUT": spec.sign_in.lockout,
        "AUTHSERVER_TRUSTED_PROXIES": ",".join(spec.sign_in.trusted_proxies),
        # Budgets for the whole AuthServer as written: each worker divides them by the live workers it
        # counts, so nothing here depends on replicas or workers.
        "AUTHSERVER_TOKEN_RATE_PER_CLIENT": _number(spec.rate_limits.per_client.requests_per_second),
        "AUTHSERVER_TOKEN_BURST_PER_CLIENT": str(spec.rate_limits.per_client.burst),
        "AUTHSERVER_TOKEN_RATE_PER_IP": _number(spec.rate_limits.per_address.requests_per_second),
        "AUTHSERVER_TOKEN_BURST_PER_IP": str(spec.rate_limits.per_address.burst),
        "AUTHSERVER_PASSWORD_MIN_LENGTH": str(spec.sign_in.password_policy.min_length),
        "AUTHSERVER_PASSWORD_MAX_LENGTH": str(spec.sign_in.password_policy.max_length),
        "AUTHSERVER_PASSWORD_REJECT_ACCOUNT_NAMES": str(
            spec.sign_in.password_policy.reject_account_names
        ).lower(),
        "AUTHSERVER_SIGNING_ALGORITHM": spec.tokens.signing_algorithm,
        "AUTHSERVER_ID_TOKEN_SIGNING_ALGORITHM": spec.tokens.id_token_signing_algorithm,
        "AUTHSERVER_SIGNING_KEYS_FILE": f"{KEYS_DIR}/{KEYS_FILE_NAME}",
        "AUTHSERVER_GENERATE_SIGNING_KEYS": "false",  # the operator owns the keys (and their rotation)
        "AUTHSERVER_SHUTDOWN_DRAIN": f"{SHUTDOWN_DRAIN_SECONDS}s",
        "AUTHSERVER_SHUTDOWN_TIMEOUT": f"{SHUTDOWN_TIMEOUT_SECONDS}s",
    }
    if spec.backchannel_logout.trusted_ca is not None:
        config["AUTHSERVER_BACKCHANNEL_LOGOUT_CA_FILE"] = f"{BACKCHANNEL_CA_DIR}/{BACKCHANNEL_CA_FILE_NAME}"
    if identity_providers.wanted(spec):
        config["AUTHSERVER_IDENTITY_PROVIDERS_FILE"] = (
            f"{identity_providers.IDENTITY_PROVIDERS_DIR}/{identity_providers.DOCUMENT_NAME}"
        )
    if trusts_any_issuer(spec):
        config["AUTHSERVER_TRUSTED_ISSUERS_FILE"] = TRUSTED_ISSUERS_FILE
    if spec.embedded:
        config["AUTHSERVER_DATABASE_URL"] = SQLITE_URL
    else:
        config["AUTHSERVER_DB_WRITE_CONNECTIONS"] = str(sizing.write_connections)
    return config


def render_configmap(name: str, namespace: str, spec: AuthServerSpec, sizing: PoolSizing) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(Names(name).config, namespace, name),
        "data": server_config(name, namespace, spec, sizing),
    }


def config_hash(*documents: Any) -> str:
    """A short, stable digest of the given JSON-able documents."""
    canonical = json.dumps(documents, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _number(value: float) -> str:
    """A rate as the server reads it: 200 rather than 200.0."""
    return str(int(value)) if value == int(value) else repr(value)
