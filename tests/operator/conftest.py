"""Fixtures for running the operator against an emulated Kubernetes API (kmock + AuthyardEmulator).

* ``emulator``   -- the AuthyardEmulator serving on loopback, with every built-in resource the operator and
                    kopf touch, the ``default``/``kube-system`` namespaces and the CRDs from ``crds/``.
* ``kubeconfig`` -- a kubeconfig pointing at it, in ``KUBECONFIG`` (what the operator and kopf read).
* ``kube``       -- a raw-path client (``KubeApi``, over httpx), to act as a user.
* ``operator``   -- a factory: ``run = await operator(target, env=..., ready=...)`` starts an operator
                    in-process (kopf_harness.OperatorRun; ``await run.restart()``); stopped at teardown.
* ``operator_process`` -- the same in a child process (harness.operator.OperatorProcess: ``stop()`` is
                    SIGTERM, ``kill()`` SIGKILL, separate env per replica); stopped at teardown.
* ``stack``      -- the in-process operator, an AuthServer it reconciled served by a real ``authserver
                    serve`` on PostgreSQL (tests/operator/stack.py); the secrets scan at teardown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from harness.kube import AUTHSERVERS, TOKEN, declare_authyard_api, write_kubeconfig
from harness.kube_emulator import AuthyardEmulator
from harness.operator import OperatorProcess
from tests.operator.kopf_harness import OperatorRun
from tests.operator.kubeapi import KubeApi
from tests.operator.stack import Stack, running_stack
from tests.support.podman import container_images, podman  # noqa: F401 - the images, for test_operator_image


@pytest.fixture(autouse=True)
def fast_operator_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The handlers read their timer intervals once, at import: the same fast values for every test."""
    monkeypatch.setenv("AUTHYARD_RESYNC_INTERVAL", "1s")
    monkeypatch.setenv("AUTHYARD_CLIENT_RESYNC_INTERVAL", "1s")


@pytest.fixture
def kmock_options(kmock_options: dict[str, Any]) -> dict[str, Any]:
    """kmock's own options (ini, ``@pytest.mark.kmock(...)``) with our emulator class."""
    return {**kmock_options, "cls": AuthyardEmulator}


@pytest.fixture
async def emulator(kmock: AuthyardEmulator) -> AsyncIterator[AuthyardEmulator]:
    assert isinstance(kmock, AuthyardEmulator)
    declare_authyard_api(kmock)
    yield kmock
    kmock.close_watches()  # let the HTTP server stop without waiting for open watch streams


@pytest.fixture
def kubeconfig(emulator: AuthyardEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = write_kubeconfig(tmp_path / "kubeconfig", str(emulator.url).rstrip("/"))
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)  # never the in-cluster config
    return path


@pytest.fixture
async def kube(emulator: AuthyardEmulator) -> AsyncIterator[KubeApi]:
    api = KubeApi(str(emulator.url).rstrip("/"), TOKEN)
    yield api
    await api.close()


@pytest.fixture
async def operator(
    emulator: AuthyardEmulator, kubeconfig: Path
) -> AsyncIterator[Callable[..., Awaitable[OperatorRun]]]:
    """``await operator(target, *, env=None, ready=None, timeout=30, settings=None)``.

    ``target``: a handler file, a module name, or kopf CLI args (see kopf_harness.operator_args).
    ``ready`` defaults to "a watch on AuthServers is open"."""
    runs: list[OperatorRun] = []

    async def start(target: Any, *, ready: Callable[[], Any] | None = None, **kwargs: Any) -> OperatorRun:
        run = OperatorRun(target, **kwargs)
        runs.append(run)
        return await run.start(ready=ready or (lambda: emulator.active_watches(AUTHSERVERS) > 0))

    yield start
    for run in reversed(runs):
        await run.stop()


@pytest.fixture
async def operator_process(
    emulator: AuthyardEmulator, kubeconfig: Path, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[OperatorProcess]]]:
    """``await operator_process(command, *, env=None, ready=None, timeout=30)``; the command is e.g.
    ``kopf_command("authyard_operator.main")`` or the console script. Logs: ``process.output``."""
    processes: list[OperatorProcess] = []

    async def start(
        command: Any, *, ready: Callable[[], Any] | None = None, **kwargs: Any
    ) -> OperatorProcess:
        log_path = tmp_path / f"operator-{len(processes)}.log"
        process = OperatorProcess(command, log_path=log_path, **kwargs)
        processes.append(process)
        return await process.start(ready=ready or (lambda: emulator.active_watches(AUTHSERVERS) > 0))

    yield start
    for process in reversed(processes):
        await process.stop()


@pytest.fixture
async def stack(operator, emulator, kube, postgres_cluster, tmp_path) -> AsyncIterator[Stack]:
    async def start_operator(issuer: str) -> OperatorRun:
        return await operator("authyard_operator.main", env={"AUTHYARD_ADMIN_URL_TEMPLATE": issuer})

    async with running_stack(emulator, kube, postgres_cluster, tmp_path, start_operator) as running:
        yield running
