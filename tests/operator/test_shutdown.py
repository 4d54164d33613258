"""Stopping ``authyard-operator`` the way Kubernetes stops a pod: SIGTERM, and SIGKILL once the grace period
(30 s in the chart) is over. A leader -- even with a resync caught in the middle of its API calls -- and a
standby both exit within 2 s, cleanly (exit code 0, no traceback), and the leader hands its Lease over.

In a container the operator is PID 1, and the kernel delivers no signal to PID 1 that the process has no
handler for: where ``unshare`` can make a PID namespace, the standby runs as PID 1 there, as in a pod.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from harness.kube import AUTHSERVERS
from harness.kube_emulator import AuthyardEmulator
from harness.operator import OPERATOR_SCRIPT, PLATFORM, OperatorProcess, operator_process_env, ready_condition
from harness.polling import wait_for
from tests.operator.kubeapi import KubeApi

LEASES = "coordination.k8s.io/v1/leases"
LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
STOP_WITHIN = 2.0


def leader_election(identity: str) -> dict[str, str]:
    return operator_process_env(
        "http://127.0.0.1:9",
        AUTHYARD_LEADER_ELECTION="true",
        AUTHYARD_IDENTITY=identity,
        AUTHYARD_LEASE_NAMESPACE="default",
        AUTHYARD_LEASE_DURATION="3s",
        AUTHYARD_LEASE_RENEW_INTERVAL="1s",
    )


def holder(emulator: AuthyardEmulator) -> str | None:
    lease = emulator.get(LEASES, "default", "authyard-operator")
    return ((lease or {}).get("spec") or {}).get("holderIdentity") or None


async def stop_and_time(process: OperatorProcess, sig: int = signal.SIGTERM, pid: int | None = None) -> float:
    """Seconds from the signal until the process has exited (SIGKILL after 10 s: then far over budget)."""
    assert process.process is not None
    loop = asyncio.get_running_loop()
    started = loop.time()
    os.kill(pid or process.process.pid, sig)
    try:
        await asyncio.wait_for(process.process.wait(), 10)
    except TimeoutError:
        process.process.kill()
        await process.process.wait()
    return loop.time() - started


@pytest.mark.parametrize("moment", ["idle", "mid-resync"])
async def test_a_leader_stops_on_sigterm_within_2s_and_hands_the_lease_over(
    operator_process, emulator: AuthyardEmulator, kube: KubeApi, moment: str
) -> None:
    emulator.create_namespace(PLATFORM)
    process = await operator_process(
        OPERATOR_SCRIPT,
        env=leader_election("leader"),
        ready=lambda: holder(emulator) == "leader" and emulator.active_watches(AUTHSERVERS) > 0,
    )
    if moment == "mid-resync":
        await kube.post(
            f"/apis/authyard.dev/v1alpha1/namespaces/{PLATFORM}/authservers",
            {"apiVersion": "authyard.dev/v1alpha1", "kind": "AuthServer", "metadata": {"name": "auth"}},
        )
        await wait_for(lambda: emulator.get("apps/v1/deployments", PLATFORM, "auth"), timeout=30)
        emulator.mark_deployment_ready(PLATFORM, "auth")
        await wait_for(
            lambda: ready_condition(emulator.get(AUTHSERVERS, PLATFORM, "auth")).get("status") == "True",
            timeout=30,
        )
        # The next resync (every second here) is held in the middle of its API calls ...
        held = emulator.hold_next("PATCH", rf"/namespaces/{PLATFORM}/configmaps/auth-config$")
        await asyncio.wait_for(held.reached.wait(), timeout=30)
    started = asyncio.get_running_loop().time()
    assert process.process is not None
    process.process.send_signal(signal.SIGTERM)
    if moment == "mid-resync":
        # ... and answered only once the operator is stopping: the pass must finish on a client still open.
        await wait_for(lambda: "Signal SIGTERM is received" in process.output, timeout=5)
        held.release()
    await asyncio.wait_for(process.process.wait(), 10)
    elapsed = asyncio.get_running_loop().time() - started

    assert process.process.returncode == 0, process.output[-3000:]
    assert "Traceback" not in process.output, process.output[-5000:]
    assert elapsed < STOP_WITHIN, f"took {elapsed:.2f}s to stop:\n{process.output[-3000:]}"
    assert holder(emulator) is None, "the Lease was not handed over"
    if moment == "mid-resync":
        assert "did not exit in time" not in process.output  # the resync finished its pass


def pid_namespace_prefix() -> list[str] | None:
    """A command prefix that runs a command as PID 1 of a new PID namespace, or None where none works."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    for prefix in (
        [unshare, "--pid", "--fork", "--kill-child"],
        [unshare, "--user", "--map-root-user", "--pid", "--fork", "--kill-child"],
    ):
        probe = subprocess.run([*prefix, "sh", "-c", "echo $$"], capture_output=True, text=True, check=False)
        if probe.returncode == 0 and probe.stdout.strip() == "1":
            return prefix
    return None


def child_pid(parent: int) -> int:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("as_pid1", [False, True], ids=["process", "pid-1"])
async def test_a_standby_stops_within_2s(
    operator_process, emulator: AuthyardEmulator, kube: KubeApi, sig: int, as_pid1: bool
) -> None:
    prefix = pid_namespace_prefix() if as_pid1 else []
    if prefix is None:
        pytest.skip("no PID namespace here (unshare missing or not permitted): PID 1 cannot be reproduced")
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    await kube.post(
        LEASE_PATH,
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "authyard-operator", "namespace": "default"},
            "spec": {
                "holderIdentity": "the-leader",
                "leaseDurationSeconds": 3600,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        },
    )
    process = await operator_process(
        [*prefix, *OPERATOR_SCRIPT], env=leader_election("standby"), ready=lambda: True
    )
    await wait_for(lambda: "standby: waiting for lease" in process.output, timeout=30, message="no standby")
    assert process.process is not None
    pid = child_pid(process.process.pid) if as_pid1 else process.process.pid
    if as_pid1:
        status = Path(f"/proc/{pid}/status").read_text()  # noqa: ASYNC240 - procfs, no disk
        assert re.search(r"^NSpid:\s+\d+\s+1$", status, re.M), "the operator is not PID 1 of its namespace"

    elapsed = await stop_and_time(process, sig, pid)

    assert process.process.returncode == 0, f"exit {process.process.returncode}:\n{process.output[-3000:]}"
    assert elapsed < STOP_WITHIN, f"took {elapsed:.2f}s to stop:\n{process.output[-3000:]}"
    assert "Traceback" not in process.output, process.output[-3000:]
    assert holder(emulator) == "the-leader", "a standby must not touch the Lease"
