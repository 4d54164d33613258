"""Operator faults (issue 7): the operator killed mid-reconcile, the Kubernetes API answering 409, 429 and
5xx (before and after committing a write) or dropping the connection mid-response, the auth server's admin
API down. Whatever happens, every child
exists once, no secret is regenerated or changed, no client is registered twice, and it converges.

Each test that runs the auth server ends with the secrets scan (tests/operator/stack.py): no client secret,
admin token or private key in any CR, Event, the operator's log or the auth server's log.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authyard_operator import metrics

from harness.kube import AUTHSERVERS, OAUTHCLIENTS
from harness.kube_emulator import AuthyardEmulator
from harness.operator import (
    OPERATOR_SCRIPT,
    PLATFORM,
    TEAM,
    OperatorProcess,
    operator_process_env,
    ready_condition,
)
from harness.polling import wait_for
from harness.postgres import PostgresCluster
from tests.operator.kubeapi import KubeApi
from tests.operator.stack import Stack, clients_path, decoded, leaks_in, oauthclient, running_stack, token
from tests.operator.test_integration_authserver import CHILDREN

NS = PLATFORM
AUTHSERVERS_PATH = f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers"
CHILD_RESOURCES = sorted({resource for resource, _ in CHILDREN})
KEY_SECRETS = ("auth-signing-keys", "auth-admin")


def authserver(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "authyard.dev/v1alpha1",
        "kind": "AuthServer",
        "metadata": {"name": "auth", "namespace": NS},
        "spec": spec,
    }


def children(emulator: AuthyardEmulator) -> dict[tuple[str, str], dict[str, Any]]:
    """Every object of the kinds an AuthServer owns in its namespace, by (resource, name)."""
    return {
        (resource, obj["metadata"]["name"]): obj
        for resource in CHILD_RESOURCES
        for obj in emulator.list(resource, NS)
    }


def authserver_ready(emulator: AuthyardEmulator, generation: int = 1) -> bool:
    obj = emulator.get(AUTHSERVERS, NS, "auth") or {}
    condition = ready_condition(obj)
    return (
        condition.get("status") == "True"
        and (obj.get("status") or {}).get("observedGeneration") == generation
        and condition.get("observedGeneration") == generation
    )


def distinct_versions(emulator: AuthyardEmulator, namespace: str, name: str, key: str) -> list[str]:
    """The distinct values a Secret's key ever had, in order: a regenerated secret shows up here even if
    it was overwritten again later."""
    values: list[str] = []
    for version in emulator.history("v1/secrets", namespace):
        if version["metadata"]["name"] == name:
            value = decoded(version).get(key)
            if value is not None and value not in values:
                values.append(value)
    return values


async def healthy(env: dict[str, str]) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1) as http:
            response = await http.get(f"http://127.0.0.1:{env['AUTHYARD_HEALTH_PORT']}/healthz")
    except httpx.HTTPError:
        return False
    return response.status_code == 200


# --- the operator killed in the middle of an AuthServer ---------------------------------------------------


@pytest.mark.parametrize(
    "interrupted",
    ["secrets/auth-admin", "deployments/auth"],
    ids=["before-the-admin-secret", "before-the-deployment"],
)
async def test_killed_mid_authserver_reconcile_resumes_with_the_same_children_and_keys(
    operator_process, emulator: AuthyardEmulator, kube: KubeApi, interrupted: str
) -> None:
    """SIGKILL while the reconcile is stuck half-way (the API refuses one child): on restart every child
    exists exactly once, those created before the kill are the same objects, and the signing keys and the
    admin Secret are the ones generated before the kill."""
    emulator.create_namespace(NS)
    stuck = emulator.fail_next("PATCH", rf"/namespaces/{NS}/{interrupted}$", 500, times=None)
    env = operator_process_env("http://127.0.0.1:9")  # no admin API involved
    process = await operator_process(OPERATOR_SCRIPT, env=env)
    await kube.post(AUTHSERVERS_PATH, authserver())
    await wait_for(lambda: stuck.hits >= 2, timeout=30, message="the reconcile never reached the fault")

    await process.kill()
    before = children(emulator)
    resource, name = interrupted.split("/")
    assert not [key for key in before if key[0].endswith(resource) and key[1] == name], "not mid-way"
    assert ("v1/secrets", "auth-signing-keys") in before, "the keys were not generated before the kill"
    assert ("apps/v1/deployments", "auth") not in before

    emulator.clear_faults()
    await process.start(ready=lambda: healthy(env))
    await wait_for(
        lambda: emulator.get("apps/v1/deployments", NS, "auth"), timeout=30, message="no Deployment"
    )
    emulator.mark_deployment_ready(NS, "auth")
    await wait_for(lambda: authserver_ready(emulator), timeout=30, message="AuthServer not Ready")

    after = children(emulator)
    assert sorted(after) == sorted(CHILDREN), "every child exactly once, and nothing else"
    for key, old in before.items():
        assert after[key]["metadata"]["uid"] == old["metadata"]["uid"], f"{key} was recreated"
    for secret in KEY_SECRETS:
        if ("v1/secrets", secret) in before:
            assert after[("v1/secrets", secret)]["data"] == before[("v1/secrets", secret)]["data"], secret
    for secret, key in (("auth-signing-keys", "signing-keys.json"), ("auth-admin", "token")):
        assert len(distinct_versions(emulator, NS, secret, key)) == 1, f"{secret} was regenerated"
    keys = json.loads(decoded(after[("v1/secrets", "auth-signing-keys")])["signing-keys.json"])
    status = emulator.get(AUTHSERVERS, NS, "auth")["status"]
    assert status["signingKeys"]["activeKid"] == keys["active_kid"]
    assert not leaks_in(emulator, process.output, expect_client_secrets=False)


# --- the Kubernetes API failing: conflicts, throttling, server errors -------------------------------------


async def test_authserver_converges_through_conflicts_throttling_and_server_errors(
    operator, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    emulator.create_namespace(NS)
    faults = {
        "409 on the ConfigMap": emulator.fail_next(
            "PATCH", rf"/namespaces/{NS}/configmaps/auth-config$", 409, times=2, reason="Conflict"
        ),
        "429 on the ServiceAccount": emulator.fail_next(
            "PATCH", rf"/namespaces/{NS}/serviceaccounts/auth$", 429, times=2, retry_after=1
        ),
        # The signing keys are committed, but the operator never hears so: it must not generate others.
        "lost answer on the signing keys": emulator.fail_next(
            "PATCH", rf"/namespaces/{NS}/secrets/auth-signing-keys$", 500, lost_response=True
        ),
        "lost answer on the admin Secret": emulator.fail_next(
            "PATCH", rf"/namespaces/{NS}/secrets/auth-admin$", 504, lost_response=True
        ),
        "503 on the Deployment": emulator.fail_next(
            "PATCH", rf"/namespaces/{NS}/deployments/auth$", 503, times=2
        ),
        "500 on the status": emulator.fail_next("PATCH", r"/authservers/auth/status$", 500, times=2),
        "429 on the AuthServer": emulator.fail_next("PATCH", r"/authservers/auth$", 429, retry_after=1),
    }
    run = await operator("authyard_operator.main")
    await kube.post(AUTHSERVERS_PATH, authserver())
    await wait_for(
        lambda: emulator.get("apps/v1/deployments", NS, "auth"), timeout=40, message="no Deployment"
    )
    emulator.mark_deployment_ready(NS, "auth")
    await wait_for(lambda: authserver_ready(emulator), timeout=40, message="AuthServer not Ready")
    assert {name: fault.hits for name, fault in faults.items() if not fault.hits} == {}, "a fault never hit"
    assert sorted(children(emulator)) == sorted(CHILDREN)
    for secret, key in (("auth-signing-keys", "signing-keys.json"), ("auth-admin", "token")):
        assert len(distinct_versions(emulator, NS, secret, key)) == 1, f"{secret} was regenerated"
    assert any(event.get("reason") == "ApiError" for event in emulator.events(NS, name="auth"))

    # A spec change while the API keeps failing now and then: generation 2 is observed, nothing regenerated.
    retried = emulator.fail_next("PATCH", rf"/namespaces/{NS}/configmaps/auth-config$", 500, times=3)
    emulator.fail_next("PATCH", r"/authservers/auth/status$", 429, times=2, retry_after=1)
    await kube.merge(f"{AUTHSERVERS_PATH}/auth", {"spec": {"tokens": {"accessTokenTTL": "5m"}}})
    # The new configuration rolls the pods: the Deployment changes; its controller would report the rollout.
    await wait_for(
        lambda: emulator.get("apps/v1/deployments", NS, "auth")["metadata"]["generation"] == 2,
        timeout=40,
        message="the pods were not rolled",
    )
    emulator.mark_deployment_ready(NS, "auth")
    await wait_for(lambda: authserver_ready(emulator, 2), timeout=40, message="generation 2 not Ready")
    config = emulator.get("v1/configmaps", NS, "auth-config")["data"]
    assert config["AUTHSERVER_ACCESS_TOKEN_TTL"] == "5m" and retried.hits == 3
    for secret, key in (("auth-signing-keys", "signing-keys.json"), ("auth-admin", "token")):
        assert len(distinct_versions(emulator, NS, secret, key)) == 1, f"{secret} was regenerated"

    # Backoff, not a hot loop: while an API call fails for good, the operator asks at most about once per
    # resync (1 s in the tests) -- measured between observed states, not slept.
    failing = emulator.fail_next("PATCH", rf"/namespaces/{NS}/services/auth$", 500, times=None)
    await wait_for(lambda: failing.hits >= 1, timeout=20)
    started, first = asyncio.get_running_loop().time(), failing.hits
    await wait_for(lambda: failing.hits >= first + 3, timeout=20)
    assert asyncio.get_running_loop().time() - started >= 1.5, "retried in a hot loop"
    emulator.clear_faults()
    await run.stop()
    assert not leaks_in(emulator, run.output, expect_client_secrets=False)


# --- the Kubernetes API dropping connections mid-response ---------------------------------------------


async def test_authserver_converges_through_connections_dropped_mid_response(
    operator_process, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    """The API server closes the socket before answering, after the headers, or halfway through the body
    (a restart, a load balancer's idle timeout) -- after the write took effect. Each is an ApiError the
    AuthServer reports (Ready=False) and retries; once the drops stop it is Ready, every child exists once,
    no key was regenerated, and nothing escaped as a traceback."""
    emulator.create_namespace(NS)
    drops = {
        "signing keys applied, answer cut mid-body": emulator.drop_next(
            "PATCH", rf"/namespaces/{NS}/secrets/auth-signing-keys$", at="body", times=2
        ),
        "admin Secret applied, no answer": emulator.drop_next(
            "PATCH", rf"/namespaces/{NS}/secrets/auth-admin$", at="request"
        ),
        "a Secret read cut after the headers": emulator.drop_next(
            "GET", rf"/namespaces/{NS}/secrets/auth-admin$", at="headers", times=2
        ),
        "ConfigMap applied, answer cut mid-body": emulator.drop_next(
            "PATCH", rf"/namespaces/{NS}/configmaps/auth-config$", at="body"
        ),
        "Deployment applied, no answer": emulator.drop_next(
            "PATCH", rf"/namespaces/{NS}/deployments/auth$", at="request", times=2
        ),
        "status written, answer cut mid-body": emulator.drop_next(
            "PATCH", r"/authservers/auth/status$", at="body"
        ),
    }
    process = await operator_process(OPERATOR_SCRIPT, env=operator_process_env("http://127.0.0.1:9"))
    await kube.post(AUTHSERVERS_PATH, authserver())

    def reported_lost_connection() -> bool:
        condition = ready_condition(emulator.get(AUTHSERVERS, NS, "auth"))
        return condition.get("reason") == "ApiError" and "ConnectionLost" in condition.get("message", "")

    await wait_for(reported_lost_connection, timeout=30, message="the dropped connection was not reported")
    await wait_for(
        lambda: emulator.get("apps/v1/deployments", NS, "auth"), timeout=40, message="no Deployment"
    )
    emulator.mark_deployment_ready(NS, "auth")
    await wait_for(
        lambda: authserver_ready(emulator),
        timeout=40,
        message=lambda: f"AuthServer not Ready: {ready_condition(emulator.get(AUTHSERVERS, NS, 'auth'))}",
    )
    assert {name: drop.hits for name, drop in drops.items() if drop.hits < (drop.times or 1)} == {}
    assert sorted(children(emulator)) == sorted(CHILDREN)
    for secret, key in (("auth-signing-keys", "signing-keys.json"), ("auth-admin", "token")):
        assert len(distinct_versions(emulator, NS, secret, key)) == 1, f"{secret} was regenerated"
    messages = [event.get("message", "") for event in emulator.events(NS, name="auth")]
    assert any("ConnectionLost" in message for message in messages), messages
    assert await process.stop() == 0
    assert "Traceback" not in process.output, process.output[-4000:]
    assert not leaks_in(emulator, process.output, expect_client_secrets=False)


@pytest.mark.postgres
async def test_oauthclient_converges_through_api_faults_without_a_second_secret(stack: Stack) -> None:
    emulator = stack.emulator
    faults = [
        # The credentials Secret is committed but the answer lost: the retry must find and keep it.
        emulator.fail_next("POST", rf"/namespaces/{TEAM}/secrets$", 500, lost_response=True),
        emulator.fail_next("PATCH", r"/oauthclients/alpha/status$", 429, times=2, retry_after=1),
        emulator.fail_next("PATCH", r"/oauthclients/alpha/status$", 500),
        emulator.fail_next("PATCH", r"/oauthclients/alpha$", 409, reason="Conflict"),
    ]
    await stack.kube.post(clients_path(), oauthclient("alpha"))
    await wait_for(lambda: stack.is_ready("alpha"), timeout=40, message="alpha not Ready")
    assert [fault.hits for fault in faults] == [1, 2, 1, 1]
    assert distinct_versions(emulator, TEAM, "alpha-oauth", "client_secret") == [
        stack.secret("alpha-oauth")["client_secret"]
    ], "a second secret was generated"
    assert (await stack.registered_ids()).count(f"{TEAM}.alpha") == 1
    original = stack.secret("alpha-oauth")
    assert (await token(original)).status_code == 200

    # A rotation through a conflict (nothing written) and a lost answer (the staged secret committed):
    # exactly one new secret, registered, and the old one still works for the grace period.
    conflict = emulator.fail_next("PUT", rf"/namespaces/{TEAM}/secrets/alpha-oauth$", 409, reason="Conflict")
    lost = emulator.fail_next("PUT", rf"/namespaces/{TEAM}/secrets/alpha-oauth$", 500, lost_response=True)
    await stack.kube.merge(
        f"{clients_path()}/alpha", {"metadata": {"annotations": {"authyard.dev/rotate-secret": "1"}}}
    )
    await wait_for(
        lambda: (
            stack.secret("alpha-oauth")["client_secret"] != original["client_secret"]
            and "next_client_secret" not in stack.secret("alpha-oauth")
        ),
        timeout=40,
        message="not rotated",
    )
    assert (conflict.hits, lost.hits) == (1, 1)
    rotated = stack.secret("alpha-oauth")
    staged = distinct_versions(emulator, TEAM, "alpha-oauth", "next_client_secret")
    assert staged == [rotated["client_secret"]], "the rotation invented more than one secret"
    assert distinct_versions(emulator, TEAM, "alpha-oauth", "client_secret") == [
        original["client_secret"],
        rotated["client_secret"],
    ]
    assert (await token(rotated)).status_code == 200
    assert (await token(original)).status_code == 200, "the old secret must work during the grace period"

    # A spec change under status-patch failures: generation 2 observed and registered.
    emulator.fail_next("PATCH", r"/oauthclients/alpha/status$", 503, times=2)
    await stack.kube.merge(f"{clients_path()}/alpha", {"spec": {"scopes": ["orders.read", "orders.write"]}})
    await wait_for(lambda: stack.client_status("alpha").get("observedGeneration") == 2, timeout=40)
    await wait_for(lambda: stack.is_ready("alpha"), timeout=40)
    assert (await token(stack.secret("alpha-oauth"))).json()["scope"] == "orders.read orders.write"
    assert (await stack.registered_ids()).count(f"{TEAM}.alpha") == 1


# --- the admin API unreachable ----------------------------------------------------------------------------


def _client_reconciles() -> float:
    return sum(
        metrics.RECONCILES.labels("OAuthClient", result)._value.get()
        for result in ("success", "failure", "error")
    )


@pytest.mark.postgres
async def test_unreachable_admin_api_is_reported_without_a_crash_loop_and_recovers(stack: Stack) -> None:
    await stack.stop_server()
    await stack.kube.post(clients_path(), oauthclient("patient"))
    waiting = await wait_for(
        lambda: stack.ready("patient").get("reason") == "AuthServerUnreachable" and stack.ready("patient"),
        timeout=30,
        message="not reported as unreachable",
    )
    assert waiting["status"] == "False" and "admin API unreachable" in waiting["message"]
    # The secret was stored before the registration was attempted; it is the one that gets registered.
    stored = stack.secret("patient-oauth")["client_secret"]

    # No crash loop: the operator keeps running and retries at the pace of its resync (1 s in the tests),
    # measured between observed counts, never slept.
    first = _client_reconciles()
    started = asyncio.get_running_loop().time()
    await wait_for(lambda: _client_reconciles() >= first + 3, timeout=20, message="no retries at all")
    assert asyncio.get_running_loop().time() - started >= 1.5, "retried in a hot loop"
    assert stack.operator.running and stack.emulator.active_watches(OAUTHCLIENTS) > 0
    assert any(
        e.get("reason") == "AuthServerUnreachable" for e in stack.emulator.events(TEAM, name="patient")
    )

    await stack.start_server()
    await wait_for(lambda: stack.is_ready("patient"), timeout=30, message="did not recover")
    credentials = stack.secret("patient-oauth")
    assert credentials["client_secret"] == stored, "the secret changed"
    assert distinct_versions(stack.emulator, TEAM, "patient-oauth", "client_secret") == [stored]
    assert (await stack.registered_ids()).count(f"{TEAM}.patient") == 1
    assert (await token(credentials)).status_code == 200


# --- the operator killed while registering 100 clients ----------------------------------------------------


@pytest.fixture
async def process_stack(
    operator_process,
    emulator: AuthyardEmulator,
    kube: KubeApi,
    postgres_cluster: PostgresCluster,
    tmp_path: Path,
) -> AsyncIterator[Stack]:
    """``authyard-operator`` as a child process (SIGKILL-able); the secrets scan at teardown."""

    async def start_operator(issuer: str) -> OperatorProcess:
        # The production-like client resync: a resync per client per second (the tests' default) would
        # make 100 clients a load test of the emulated API instead of a fault test.
        env = operator_process_env(issuer, AUTHYARD_CLIENT_RESYNC_INTERVAL="60s")
        return await operator_process(OPERATOR_SCRIPT, env=env)

    async with running_stack(emulator, kube, postgres_cluster, tmp_path, start_operator) as running:
        yield running


@pytest.mark.postgres
async def test_killed_while_registering_100_clients_every_client_ends_registered_once(
    process_stack: Stack,
) -> None:
    stack = process_stack
    assert isinstance(stack.operator, OperatorProcess)
    names = [f"svc-{index:03d}" for index in range(100)]
    # Half the clients cannot be marked Ready before the kill (their status writes wait in the API), so
    # the kill lands mid-way however fast the operator runs and however late a loaded machine kills it.
    held = stack.emulator.hold_next("PATCH", r"/oauthclients/svc-0[5-9][0-9]/status$", times=None)
    for name in names:
        await stack.kube.post(clients_path(), oauthclient(name))

    def ready_count() -> int:
        return sum(stack.is_ready(name) for name in names)

    def secret_count() -> int:
        return sum(stack.emulator.get("v1/secrets", TEAM, f"{name}-oauth") is not None for name in names)

    # Mid-way: a third of the credentials written (each before its registration), most not registered yet.
    await wait_for(lambda: secret_count() >= 30, timeout=60, message="no credentials written")
    await stack.operator.kill()
    registered_before = ready_count()
    # Every Secret that exists now holds the secret its client must keep, registered or not.
    before = {
        name: stack.secret(f"{name}-oauth")["client_secret"]
        for name in names
        if stack.emulator.get("v1/secrets", TEAM, f"{name}-oauth")
    }
    assert registered_before < len(names), "killed too late: every client was registered already"
    assert len(before) > registered_before, "no client was caught between its Secret and its registration"

    held.release()  # the dead operator's status writes land late, as they may with a real API server
    env = stack.operator.env
    await stack.operator.start(ready=lambda: healthy(env))
    await wait_for(
        lambda: ready_count() == len(names),
        timeout=120,
        interval=0.2,
        message=lambda: f"{ready_count()}/{len(names)} Ready after the restart",
    )
    ids = await stack.registered_ids()
    assert sorted(i for i in ids if i.startswith(f"{TEAM}.svc-")) == [f"{TEAM}.{name}" for name in names]
    assert len(ids) == len(set(ids))
    for name, secret in before.items():
        assert stack.secret(f"{name}-oauth")["client_secret"] == secret, f"{name}'s secret changed"
    for name in names:
        assert len(distinct_versions(stack.emulator, TEAM, f"{name}-oauth", "client_secret")) == 1, name

    semaphore = asyncio.Semaphore(10)

    async def status_of_token(name: str) -> tuple[str, int]:
        async with semaphore:
            return name, (await token(stack.secret(f"{name}-oauth"))).status_code

    results = await asyncio.gather(*(status_of_token(name) for name in names))
    assert [name for name, status in results if status != 200] == []
