"""The whole OAuthClient path, for the integration and fault tests: the operator (in-process or a child
process) against the emulated API, an AuthServer it reconciled, and the auth server that AuthServer
describes run for real (``harness.operator.served_authserver``).

Also the secrets scan: ``leaked_secrets(stack)`` collects every client secret, admin token, session secret
and private signing key that ever existed (every stored version of every Secret, what the tests handled,
the server's own key file) and looks for each of them in every version of every custom resource (status
included), every Event, the operator's log and the auth server's log.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import harness.operator
from harness.authserver import AuthServer
from harness.kube import AUTHSERVERS, OAUTHCLIENTS
from harness.kube_emulator import AuthyardEmulator
from harness.operator import (
    PLATFORM,
    TEAM,
    OperatorProcess,
    ready_condition,
    registered_client_ids,
    served_authserver,
)
from harness.postgres import PostgresCluster
from tests.operator.kopf_harness import OperatorRun
from tests.operator.kubeapi import KubeApi

# Data keys of the Secrets the operator writes whose values are secrets (the signing keys are JSON).
SECRET_KEYS = ("client_secret", "next_client_secret", "OAUTH_CLIENT_SECRET", "token", "session-secret")
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")
MIN_SECRET_LENGTH = 16  # shorter values are not generated secrets, and would match by accident

Operator = OperatorRun | OperatorProcess


def clients_path(namespace: str = TEAM) -> str:
    return f"/apis/authyard.dev/v1alpha1/namespaces/{namespace}/oauthclients"


def oauthclient(name: str, namespace: str = TEAM, **spec: Any) -> dict[str, Any]:
    """A client_credentials OAuthClient of ``platform/auth`` with an audience; ``spec`` overrides."""
    return harness.operator.oauthclient(
        name, namespace, **{"audiences": ["https://orders.example.com"], **spec}
    )


async def token(credentials: dict[str, str], secret: str | None = None) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            credentials["token_endpoint"],
            data={"grant_type": "client_credentials"},
            auth=(credentials["client_id"], secret or credentials["client_secret"]),
        )


def decoded(secret: dict[str, Any] | None) -> dict[str, str]:
    return {
        key: base64.b64decode(value).decode(errors="replace")
        for key, value in ((secret or {}).get("data") or {}).items()
    }


@dataclass
class Stack:
    emulator: AuthyardEmulator
    kube: KubeApi
    operator: Operator
    server: AuthServer
    admin_token: str
    # Secrets the test handled (e.g. read before a rotation replaced them); the scan looks for these too.
    seen_secrets: set[str] = field(default_factory=set)

    def client(self, name: str, namespace: str = TEAM) -> dict[str, Any] | None:
        return self.emulator.get(OAUTHCLIENTS, namespace, name)

    def client_status(self, name: str, namespace: str = TEAM) -> dict[str, Any]:
        return (self.client(name, namespace) or {}).get("status") or {}

    def ready(self, name: str, namespace: str = TEAM) -> dict[str, Any]:
        return ready_condition(self.client(name, namespace))

    def is_ready(self, name: str, namespace: str = TEAM) -> bool:
        client = self.client(name, namespace)
        condition = ready_condition(client)
        generation = (client or {}).get("metadata", {}).get("generation")
        return condition.get("status") == "True" and condition.get("observedGeneration") == generation

    def secret(self, name: str, namespace: str = TEAM) -> dict[str, str]:
        data = decoded(self.emulator.get("v1/secrets", namespace, name))
        self.seen_secrets.update(data.get(key, "") for key in SECRET_KEYS)
        return data

    async def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.server.base_url) as http:
            return await http.request(
                method, path, headers={"Authorization": f"Bearer {self.admin_token}"}, **kwargs
            )

    async def registered_ids(self) -> list[str]:
        """Every client_id the auth server has (all pages of the admin API's list)."""
        return await registered_client_ids(self.server.base_url, self.admin_token)

    async def start_server(self) -> None:
        """(Re)start the auth server process on its port and database; waits until it is ready."""
        await asyncio.to_thread(self.server.start)

    async def stop_server(self) -> None:
        await asyncio.to_thread(self.server.stop)


@contextlib.asynccontextmanager
async def running_stack(
    emulator: AuthyardEmulator,
    kube: KubeApi,
    postgres_cluster: PostgresCluster,
    directory: Path,
    start_operator: Callable[[str], Awaitable[Operator]],
    *,
    workers: int = 1,
    server_env: Mapping[str, str] | None = None,
) -> AsyncIterator[Stack]:
    """Yield a Stack whose AuthServer ``platform/auth`` is Ready and served for real.

    ``start_operator(issuer)`` starts the operator with the admin API at ``issuer``. The server runs
    ``workers`` worker processes; ``server_env`` adds to or overrides its configuration. On exit the server
    stops, the operator stops (so that its whole log is in ``output``), and -- unless the test failed
    already -- the secrets scan runs: nothing secret may appear in any CR, Event or log."""
    for namespace in (PLATFORM, TEAM, "team-b"):
        emulator.create_namespace(namespace)
    settings = {"AUTHSERVER_TOKEN_RATE_PER_CLIENT": "0", "AUTHSERVER_CLIENT_CACHE_TTL": "0s"}
    settings.update(server_env or {})
    served = served_authserver(
        emulator, postgres_cluster, directory, start_operator, workers=workers, **settings
    )
    async with served as running:
        stack = Stack(emulator, kube, running.operator, running.server, running.admin_token)
        try:
            yield stack
        finally:
            await stack.stop_server()
            await stack.operator.stop()
    leaks = leaked_secrets(stack)
    assert not leaks, "secrets leaked:\n" + "\n".join(leaks)


# --- the secrets scan ---------------------------------------------------------------------------------


def _private_jwk_values(text: str) -> set[str]:
    try:
        document = json.loads(text)
    except ValueError:
        return set()
    keys = document.get("keys") if isinstance(document, dict) else None
    return {
        str(key[member])
        for key in keys or []
        if isinstance(key, dict)
        for member in PRIVATE_JWK_MEMBERS
        if member in key
    }


def known_secrets(emulator: AuthyardEmulator, extra: Iterable[str] = ()) -> dict[str, str]:
    """Every secret value that existed, mapped to a description of where it came from (never the value:
    the description goes into assertion messages)."""
    found: dict[str, str] = {}
    for version in emulator.history("v1/secrets"):
        meta = version.get("metadata", {})
        where = f"Secret {meta.get('namespace')}/{meta.get('name')}"
        for key, value in decoded(version).items():
            if key in SECRET_KEYS:
                found.setdefault(value, f"{where} key {key}")
            for private in _private_jwk_values(value):
                found.setdefault(private, f"{where} private signing key")
    for value in extra:
        found.setdefault(value, "a secret the test handled")
    return {value: where for value, where in found.items() if len(value) >= MIN_SECRET_LENGTH}


def scanned_texts(emulator: AuthyardEmulator, operator_log: str, server_log: str) -> dict[str, str]:
    """Everything the operator side publishes: every version of every custom resource (status included),
    every Event, the operator's log and the auth server's log."""
    texts = {
        "AuthServer/OAuthClient objects and status": json.dumps(
            emulator.history(AUTHSERVERS) + emulator.history(OAUTHCLIENTS)
        ),
        "Events": json.dumps(emulator.history("v1/events")),
        "operator log": operator_log,
        "auth server log": server_log,
    }
    return texts


def find_leaks(secrets: dict[str, str], texts: dict[str, str]) -> list[str]:
    leaks = []
    for value, origin in secrets.items():
        encoded = base64.b64encode(value.encode()).decode()
        for name, text in texts.items():
            if value in text or encoded in text:
                leaks.append(f"{origin} appears in the {name}")
    return leaks


def leaks_in(
    emulator: AuthyardEmulator,
    operator_log: str,
    server_log: str = "",
    handled: Iterable[str] = (),
    *,
    expect_client_secrets: bool = True,
) -> list[str]:
    """Every place a known secret appears (empty: none leaked). Also checks that the scan is not vacuous:
    there were secrets to look for and logs to look in."""
    secrets = known_secrets(emulator, handled)
    texts = scanned_texts(emulator, operator_log, server_log)
    origins = " ".join(secrets.values())
    assert "private signing key" in origins and "key token" in origins, "no admin token or private key"
    if expect_client_secrets:
        assert "client_secret" in origins.lower(), "no client secret to look for"
    assert texts["Events"] != "[]" and operator_log.strip(), "nothing to scan"
    if not server_log:
        del texts["auth server log"]
    return find_leaks(secrets, texts)


def leaked_secrets(stack: Stack) -> list[str]:
    stack.server.remember_private_keys()
    server_log = stack.server.log_text()
    assert server_log.strip(), "no auth server log to scan"
    handled = stack.seen_secrets | stack.server.seen_secrets | {stack.admin_token}
    return leaks_in(stack.emulator, stack.operator.output, server_log, handled)
