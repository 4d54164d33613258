"""The operator's container image, stopped the way Kubernetes stops a pod (``podman stop``: SIGTERM, then
SIGKILL after the grace period), as a standby: the image's process is PID 1, which gets no signal it has no
handler for, so a standby must handle SIGTERM itself and stop well inside the grace period."""

from __future__ import annotations

import asyncio
import datetime
import re
import time
from pathlib import Path

from harness.kube_emulator import AuthyardEmulator
from harness.polling import wait_for
from harness.ports import free_port
from tests.operator.kubeapi import KubeApi
from tests.operator.test_shutdown import LEASE_PATH, STOP_WITHIN, holder
from tests.support.podman import Podman

SERVER_UID = 10001


async def test_the_operator_image_as_a_standby_stops_on_sigterm_within_2s(
    operator_process,
    emulator: AuthyardEmulator,
    kube: KubeApi,
    kubeconfig: Path,
    podman: Podman,
    container_images: dict[str, str],
    tmp_path: Path,
) -> None:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    await kube.post(
        LEASE_PATH,
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "authyard-operator", "namespace": "default"},
            "spec": {"holderIdentity": "the-leader", "leaseDurationSeconds": 3600, "acquireTime": now,
                     "renewTime": now, "leaseTransitions": 0},
        },
    )  # fmt: skip
    readable = tmp_path / "kubeconfig-for-the-container"  # the container's user is not the test's
    readable.write_text(kubeconfig.read_text())  # noqa: ASYNC240 - a small local file
    readable.chmod(0o644)
    name = f"authyard-operator-standby-{time.monotonic_ns()}"
    settings = {
        "KUBECONFIG": "/etc/authyard/kubeconfig",
        "AUTHYARD_LEADER_ELECTION": "true",
        "AUTHYARD_IDENTITY": "standby",
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
    await wait_for(lambda: "standby: waiting for lease" in process.output, timeout=60, message="no standby")
    pid = podman.run("inspect", "--format", "{{.State.Pid}}", name).stdout.strip()
    status = Path(f"/proc/{pid}/status").read_text()  # noqa: ASYNC240 - procfs, no disk
    assert re.search(r"^Uid:\s+10001\b", status, re.M), "the operator does not run as uid 10001"
    assert re.search(r"^NSpid:\s+\d+\s+1$", status, re.M), "the operator is not PID 1 of its container"

    started = time.monotonic()
    stopped = await asyncio.to_thread(podman.run, "stop", "--time", "10", name)
    elapsed = time.monotonic() - started

    assert stopped.returncode == 0
    assert process.process is not None
    assert await asyncio.wait_for(process.process.wait(), 10) == 0, process.output[-3000:]
    assert elapsed < STOP_WITHIN, f"took {elapsed:.2f}s to stop:\n{process.output[-3000:]}"
    assert "Traceback" not in process.output, process.output[-3000:]
    assert holder(emulator) == "the-leader", "a standby must not touch the Lease"
