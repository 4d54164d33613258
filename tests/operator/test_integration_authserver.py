"""The real operator (kopf + authyard_operator.main) against the emulated API: AuthServer lifecycle."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from authyard_operator import metrics

from authserver.crypto.keyset_document import new_document
from harness.kube import AUTHSERVERS, CRD_DIR, custom_resource, service_monitor_crd
from harness.kube_emulator import AuthyardEmulator
from harness.polling import wait_for
from tests.operator.kubeapi import KubeApi

NS = "platform"


def authserver(name: str = "auth", **spec: Any) -> dict[str, Any]:
    return custom_resource("AuthServer", name, NS, spec)


def _reconciles() -> float:
    """Successful AuthServer reconciles so far (the operator runs in this process)."""
    return metrics.RECONCILES.labels("AuthServer", "success")._value.get()


def _status(emulator: AuthyardEmulator, name: str = "auth") -> dict[str, Any]:
    return (emulator.get(AUTHSERVERS, NS, name) or {}).get("status") or {}


def _condition(emulator: AuthyardEmulator, kind: str, name: str = "auth") -> dict[str, Any]:
    return next((c for c in _status(emulator, name).get("conditions", []) if c["type"] == kind), {})


CHILDREN = [
    ("v1/serviceaccounts", "auth"),
    ("v1/configmaps", "auth-config"),
    ("v1/configmaps", "auth-trusted-issuers"),  # the cluster's own issuer, trusted by default
    ("v1/secrets", "auth-signing-keys"),
    ("v1/secrets", "auth-admin"),
    ("v1/persistentvolumeclaims", "auth-data"),
    ("apps/v1/deployments", "auth"),
    ("v1/services", "auth"),
    ("policy/v1/poddisruptionbudgets", "auth"),
]


@pytest.fixture
async def running(operator, emulator: AuthyardEmulator, kube: KubeApi):  # type: ignore[no-untyped-def]
    emulator.create_namespace(NS)
    run = await operator("authyard_operator.main")
    yield run


async def test_authserver_children_status_and_readiness(
    running, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    await kube.post(f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers", authserver())
    await wait_for(
        lambda: emulator.get("apps/v1/deployments", NS, "auth"), timeout=20, message="no Deployment"
    )
    owner_uid = emulator.get(AUTHSERVERS, NS, "auth")["metadata"]["uid"]
    for resource, name in CHILDREN:
        child = await wait_for(
            lambda r=resource, n=name: emulator.get(r, NS, n), message=f"{resource} {name}"
        )
        refs = child["metadata"]["ownerReferences"]
        assert refs == [
            {
                "apiVersion": "authyard.dev/v1alpha1",
                "kind": "AuthServer",
                "name": "auth",
                "uid": owner_uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        managers = {entry["manager"] for entry in child["metadata"].get("managedFields", [])}
        assert "authyard-operator" in managers, (resource, managers)

    await wait_for(lambda: _status(emulator).get("observedGeneration") == 1, message="no status")
    status = _status(emulator)
    assert status["issuer"] == f"http://auth.{NS}.svc:8080"
    assert status["endpoints"]["token"] == f"http://auth.{NS}.svc:8080/token"
    assert status["signingKeys"]["activeKid"] and status["database"]["mode"] == "embedded"
    assert _condition(emulator, "Ready")["status"] == "False"
    assert _condition(emulator, "Progressing")["status"] == "True"

    emulator.mark_deployment_ready(NS, "auth")
    await wait_for(
        lambda: _condition(emulator, "Ready").get("status") == "True", timeout=20, message="not Ready"
    )
    assert _condition(emulator, "Ready")["reason"] == "Available"
    assert _status(emulator)["readyReplicas"] == 1
    # kopf posts events from its own queue, not with the status patch: wait for it rather than race it.
    await wait_for(
        lambda: emulator.events(NS, name="auth", reason="Reconciled"),
        message="no Reconciled event",
    )


async def test_spec_change_rolls_configuration_and_drift_is_corrected(
    running, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    await kube.post(f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers", authserver())
    deployment = await wait_for(lambda: emulator.get("apps/v1/deployments", NS, "auth"), timeout=20)
    old_hash = deployment["spec"]["template"]["metadata"]["annotations"]["authyard.dev/config-hash"]

    await kube.merge(
        f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers/auth",
        {"spec": {"tokens": {"accessTokenTTL": "5m"}}},
    )
    await wait_for(
        lambda: (
            emulator.get("v1/configmaps", NS, "auth-config")["data"].get("AUTHSERVER_ACCESS_TOKEN_TTL")
            == "5m"
        ),
        message="ConfigMap not updated",
    )

    def config_hash() -> str:
        deployment = emulator.get("apps/v1/deployments", NS, "auth")
        return deployment["spec"]["template"]["metadata"]["annotations"]["authyard.dev/config-hash"]

    await wait_for(lambda: config_hash() != old_hash, message="pods not rolled for the new configuration")
    await wait_for(
        lambda: _status(emulator).get("observedGeneration") == 2, message="generation 2 not observed"
    )

    # Someone edits a managed field of a child: the next resync takes it back.
    emulator.patch("v1/configmaps", NS, "auth-config", {"data": {"AUTHSERVER_ACCESS_TOKEN_TTL": "99h"}})
    await wait_for(
        lambda: (
            emulator.get("v1/configmaps", NS, "auth-config")["data"]["AUTHSERVER_ACCESS_TOKEN_TTL"] == "5m"
        ),
        timeout=15,
        message="drift not corrected",
    )


async def test_restart_regenerates_no_secret_and_recreates_no_child(
    running, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    await kube.post(f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers", authserver())
    for resource, name in CHILDREN:
        await wait_for(lambda r=resource, n=name: emulator.get(r, NS, n), timeout=20)
    before = {(r, n): emulator.get(r, NS, n) for r, n in CHILDREN}
    await running.restart()
    # The restarted operator resumes the AuthServer and resyncs it (1 s timer): two more reconciles.
    done = _reconciles()
    await wait_for(lambda: _reconciles() >= done + 2, timeout=20, message="no reconcile after the restart")
    for key, old in before.items():
        now = emulator.get(key[0], NS, key[1])
        assert now["metadata"]["uid"] == old["metadata"]["uid"], f"{key} was recreated"
    for name in ("auth-signing-keys", "auth-admin"):
        assert emulator.get("v1/secrets", NS, name)["data"] == before[("v1/secrets", name)]["data"], name
    admin = base64.b64decode(emulator.get("v1/secrets", NS, "auth-admin")["data"]["token"]).decode()
    assert len(admin) >= 43


async def test_pool_budget_that_cannot_fit_is_reported(
    running, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    url = base64.b64encode(b"postgresql+asyncpg://u:p@db:5432/auth").decode()
    kube_secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": NS},
        "data": {"url": url},
    }
    await kube.post(f"/api/v1/namespaces/{NS}/secrets", kube_secret)
    spec = {
        "database": {"urlSecretRef": {"name": "db", "key": "url"}, "maxConnections": 10},
        "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 20},
    }
    await kube.post(f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers", authserver(**spec))
    ready = await wait_for(lambda: _condition(emulator, "Ready") or None, timeout=20)
    assert ready["status"] == "False" and ready["reason"] == "PoolBudgetExceeded"
    assert "maxConnections" in ready["message"] or "maxReplicas" in ready["message"]
    assert emulator.get("apps/v1/deployments", NS, "auth") is None  # nothing half-built
    await wait_for(  # the event comes from kopf's queue, like Reconciled's above
        lambda: emulator.events(NS, name="auth", reason="PoolBudgetExceeded"),
        message="no PoolBudgetExceeded event",
    )

    # Fixing the spec makes it converge.
    await kube.merge(
        f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers/auth",
        {"spec": {"database": {"maxConnections": 400}}},
    )
    hpa = await wait_for(
        lambda: emulator.get("autoscaling/v2/horizontalpodautoscalers", NS, "auth"), timeout=20
    )
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 20)
    deployment = emulator.get("apps/v1/deployments", NS, "auth")
    assert "replicas" not in deployment["spec"], "with an HPA the Deployment must leave replicas alone"
    env = json.dumps(emulator.get("v1/configmaps", NS, "auth-config")["data"])
    assert '"AUTHSERVER_DB_POOL_MAX_SIZE": "18"' in env  # 0.9 * 400 / 20 replicas


async def test_delete_cascades_to_children(running, emulator: AuthyardEmulator, kube: KubeApi) -> None:
    await kube.post(f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers", authserver())
    await wait_for(lambda: emulator.get("apps/v1/deployments", NS, "auth"), timeout=20)
    await kube.delete(f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers/auth")
    await wait_for(lambda: emulator.get(AUTHSERVERS, NS, "auth") is None, timeout=20, message="not deleted")
    for resource, name in CHILDREN:
        assert emulator.get(resource, NS, name) is None, f"{resource} {name} left behind"


async def test_a_deletion_while_the_resync_timer_reconciles_is_not_held_for_a_minute(
    running, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    """kopf lets a running timer finish before the deletion handlers, then re-checks every
    ``settings.background.cancellation_polling`` seconds -- 60 by default, which held a deleted AuthServer
    (and, the same way, an OAuthClient) for a minute whenever the delete arrived mid-resync."""
    await kube.post(f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers", authserver())
    await wait_for(
        lambda: _condition(emulator, "Ready").get("reason"), timeout=20, message="never reconciled"
    )
    # The timer's next reconcile reads the signing keys first: catch it there, mid-flight.
    hold = emulator.hold_next("GET", r"/namespaces/platform/secrets/auth-signing-keys$")
    await asyncio.wait_for(hold.reached.wait(), timeout=20)
    await kube.delete(f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers/auth")
    hold.release()
    await wait_for(
        lambda: emulator.get(AUTHSERVERS, NS, "auth") is None,
        timeout=15,
        message="the deletion waited for kopf's 60 s re-check of the running timer",
    )


async def test_pgbouncer_example_and_service_monitor(
    running, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    """The production example: PgBouncer in front of PostgreSQL, and a ServiceMonitor once its CRD exists."""
    import yaml

    emulator.declare_crd(service_monitor_crd())
    url = base64.b64encode(
        b"postgresql+asyncpg://authyard:s3cret@pg.db.svc:5432/authyard?ssl=require"
    ).decode()
    await kube.post(
        f"/api/v1/namespaces/{NS}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "auth-db", "namespace": NS},
            "data": {"url": url},
        },
    )
    example = yaml.safe_load((CRD_DIR.parent / "examples" / "authserver-postgres-pgbouncer.yaml").read_text())
    await kube.post(f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers", example)

    for resource in ("apps/v1/deployments", "v1/services", "v1/configmaps", "v1/secrets"):
        await wait_for(lambda r=resource: emulator.get(r, NS, "auth-pgbouncer"), timeout=20, message=resource)
    monitor = await wait_for(
        lambda: emulator.get("monitoring.coreos.com/v1/servicemonitors", NS, "auth"), timeout=20
    )
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    config = emulator.get("v1/configmaps", NS, "auth-config")["data"]
    assert config["AUTHSERVER_DB_STATEMENT_CACHE"] == "false"
    pod = emulator.get("apps/v1/deployments", NS, "auth")["spec"]["template"]["spec"]
    server_env = {item["name"]: item.get("value") for item in pod["containers"][0]["env"]}
    assert server_env["AUTHSERVER_DATABASE_HOST_OVERRIDE"] == f"auth-pgbouncer.{NS}.svc"
    init_env = {item["name"] for item in pod["initContainers"][0]["env"]}
    assert "AUTHSERVER_DATABASE_HOST_OVERRIDE" not in init_env  # migrations go straight to the database
    assert "s3cret" not in json.dumps(config), "the database password must stay in Secrets"
    await wait_for(lambda: _status(emulator).get("database", {}).get("mode") == "pgbouncer", timeout=20)
    assert "s3cret" not in json.dumps(_status(emulator)) + json.dumps(emulator.events(NS))


async def test_scheduled_key_rotation_publishes_before_signing(
    running, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    await kube.post(f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers", authserver())
    secret = await wait_for(lambda: emulator.get("v1/secrets", NS, "auth-signing-keys"), timeout=20)
    before = json.loads(base64.b64decode(secret["data"]["signing-keys.json"]))
    await wait_for(lambda: _status(emulator).get("signingKeys", {}).get("activeKid") == before["active_kid"])
    upcoming = _status(emulator)["signingKeys"]["nextKid"]
    kinds_before = {kind["algorithm"]: kind for kind in _status(emulator)["signingKeys"]["algorithms"]}
    assert set(kinds_before) == {"ES256", "RS256"}

    # As if the last rotation were a rotation interval (720h) ago: the next resync rotates.
    emulator.patch(
        "v1/secrets",
        NS,
        "auth-signing-keys",
        {"metadata": {"annotations": {"authyard.dev/last-rotation": "2020-01-01T00:00:00Z"}}},
    )
    await wait_for(
        lambda: _status(emulator)["signingKeys"]["activeKid"] == upcoming,
        timeout=15,
        message="no scheduled rotation",
    )
    after = json.loads(
        base64.b64decode(emulator.get("v1/secrets", NS, "auth-signing-keys")["data"]["signing-keys.json"])
    )
    kids = [key["kid"] for key in after["keys"]]
    assert after["active_kid"] == upcoming  # the key that signs now was published one rotation earlier
    assert before["active_kid"] in kids, "the retired key stays published until its tokens expire"
    assert _status(emulator)["signingKeys"]["nextKid"] not in (upcoming, before["active_kid"])
    # Every kind rotated on the same schedule: its next key signs, its old active key stays published.
    for kind in _status(emulator)["signingKeys"]["algorithms"]:
        previous = kinds_before[kind["algorithm"]]
        assert kind["activeKid"] == previous["nextKid"] == after["active_kids"][kind["algorithm"]]
        assert previous["activeKid"] in kids and kind["nextKid"] not in kids_of(before)
    # kopf posts events from a background queue: wait for it rather than race it.
    await wait_for(
        lambda: any(e.get("reason") == "SigningKeysRotated" for e in emulator.events(NS, name="auth"))
    )


def kids_of(document: dict[str, Any]) -> set[str]:
    return {key["kid"] for key in document["keys"]}


async def test_a_one_algorithm_key_secret_gains_rs256_on_the_next_reconcile(
    running, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    """Upgrade: a signing-keys Secret written by an earlier operator (ES256 only) keeps its keys and its
    rotation schedule and gains active and next RS256 keys for ID tokens (OIDC Core §15.1)."""
    old = new_document("ES256")
    del old["active_kids"]
    last_rotation = "2026-12-01T00:00:00Z"
    await kube.post(
        f"/api/v1/namespaces/{NS}/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "auth-signing-keys",
                "namespace": NS,
                "annotations": {"authyard.dev/last-rotation": last_rotation},
            },
            "type": "Opaque",
            "data": {"signing-keys.json": base64.b64encode(json.dumps(old).encode()).decode()},
        },
    )
    await kube.post(f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers", authserver())
    await wait_for(
        lambda: (
            {kind["algorithm"] for kind in _status(emulator)["signingKeys"]["algorithms"]}
            == {"ES256", "RS256"}
        ),
        timeout=20,
        message="RS256 keys not added",
    )
    secret = emulator.get("v1/secrets", NS, "auth-signing-keys")
    document = json.loads(base64.b64decode(secret["data"]["signing-keys.json"]))
    assert document["active_kid"] == old["active_kid"] and kids_of(old) <= kids_of(document)
    assert secret["metadata"]["annotations"]["authyard.dev/last-rotation"] == last_rotation
    rs256 = next(k for k in _status(emulator)["signingKeys"]["algorithms"] if k["algorithm"] == "RS256")
    assert rs256["activeKid"] == document["active_kids"]["RS256"] and rs256["nextKid"]
    await wait_for(
        lambda: any(e.get("reason") == "SigningKeysExtended" for e in emulator.events(NS, name="auth"))
    )
