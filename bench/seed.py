"""What the scenarios need: clients through the admin API, a user, and consumable credentials in bulk.

Refresh tokens and authorization codes are written straight into the database through the server's own
storage layer (its engine, its tables, its hashing), in one transaction with executemany, because the
consuming scenarios need tens of thousands of them and the HTTP flows that make them are what we measure.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import insert

from authserver.config import Settings
from authserver.crypto.client_secrets import hash_secret
from authserver.crypto.opaque_tokens import new_opaque_token, token_hash
from authserver.crypto.refresh_token_values import new_family_id, new_refresh_token
from authserver.protocol.pkce import s256
from authserver.storage.backends import store_for
from authserver.storage.engine import create_engine
from authserver.storage.tables import AuthorizationCodeRow, ClientRow, RefreshFamilyRow
from harness.accounts import new_user

SERVICE_CLIENT_ID = "bench-service"
WEB_CLIENT_ID = "bench-web"
KEY_CLIENT_ID = "bench-private-key-jwt"  # authenticates with private_key_jwt (RFC 7523 §2.2)
# KEY_CLIENT_ID's signing keys, one per assertion algorithm the benchmark measures: RS256 (what Authlib,
# Spring Security and Keycloak sign client assertions with unless told otherwise) and ES256.
KEY_IDS = {"RS256": "bench-assertion-rs256", "ES256": "bench-assertion-es256"}
WORKLOAD_CLIENT_ID = "bench-workload"  # authenticates with a projected service-account token
GATEWAY_CLIENT_ID = "bench-gateway"  # exchanges its access tokens (RFC 8693)
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - RFC 8693's grant name
SERVICE_SCOPE = "bench.read"
USER_SCOPE = "openid profile"
REDIRECT_URI = "http://127.0.0.1:9/callback"
USERNAME = "bench-user"
_BATCH = 5000
_codes_table = AuthorizationCodeRow.__table__  # type: ignore[attr-defined]
_refresh_table = RefreshFamilyRow.__table__  # type: ignore[attr-defined]
_clients_table = ClientRow.__table__  # type: ignore[attr-defined]
MANY_CLIENTS_PREFIX = "bench-service-"


@dataclass(frozen=True)
class Credentials:
    """The secrets of one benchmark database: made once, kept in memory only."""

    admin_token: str
    service_secret: str
    web_secret: str
    password: str
    assertion_keys: dict[str, Any]  # KEY_CLIENT_ID's signing key per algorithm (KEY_IDS)
    gateway_secret: str

    @staticmethod
    def generate() -> Credentials:
        return Credentials(
            admin_token=secrets.token_urlsafe(32),
            service_secret=secrets.token_urlsafe(32),  # 43 characters: the admin API's minimum
            web_secret=secrets.token_urlsafe(32),
            password=secrets.token_urlsafe(16),
            assertion_keys={
                "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
                "ES256": ec.generate_private_key(ec.SECP256R1()),
            },
            gateway_secret=secrets.token_urlsafe(32),
        )

    @property
    def public_jwks(self) -> dict[str, object]:
        keys = []
        for algorithm, key in self.assertion_keys.items():
            jwk = jwt.get_algorithm_by_name(algorithm).to_jwk(key.public_key(), as_dict=True)
            keys.append({**jwk, "kid": KEY_IDS[algorithm], "use": "sig", "alg": algorithm})
        return {"keys": keys}

    @staticmethod
    def basic(client_id: str, secret: str) -> str:
        return base64.b64encode(f"{client_id}:{secret}".encode()).decode()

    @property
    def service_basic(self) -> str:
        return self.basic(SERVICE_CLIENT_ID, self.service_secret)

    @property
    def web_basic(self) -> str:
        return self.basic(WEB_CLIENT_ID, self.web_secret)

    @property
    def gateway_basic(self) -> str:
        return self.basic(GATEWAY_CLIENT_ID, self.gateway_secret)


def register_clients(base_url: str, credentials: Credentials, workload_subject: str | None = None) -> None:
    """Idempotent PUTs: the same clients (and secrets) on every server start against a database."""
    registrations = {
        SERVICE_CLIENT_ID: {
            "name": "Benchmark service",
            "grant_types": ["client_credentials"],
            "scopes": [SERVICE_SCOPE],
            "client_secret": credentials.service_secret,
        },
        WEB_CLIENT_ID: {
            "name": "Benchmark web app",
            "grant_types": ["authorization_code", "refresh_token"],
            "scopes": USER_SCOPE.split(),
            "redirect_uris": [REDIRECT_URI],
            "client_secret": credentials.web_secret,
        },
        KEY_CLIENT_ID: {
            "name": "Benchmark service with private_key_jwt",
            "grant_types": ["client_credentials"],
            "scopes": [SERVICE_SCOPE],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": credentials.public_jwks,
        },
        GATEWAY_CLIENT_ID: {
            "name": "Benchmark gateway (token exchange)",
            "grant_types": ["client_credentials", TOKEN_EXCHANGE],
            "scopes": [SERVICE_SCOPE],
            "client_secret": credentials.gateway_secret,
            "token_exchange": {"allow_impersonation": True},
        },
    }
    if workload_subject is not None:  # the server trusts the benchmark's issuer (bench/workload_issuer.py)
        registrations[WORKLOAD_CLIENT_ID] = {
            "name": "Benchmark workload (service-account token)",
            "grant_types": ["client_credentials"],
            "scopes": [SERVICE_SCOPE],
            "token_endpoint_auth_method": "workload_identity",
            "workload_identity": {"issuer": "kubernetes", "subject": workload_subject},
        }
    headers = {"Authorization": f"Bearer {credentials.admin_token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10.0) as client:
        for client_id, body in registrations.items():
            response = client.put(f"/admin/clients/{client_id}", json=body)
            if response.status_code not in (200, 201):
                raise RuntimeError(f"PUT /admin/clients/{client_id}: {response.status_code} {response.text}")


def access_token(base_url: str, credentials: Credentials, basic: str | None = None) -> str:
    """A fresh client_credentials JWT (of the service client, or of the client ``basic`` names), to be
    introspected or exchanged."""
    response = httpx.post(
        f"{base_url}/token",
        data={"grant_type": "client_credentials", "scope": SERVICE_SCOPE},
        headers={"Authorization": f"Basic {basic or credentials.service_basic}"},
        timeout=10.0,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def issuer_of(base_url: str) -> str:
    metadata = httpx.get(f"{base_url}/.well-known/oauth-authorization-server", timeout=10.0)
    metadata.raise_for_status()
    return str(metadata.json()["issuer"])


def sign_client_assertions(
    base_url: str, credentials: Credentials, count: int, path: Path, algorithm: str = "RS256"
) -> None:
    """``count`` private_key_jwt assertions of KEY_CLIENT_ID signed with ``algorithm``, each with its own jti
    (the server spends each once), valid for an hour, one per line of ``path``: signing is the client's
    cost, not measured."""
    metadata = httpx.get(f"{base_url}/.well-known/oauth-authorization-server", timeout=10.0)
    metadata.raise_for_status()
    audience = metadata.json()["token_endpoint"]
    now = int(datetime.now(UTC).timestamp())
    claims = {"iss": KEY_CLIENT_ID, "sub": KEY_CLIENT_ID, "aud": audience, "iat": now, "exp": now + 3600}
    headers = {"kid": KEY_IDS[algorithm]}
    key = credentials.assertion_keys[algorithm]
    with path.open("w") as out:
        for _ in range(count):
            claims["jti"] = secrets.token_urlsafe(16)
            out.write(jwt.encode(claims, key, algorithm, headers) + "\n")


def _settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)  # type: ignore[call-arg]


async def ensure_user(database_url: str, password: str) -> str:
    """The login user (argon2id hash, through the store); its user_id."""
    engine = create_engine(_settings(database_url))
    try:
        store = store_for(engine)
        existing = await store.get_user_by_username(USERNAME)
        if existing is not None:
            return existing.user_id
        user = new_user(USERNAME, password, email="bench@example.org", name="Bench User")
        await store.create_user(user)
        return user.user_id
    finally:
        await engine.dispose()


async def _insert_all(database_url: str, table: object, rows: list[dict[str, object]]) -> None:
    engine = create_engine(_settings(database_url))
    try:
        async with engine.begin() as connection:
            for start in range(0, len(rows), _BATCH):
                await connection.execute(insert(table), rows[start : start + _BATCH])  # type: ignore[arg-type]
        # Tens of thousands of rows in one transaction is the benchmark's doing, not the server's: write
        # them to the database files and sync them now, rather than during the measured run, where the
        # disk's writeback would stall its commits (SQLite: out of the write-ahead log; PostgreSQL: its
        # dirty buffers, which the checkpointer would otherwise write out while wrk runs).
        statement = "PRAGMA wal_checkpoint(TRUNCATE)" if engine.dialect.name == "sqlite" else "CHECKPOINT"
        async with engine.connect() as connection:
            await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


def service_client_rows(count: int, now: datetime) -> tuple[list[dict[str, object]], list[str]]:
    """``count`` confidential client_credentials clients as rows of the clients table (what the admin API
    writes for SERVICE_CLIENT_ID, each with its own secret) and, in the same order, each one's
    ``base64(id:secret)`` for a Basic header (RFC 6749 §2.3.1)."""
    rows, basics = [], []
    for index in range(count):
        client_id, secret = f"{MANY_CLIENTS_PREFIX}{index:06d}", secrets.token_urlsafe(32)
        rows.append(
            {
                "client_id": client_id,
                "name": f"Benchmark service {index}",
                "client_type": "confidential",
                "token_endpoint_auth_method": None,
                "grant_types": ["client_credentials"],
                "scopes": [SERVICE_SCOPE],
                "audiences": [],
                "redirect_uris": [],
                "post_logout_redirect_uris": [],
                "secret_hash": hash_secret(secret),
                "require_pkce": True,
                "skip_consent": False,
                "backchannel_logout_session_required": False,
                "created_at": now,
                "updated_at": now,
            }
        )
        basics.append(Credentials.basic(client_id, secret))
    return rows, basics


def seed_service_clients(database_url: str, count: int, path: Path) -> None:
    """``count`` client_credentials clients straight into the database (the admin API would take minutes
    for 10,000); their Basic credentials to ``path``, one per line."""
    rows, basics = service_client_rows(count, datetime.now(UTC))
    asyncio.run(_insert_all(database_url, _clients_table, rows))
    path.write_text("\n".join(basics) + "\n")


def seed_refresh_tokens(database_url: str, count: int, user_id: str, audience: str, path: Path) -> None:
    """``count`` live refresh tokens of the web client, each its own family; their values to ``path``."""
    now = datetime.now(UTC)
    expires_at = now + timedelta(hours=1)
    values, rows = [], []
    for _ in range(count):
        family_id = new_family_id()
        value, secret_hash = new_refresh_token(family_id)
        rows.append(
            {
                "family_id": family_id,
                "secret_hash": secret_hash,
                "client_id": WEB_CLIENT_ID,
                "user_id": user_id,
                "scope": USER_SCOPE,
                "audience": audience,
                "auth_time": int(now.timestamp()),
                "issued_at": now,
                "rotated_at": None,
                "expires_at": expires_at,
                "revoked": False,
            }
        )
        values.append(value)
    asyncio.run(_insert_all(database_url, _refresh_table, rows))
    path.write_text("\n".join(values) + "\n")


def seed_authorization_codes(database_url: str, count: int, user_id: str, audience: str, path: Path) -> None:
    """``count`` unused codes of the web client (PKCE S256, each its own verifier); "code verifier" lines
    to ``path``. They expire in 10 minutes (the server's default TTL is 60 s: seeded right before a run)."""
    now = datetime.now(UTC)
    expires_at = now + timedelta(minutes=10)
    lines, rows = [], []
    for _ in range(count):
        code, verifier = new_opaque_token(), secrets.token_urlsafe(32)
        rows.append(
            {
                "code_hash": token_hash(code),
                "client_id": WEB_CLIENT_ID,
                "user_id": user_id,
                "redirect_uri": REDIRECT_URI,
                "scope": USER_SCOPE,
                "audience": audience,
                "code_challenge": s256(verifier),
                "nonce": None,
                "auth_time": int(now.timestamp()),
                "expires_at": expires_at,
                "consumed_at": None,
                "family_id": None,
            }
        )
        lines.append(f"{code} {verifier}")
    asyncio.run(_insert_all(database_url, _codes_table, rows))
    path.write_text("\n".join(lines) + "\n")
