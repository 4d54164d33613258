"""``authyard-operator``: health and metrics endpoints, leader election, then the kopf operator."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys

import kopf
from aiohttp import web
from prometheus_client import start_http_server

from authyard_operator import main as operator_module  # noqa: F401 - registers the handlers
from authyard_operator import metrics
from authyard_operator.kube.client import Kube
from authyard_operator.leadership import LeaderElector
from authyard_operator.settings import OperatorSettings

log = logging.getLogger("authyard_operator")


async def _health_server(port: int) -> web.AppRunner:
    """Liveness for active and standby replicas alike: the process and its event loop answer."""

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()  # noqa: S104 - probed by the kubelet
    return runner


async def run(settings: OperatorSettings) -> int:
    health = await _health_server(settings.health_port)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    lost_leadership = asyncio.Event()
    elector: LeaderElector | None = None
    renewal: asyncio.Task[None] | None = None
    kube: Kube | None = None
    try:
        if settings.leader_election:
            kube = await Kube.connect()
            identity = settings.identity or f"{socket.gethostname()}-{os.getpid()}"
            elector = LeaderElector(
                kube, settings.lease_namespace, settings.lease_name, identity,
                settings.lease_duration.total_seconds(), settings.lease_renew_interval.total_seconds(),
            )  # fmt: skip
            log.info("standby: waiting for lease %s/%s", settings.lease_namespace, settings.lease_name)
            await elector.wait_until_leader()
            metrics.IS_LEADER.set(1)
            renewal = asyncio.create_task(elector.keep_leading(lost_leadership))
        namespaces = settings.watch_namespaces
        await kopf.operator(
            standalone=True, clusterwide=not namespaces, namespaces=namespaces, stop_flag=lost_leadership,
        )  # fmt: skip
        # kopf returned: asked to stop (0), or leadership was lost: exit non-zero and come back as a standby
        # rather than act without the lease.
        return 1 if lost_leadership.is_set() else 0
    finally:
        metrics.IS_LEADER.set(0)
        if renewal is not None:
            renewal.cancel()
        if elector is not None:
            await elector.release()
        if kube is not None:
            await kube.close()
        await health.cleanup()


def main() -> int:
    settings = OperatorSettings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return asyncio.run(run(settings))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
