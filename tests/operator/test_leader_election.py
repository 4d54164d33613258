"""Two real `authyard-operator` processes against the emulated API: one leads, the other stands by and
takes over when the leader dies (SIGKILL) or steps down (SIGTERM releases the Lease at once)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx

from harness.kube import AUTHSERVERS, custom_resource
from harness.kube_emulator import AuthyardEmulator
from harness.polling import wait_for
from harness.ports import free_port
from tests.operator.kubeapi import KubeApi

LEASE = "coordination.k8s.io/v1/leases"
OPERATOR = [str(Path(sys.executable).parent / "authyard-operator")]
LEASE_SECONDS = 3


def replica(identity: str) -> dict[str, str]:
    return {
        "AUTHYARD_IDENTITY": identity,
        "AUTHYARD_LEASE_NAMESPACE": "default",
        "AUTHYARD_LEASE_DURATION": f"{LEASE_SECONDS}s",
        "AUTHYARD_LEASE_RENEW_INTERVAL": "1s",
        "AUTHYARD_HEALTH_PORT": str(free_port()),
        "AUTHYARD_METRICS_PORT": str(free_port()),
    }


def holder(emulator: AuthyardEmulator) -> str | None:
    lease = emulator.get(LEASE, "default", "authyard-operator")
    return ((lease or {}).get("spec") or {}).get("holderIdentity") or None


def authserver(name: str) -> dict[str, Any]:
    return custom_resource("AuthServer", name, "default")


async def test_standby_takes_over_when_the_leader_dies(
    operator_process, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    first_env, second_env = replica("replica-a"), replica("replica-b")
    first = await operator_process(OPERATOR, env=first_env, ready=lambda: holder(emulator) == "replica-a")
    await wait_for(
        lambda: emulator.active_watches(AUTHSERVERS) > 0, timeout=30, message="leader not watching"
    )
    second = await operator_process(OPERATOR, env=second_env, ready=None)
    await wait_for(
        lambda: "standby" in second.output, timeout=30, message="the second replica is not waiting"
    )

    # Both answer liveness; only the leader says so in its metrics.
    async with httpx.AsyncClient() as http:
        for env in (first_env, second_env):
            assert (
                await http.get(f"http://127.0.0.1:{env['AUTHYARD_HEALTH_PORT']}/healthz")
            ).status_code == 200
        leader_metrics = (
            await http.get(f"http://127.0.0.1:{first_env['AUTHYARD_METRICS_PORT']}/metrics")
        ).text
        standby_metrics = (
            await http.get(f"http://127.0.0.1:{second_env['AUTHYARD_METRICS_PORT']}/metrics")
        ).text
    assert (
        "authyard_operator_leader 1.0" in leader_metrics and "authyard_operator_leader 0.0" in standby_metrics
    )

    await kube.post("/apis/authyard.dev/v1alpha1/namespaces/default/authservers", authserver("one"))
    await wait_for(lambda: emulator.get("apps/v1/deployments", "default", "one"), timeout=30)
    assert holder(emulator) == "replica-a"

    await first.kill()  # no chance to release the Lease
    killed = time.monotonic()
    await wait_for(lambda: holder(emulator) == "replica-b", timeout=LEASE_SECONDS * 5, message="no takeover")
    assert time.monotonic() - killed < LEASE_SECONDS * 5
    await kube.post("/apis/authyard.dev/v1alpha1/namespaces/default/authservers", authserver("two"))
    await wait_for(
        lambda: emulator.get("apps/v1/deployments", "default", "two"),
        timeout=30,
        message=lambda: f"the new leader does not reconcile:\n{second.output[-2000:]}",
    )
    lease = emulator.get(LEASE, "default", "authyard-operator")
    assert lease["spec"]["leaseTransitions"] >= 1


async def test_graceful_stop_hands_the_lease_over_at_once(
    operator_process, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    first = await operator_process(
        OPERATOR, env=replica("replica-a"), ready=lambda: holder(emulator) == "replica-a"
    )
    second = await operator_process(OPERATOR, env=replica("replica-b"), ready=None)
    await wait_for(
        lambda: "standby" in second.output, timeout=30, message="the second replica is not waiting"
    )
    returncode = await first.stop()  # SIGTERM: kopf stops, the Lease is released
    assert returncode == 0, first.output[-2000:]
    assert holder(emulator) in (None, "replica-b")
    await wait_for(
        lambda: holder(emulator) == "replica-b",
        timeout=LEASE_SECONDS,
        interval=0.1,
        message="the standby waited for expiry instead of taking the released Lease",
    )
