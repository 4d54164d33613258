"""The operator's container image, stopped the way Kubernetes stops a pod (``podman stop``: SIGTERM, then
SIGKILL after the grace period), as a standby and as the leader. The image's process is PID 1, which gets
no signal it has no handler for, so both must handle SIGTERM themselves and stop well inside the grace
period (30 s in the chart): a standby within 2 s, the leader (which stops kopf and releases its Lease)
within 5 s here, where the process-level test (test_shutdown.py) holds it to 2 s."""

from __future__ import annotations

import asyncio
import datetime
import re
import time
from pathlib import Path

import pytest

from harness.kube import AUTHSERVERS
from harness.kube_emulator import AuthyardEmulator
from harness.polling import wait_for
from harness.ports import free_port
from tests.operator.kubeapi import KubeApi
from tests.operator.test_shutdown import LEASE_PATH, STOP_WITHIN, holder
from tests.support.podman import Podman

SERVER_UID = 10001


LEADER_STOPS_WITHIN = 5.0


async def _hold_the_lease(kube: KubeApi) -> None:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    spec = {
        "holderIdentity": "the-leader",
        "leaseDurationSeconds": 3600,
        "acquireTime": now,
        "renewTime": now,
    }
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "authyard-operator", "namespace": "default"},
        "spec": {**spec, "acquireTime": now, "renewTime": now, "leaseTransitions": 0},
    }
    await kube.post(LEASE_PATH, lease)


@pytest.mark.parametrize("role", ["standby", "leader"])
async def test_the_operator_image_stops_on_sigterm_within_its_budget(
    role: str,
    operator_process,
    emulator: AuthyardEmulator,
    kube: KubeApi,
    kubeconfig: Path,
    podman: Podman,
    container_images: dict[str, str],
    tmp_path: Path,
) -> None:
    if role == "standby":
        await _hold_the_lease(kube)
    readable = tmp_path / "kubeconfig-for-the-container"  # the container's user is not the test's
    readable.write_text(kubeconfig.read_text())  # noqa: ASYNC240 - a small local file
    readable.chmod(0o644)
    name = f"authyard-operator-{role}-{time.monotonic_ns()}"
    settings = {
        "KUBECONFIG": "/etc/authyard/kubeconfig",
        "AUTHYARD_LEADER_ELECTION": "true",
        "AUTHYARD_IDENTITY": f"image-{role}",
        "AUTHYARD_LEASE_NAMESPACE": "default",
        "AUTHYARD_HEALTH_PORT": str(free_port()),  # the host's network: ports nothing else uses
        "AUTHYARD_METRICS_PORT": str(free_port()),
    }
    command = podman.command(
        "run", "--rm", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
        "--volume", f"{readable}:/etc/authyard/kubeconfig:ro",
        *(argument for key, value in settings.items() for argument in ("--env", f"{key}={value}")),
        container_images["operator"],
    )  # fmt: skip
    process = await operator_process(command, env={"CONTAINERS_CONF": str(podman.config)}, ready=lambda: True)
    if role == "standby":
        await wait_for(lambda: "standby: waiting for lease" in process.output, 60, message="no standby")
    else:
        await wait_for(
            lambda: holder(emulator) == "image-leader" and emulator.active_watches(AUTHSERVERS) > 0,
            60,
            message="the image never led",
        )
    pid = podman.run("inspect", "--format", "{{.State.Pid}}", name).stdout.strip()
    status = Path(f"/proc/{pid}/status").read_text()  # noqa: ASYNC240 - procfs, no disk
    assert re.search(rf"^Uid:\s+{SERVER_UID}\b", status, re.M), "the operator does not run as uid 10001"
    assert re.search(r"^NSpid:\s+\d+\s+1$", status, re.M), "the operator is not PID 1 of its container"

    started = time.monotonic()
    stopped = await asyncio.to_thread(podman.run, "stop", "--time", "10", name)
    elapsed = time.monotonic() - started

    assert stopped.returncode == 0
    assert process.process is not None
    assert await asyncio.wait_for(process.process.wait(), 10) == 0, process.output[-3000:]
    budget = STOP_WITHIN if role == "standby" else LEADER_STOPS_WITHIN
    assert elapsed < budget, f"took {elapsed:.2f}s to stop:\n{process.output[-3000:]}"
    assert "Traceback" not in process.output, process.output[-3000:]
    if role == "standby":
        assert holder(emulator) == "the-leader", "a standby must not touch the Lease"
