"""Bad custom resources (issue 7): every invalid AuthServer / OAuthClient spec is either refused by the CRD
schema with a message that names the field, or -- for what the OpenAPI schema cannot express (the CEL rules,
which the emulator does not evaluate, and the semantic checks only the operator can make) -- accepted and
reported by the operator as Ready=False with a reason and a message that names the field. Never a crash
loop: the operator keeps serving valid objects, and does not retry a permanently invalid spec at all.

The operator runs as a child process with the production resync intervals (60 s / 5 min) so that its
reconcile counter (``authyard_operator_reconciles_total`` on its metrics port) shows retries, not timers.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from harness.kube import AUTHSERVERS, OAUTHCLIENTS, custom_resource
from harness.kube_emulator import AuthyardEmulator
from harness.operator import (
    OPERATOR_SCRIPT,
    PLATFORM,
    TEAM,
    OperatorProcess,
    operator_process_env,
    ready_condition,
    scrape_reconciles,
)
from harness.polling import wait_for
from harness.postgres import PostgresCluster
from tests.operator.kubeapi import ApiException, KubeApi, api_error
from tests.operator.stack import Stack, clients_path, running_stack, token

SLOW_TIMERS = {"AUTHYARD_RESYNC_INTERVAL": "60s", "AUTHYARD_CLIENT_RESYNC_INTERVAL": "5m"}
DB = {"urlSecretRef": {"name": "auth-db", "key": "url"}, "maxConnections": 100}
REDIRECT = "https://app.example.com/callback"


def authserver(name: str, spec: dict[str, Any], namespace: str = PLATFORM) -> dict[str, Any]:
    return custom_resource("AuthServer", name, namespace, spec)


def client_spec(**changes: Any) -> dict[str, Any]:
    """A valid confidential client spec with ``changes`` (a value of None removes the field)."""
    spec: dict[str, Any] = {
        "authServerRef": {"name": "auth", "namespace": PLATFORM},
        "grantTypes": ["client_credentials"],
        "scopes": ["orders.read"],
        "audiences": ["https://orders.example.com"],
    }
    spec.update(changes)
    return {key: value for key, value in spec.items() if value is not None}


def oauthclient(name: str, spec: dict[str, Any], namespace: str = TEAM) -> dict[str, Any]:
    return custom_resource("OAuthClient", name, namespace, spec)


# --- refused by the CRD schema ----------------------------------------------------------------------------

# (kind, spec, the field the message must name)
SCHEMA_REJECTED: dict[str, tuple[str, dict[str, Any], str]] = {
    "zero-replicas": ("AuthServer", {"replicas": 0}, "spec.replicas"),
    "replicas-not-a-number": ("AuthServer", {"replicas": "three"}, "spec.replicas"),
    "too-many-workers": ("AuthServer", {"workers": 17}, "spec.workers"),
    "max-replicas-over-100": (
        "AuthServer",
        {"database": DB, "autoscaling": {"enabled": True, "maxReplicas": 101}},
        "spec.autoscaling.maxReplicas",
    ),
    "capacity-headroom-below-one": (
        "AuthServer",
        {"database": DB, "capacity": {"peakTokensPerSecond": 1000, "headroom": 0.5}},
        "spec.capacity.headroom",
    ),
    "capacity-without-a-peak": (
        "AuthServer",
        {"database": DB, "capacity": {"perPodTokensPerSecond": 1000}},
        "peakTokensPerSecond",
    ),
    "capacity-zero-cores": (
        "AuthServer",
        {"database": DB, "capacity": {"peakTokensPerSecond": 1000, "maxCores": 0}},
        "spec.capacity.maxCores",
    ),
    "issuer-trailing-slash": ("AuthServer", {"issuer": "https://auth.example.com/"}, "spec.issuer"),
    "issuer-not-http": ("AuthServer", {"issuer": "ftp://auth.example.com"}, "spec.issuer"),
    "hs256": ("AuthServer", {"tokens": {"signingAlgorithm": "HS256"}}, "spec.tokens.signingAlgorithm"),
    "ttl-in-words": (
        "AuthServer",
        {"tokens": {"accessTokenTTL": "15 minutes"}},
        "spec.tokens.accessTokenTTL",
    ),
    "database-without-budget": (
        "AuthServer",
        {"database": {"urlSecretRef": {"name": "db", "key": "url"}}},
        "maxConnections",
    ),
    "unknown-pooler": (
        "AuthServer",
        {"database": {**DB, "pooler": {"type": "pgpool"}}},
        "spec.database.pooler.type",
    ),
    "cpu-not-a-quantity": (
        "AuthServer",
        {"resources": {"requests": {"cpu": "lots"}}},
        "spec.resources.requests",
    ),
    "namespace-not-a-name": (
        "AuthServer",
        {"clientPolicy": {"allowedNamespaces": ["Team_A"]}},
        "spec.clientPolicy.allowedNamespaces",
    ),
    "no-authserver-ref": ("OAuthClient", client_spec(authServerRef=None), "authServerRef"),
    "authserver-ref-not-a-name": (
        "OAuthClient",
        client_spec(authServerRef={"name": "Auth"}),
        "spec.authServerRef.name",
    ),
    "unknown-type": ("OAuthClient", client_spec(type="secretive"), "spec.type"),
    "unknown-grant": ("OAuthClient", client_spec(grantTypes=["password"]), "spec.grantTypes"),
    "no-grant": ("OAuthClient", client_spec(grantTypes=[]), "spec.grantTypes"),
    "redirect-with-fragment": (
        "OAuthClient",
        client_spec(grantTypes=["authorization_code"], redirectUris=[f"{REDIRECT}#token"]),
        "spec.redirectUris",
    ),
    "redirect-not-absolute": (
        "OAuthClient",
        client_spec(grantTypes=["authorization_code"], redirectUris=["/callback"]),
        "spec.redirectUris",
    ),
    "scope-with-space": ("OAuthClient", client_spec(scopes=["orders read"]), "spec.scopes"),
    "secret-not-a-name": ("OAuthClient", client_spec(secret={"name": "Bad_Name"}), "spec.secret.name"),
    "unknown-secret-policy": (
        "OAuthClient",
        client_spec(secret={"name": "creds", "policy": "Maybe"}),
        "spec.secret.policy",
    ),
    "unknown-auth-method": (
        "OAuthClient",
        client_spec(tokenEndpointAuthMethod="private_key_jwt"),
        "spec.tokenEndpointAuthMethod",
    ),
    "ttl-forever": ("OAuthClient", client_spec(accessTokenTTL="forever"), "spec.accessTokenTTL"),
}


@pytest.mark.parametrize("case", list(SCHEMA_REJECTED))
async def test_the_crd_schema_refuses_with_a_message_naming_the_field(
    case: str, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    kind, spec, field = SCHEMA_REJECTED[case]
    emulator.create_namespace(PLATFORM)
    if kind == "AuthServer":
        path, body, resource = (
            f"/apis/authyard.dev/v1alpha1/namespaces/{PLATFORM}/authservers",
            authserver(case, spec),
            AUTHSERVERS,
        )
    else:
        path, body, resource = (
            f"/apis/authyard.dev/v1alpha1/namespaces/{PLATFORM}/oauthclients",
            oauthclient(case, spec, PLATFORM),
            OAUTHCLIENTS,
        )
    with pytest.raises(ApiException) as refused:
        await kube.post(path, body)
    status = api_error(refused.value)
    assert refused.value.status == 422 and status["reason"] == "Invalid", status
    assert field in status["message"], status["message"]
    assert f'{kind}.authyard.dev "{case}" is invalid' in status["message"]
    assert emulator.get(resource, PLATFORM, case) is None


# --- accepted by the schema, refused by the operator ------------------------------------------------------

# (spec, reason, what the message must name); "older-crd-*" are applied with schema validation off, as an
# older CRD or a cluster without CEL would let them through.
AUTHSERVERS_REPORTED: dict[str, tuple[dict[str, Any], str, str]] = {
    "min-over-max": (
        {"database": DB, "autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}},
        "InvalidSpec",
        "spec.autoscaling.minReplicas",
    ),
    "sqlite-three-replicas": ({"replicas": 3}, "InvalidSpec", "spec.replicas"),
    "sqlite-autoscaling": ({"autoscaling": {"enabled": True}}, "InvalidSpec", "spec.autoscaling.enabled"),
    "hpa-without-requests": (
        {"database": DB, "autoscaling": {"enabled": True}, "resources": {"limits": {"memory": "1Gi"}}},
        "InvalidSpec",
        "spec.resources.requests",
    ),
    "access-ttl-30s": ({"tokens": {"accessTokenTTL": "30s"}}, "InvalidSpec", "spec.tokens.accessTokenTTL"),
    "refresh-shorter-than-access": (
        {"tokens": {"refreshTokenTTL": "10m"}},
        "InvalidSpec",
        "spec.tokens.refreshTokenTTL",
    ),
    "rotation-every-10m": (
        {"tokens": {"keyRotationInterval": "10m"}},
        "InvalidSpec",
        "spec.tokens.keyRotationInterval",
    ),
    "idle-longer-than-the-session": (
        {"sessions": {"lifetime": "1h", "idleTimeout": "2h"}},
        "InvalidSpec",
        "spec.sessions.idleTimeout",
    ),
    "proxy-not-a-network": (
        {"signIn": {"trustedProxies": ["10.0.0.300/8"]}},
        "InvalidSpec",
        "spec.signIn.trustedProxies",
    ),
    "sessions-for-a-year": ({"sessions": {"lifetime": "8760h"}}, "InvalidSpec", "spec.sessions.lifetime"),
    "name-too-long-for-children-" + "x" * 30: ({}, "InvalidSpec", "metadata.name"),
    "over-budget": (
        {"database": {**DB, "maxConnections": 10}, "autoscaling": {"enabled": True, "maxReplicas": 20}},
        "PoolBudgetExceeded",
        "spec.database.maxConnections",
    ),
    "capacity-on-sqlite": ({"capacity": {"peakTokensPerSecond": 100}}, "InvalidSpec", "spec.capacity"),
    "capacity-beyond-cores": (
        {"database": DB, "capacity": {"peakTokensPerSecond": 50000, "maxCores": 4}},
        "CapacityUnreachable",
        "spec.capacity.maxCores",
    ),
    "writes-fill-the-pool": (
        {"database": {**DB, "maxConnections": 10, "writeConnections": 9}},
        "PoolBudgetExceeded",
        "spec.database.writeConnections",
    ),
    "missing-database-secret": (
        {"database": {**DB, "pooler": {"type": "pgbouncer"}}},
        "DatabaseSecretMissing",
        "spec.database.urlSecretRef",
    ),
    "missing-backchannel-ca": (
        {"backchannelLogout": {"trustedCA": {"name": "rp-ca", "key": "ca.crt"}}},
        "BackchannelCAMissing",
        "spec.backchannelLogout.trustedCA",
    ),
    "missing-upstream-client-secret": (
        {
            "identityProviders": {
                "providers": [
                    {
                        "name": "corp",
                        "displayName": "Corp",
                        "oidc": {
                            "issuer": "https://login.example.com",
                            "clientId": "authyard",
                            "clientSecretRef": {"name": "corp-oidc", "key": "client-secret"},
                        },
                    }
                ]
            }
        },
        "IdentityProviderInputMissing",
        "spec.identityProviders.providers[corp].oidc.clientSecretRef",
    ),
    "older-crd-replicas-three": ({"replicas": "three"}, "InvalidSpec", "spec.replicas"),
    "older-crd-unknown-algorithm": (
        {"tokens": {"signingAlgorithm": "HS256"}},
        "InvalidSpec",
        "signingAlgorithm",
    ),
}


async def apply_unvalidated(
    emulator: AuthyardEmulator, kube: KubeApi, path: str, body: dict[str, Any]
) -> None:
    emulator.validate_custom_resources = False
    try:
        await kube.post(path, body)
    finally:
        emulator.validate_custom_resources = True


def failures(counts: dict[tuple[str, str], float], kind: str) -> float:
    return counts.get((kind, "failure"), 0.0) + counts.get((kind, "error"), 0.0)


async def test_authserver_specs_only_the_operator_can_judge(
    operator_process, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    emulator.create_namespace(PLATFORM)
    env = operator_process_env("http://127.0.0.1:9", **SLOW_TIMERS)
    process: OperatorProcess = await operator_process(OPERATOR_SCRIPT, env=env)
    metrics_port = int(env["AUTHYARD_METRICS_PORT"])
    path = f"/apis/authyard.dev/v1alpha1/namespaces/{PLATFORM}/authservers"
    for name, (spec, _, _) in AUTHSERVERS_REPORTED.items():
        if name.startswith("older-crd-"):
            await apply_unvalidated(emulator, kube, path, authserver(name, spec))
        else:
            await kube.post(path, authserver(name, spec))

    for name, (_, reason, field) in AUTHSERVERS_REPORTED.items():
        ready = await wait_for(
            lambda n=name: ready_condition(emulator.get(AUTHSERVERS, PLATFORM, n)) or None,
            timeout=30,
            message=lambda n=name: f"{n} not reported: {emulator.get(AUTHSERVERS, PLATFORM, n)}",
        )
        assert (ready["status"], ready["reason"]) == ("False", reason), (name, ready)
        assert field in ready["message"], (name, ready["message"])
        assert any(
            e.get("type") == "Warning" and e.get("reason") == reason for e in emulator.events(name=name)
        )
        assert emulator.get("apps/v1/deployments", PLATFORM, name) is None, f"{name}: half-built"

    # The operator is alive and serving: a valid AuthServer applied now is reconciled at once, and not one
    # of the invalid ones is retried meanwhile (each was reconciled about once, then left alone).
    reported = await scrape_reconciles(metrics_port)
    assert failures(reported, "AuthServer") <= 2 * len(AUTHSERVERS_REPORTED), reported
    await kube.post(path, authserver("good", {}))
    await wait_for(
        lambda: emulator.get("apps/v1/deployments", PLATFORM, "good"), timeout=30, message="no child"
    )
    await wait_for(
        lambda: (
            ((emulator.get(AUTHSERVERS, PLATFORM, "good") or {}).get("status") or {}).get(
                "observedGeneration"
            )
            == 1
        ),
        timeout=30,
    )
    later = await scrape_reconciles(metrics_port)
    assert later.get(("AuthServer", "success"), 0) >= 1
    assert failures(later, "AuthServer") == failures(reported, "AuthServer"), "an invalid spec was retried"
    assert process.running and "Traceback" not in process.output


@pytest.fixture
async def stack(
    operator_process,
    emulator: AuthyardEmulator,
    kube: KubeApi,
    postgres_cluster: PostgresCluster,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    async def start_operator(issuer: str) -> OperatorProcess:
        return await operator_process(OPERATOR_SCRIPT, env=operator_process_env(issuer, **SLOW_TIMERS))

    async with running_stack(emulator, kube, postgres_cluster, tmp_path, start_operator) as running:
        yield running


def opaque_secret(name: str, data: dict[str, str], namespace: str = TEAM) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


# (namespace, spec, reason, what the message must name)
CLIENTS_REPORTED: dict[str, tuple[str, dict[str, Any], str, str]] = {
    "public-with-secret": (
        TEAM,
        client_spec(
            type="public", grantTypes=["authorization_code"], redirectUris=[REDIRECT], secret={"name": "x"}
        ),
        "InvalidSpec",
        "spec.secret",
    ),
    "public-client-credentials": (TEAM, client_spec(type="public"), "InvalidSpec", "spec.grantTypes"),
    "code-without-redirect": (
        TEAM,
        client_spec(grantTypes=["authorization_code"]),
        "InvalidSpec",
        "spec.redirectUris",
    ),
    "http-redirect": (
        TEAM,
        client_spec(grantTypes=["authorization_code"], redirectUris=["http://app.example.com/cb"]),
        "InvalidSpec",
        "spec.redirectUris",
    ),
    "refresh-without-code": (
        TEAM,
        client_spec(grantTypes=["client_credentials", "refresh_token"]),
        "InvalidSpec",
        "spec.grantTypes",
    ),
    "confidential-auth-none": (
        TEAM,
        client_spec(tokenEndpointAuthMethod="none"),
        "InvalidSpec",
        "spec.tokenEndpointAuthMethod",
    ),
    "access-ttl-10s": (TEAM, client_spec(accessTokenTTL="10s"), "InvalidSpec", "spec.accessTokenTTL"),
    "older-crd-grant-string": (
        TEAM,
        client_spec(grantTypes="client_credentials"),
        "InvalidSpec",
        "spec.grantTypes",
    ),
    "nowhere": (
        TEAM,
        client_spec(authServerRef={"name": "nowhere", "namespace": PLATFORM}),
        "AuthServerNotFound",
        "spec.authServerRef",
    ),
    "intruder": ("team-b", client_spec(), "NotAllowed", "allowedNamespaces"),
    "greedy-scope": (TEAM, client_spec(scopes=["orders.read", "admin.all"]), "NotAllowed", "spec.scopes"),
    "squatter": (TEAM, client_spec(secret={"name": "taken"}), "SecretConflict", "spec.secret.name"),
    "weak-supplied": (
        TEAM,
        client_spec(secret={"name": "weak-creds", "policy": "RequireExisting"}),
        "SecretInvalid",
        "client_secret",
    ),
}


@pytest.mark.postgres
async def test_oauthclient_specs_only_the_operator_can_judge(stack: Stack) -> None:
    emulator, kube = stack.emulator, stack.kube
    assert isinstance(stack.operator, OperatorProcess)
    metrics_port = int(stack.operator.env["AUTHYARD_METRICS_PORT"])
    # The AuthServer limits scopes; someone else's Secret already has a name a client wants; a supplied
    # secret is too short to be one.
    await kube.merge(
        f"/apis/authyard.dev/v1alpha1/namespaces/{PLATFORM}/authservers/auth",
        {"spec": {"clientPolicy": {"allowedScopes": ["orders.read", "orders.write"]}}},
    )
    await wait_for(
        lambda: (emulator.get(AUTHSERVERS, PLATFORM, "auth")["status"] or {}).get("observedGeneration") == 2,
        timeout=30,
    )
    await kube.post(
        f"/api/v1/namespaces/{TEAM}/secrets", opaque_secret("taken", {"password": "hunter2-but-longer"})
    )
    await kube.post(
        f"/api/v1/namespaces/{TEAM}/secrets", opaque_secret("weak-creds", {"client_secret": "short"})
    )
    taken_before = emulator.get("v1/secrets", TEAM, "taken")

    for name, (namespace, spec, _, _) in CLIENTS_REPORTED.items():
        if name.startswith("older-crd-"):
            await apply_unvalidated(
                emulator, kube, clients_path(namespace), oauthclient(name, spec, namespace)
            )
        else:
            await kube.post(clients_path(namespace), oauthclient(name, spec, namespace))

    for name, (namespace, _, reason, field) in CLIENTS_REPORTED.items():
        ready = await wait_for(
            lambda n=name, ns=namespace: stack.ready(n, ns) or None,
            timeout=30,
            message=lambda n=name, ns=namespace: f"{n} not reported: {stack.client(n, ns)}",
        )
        assert (ready["status"], ready["reason"]) == ("False", reason), (name, ready)
        assert field in ready["message"], (name, ready["message"])
        await wait_for(  # kopf posts events from its own queue, not with the status patch
            lambda n=name, ns=namespace, r=reason: emulator.events(ns, name=n, reason=r),
            message=f"{name}: no {reason} event",
        )
    for name in ("public-with-secret", "intruder", "nowhere", "greedy-scope", "http-redirect"):
        namespace = CLIENTS_REPORTED[name][0]
        assert emulator.get("v1/secrets", namespace, f"{name}-oauth-client") is None, (
            f"{name} got credentials"
        )
    assert emulator.get("v1/secrets", TEAM, "taken") == taken_before, "someone else's Secret was touched"

    reported = await scrape_reconciles(metrics_port)
    assert failures(reported, "OAuthClient") <= 2 * len(CLIENTS_REPORTED), reported
    await kube.post(clients_path(), oauthclient("good", client_spec(secret={"name": "good-oauth"})))
    await wait_for(lambda: stack.is_ready("good"), timeout=30, message="the valid client was not served")
    assert stack.ready("good")["reason"] == "Registered"
    assert (await token(stack.secret("good-oauth"))).status_code == 200
    later = await scrape_reconciles(metrics_port)
    assert failures(later, "OAuthClient") == failures(reported, "OAuthClient"), "an invalid spec was retried"
    assert await stack.registered_ids() == [f"{TEAM}.good"], "an invalid client was registered"
    statuses = json.dumps([emulator.get(OAUTHCLIENTS, ns, n) for n, (ns, *_) in CLIENTS_REPORTED.items()])
    assert "Traceback" not in statuses and "Traceback" not in stack.operator.output
    assert stack.operator.running
