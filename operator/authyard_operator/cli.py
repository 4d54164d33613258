"""``authyard-operator``: health and metrics endpoints, leader election, then the kopf operator.

Configured by ``AUTHYARD_*`` environment variables (settings.py); the only options are ``--help`` and
``--version``, answered before kopf is even imported.

Stopping. SIGTERM and SIGINT stop the operator in every phase. While it is a standby (waiting for the
Lease) they are handled here -- as PID 1 in a container a process without a handler never sees them. While
kopf runs, kopf handles them; losing the Lease stops kopf the same way, with a SIGTERM to this process,
because kopf's ``stop_flag`` leaves a task waiting on that flag after a signal stop, which kopf then waits
5 s for.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from importlib import metadata
from typing import TYPE_CHECKING

from authyard_operator.settings import OperatorSettings

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("authyard_operator")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def version() -> str:
    try:
        return metadata.version("authyard")
    except metadata.PackageNotFoundError:
        return "unknown"


def _shown(value: object) -> str:
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "(none)"
    return str(value) if value != "" else "(none)"


def build_parser() -> argparse.ArgumentParser:
    variables = "\n".join(
        f"  AUTHYARD_{name.upper():<26} {field.description + ' ' if field.description else ''}"
        f"[default: {_shown(field.get_default(call_default_factory=True))}]"
        for name, field in OperatorSettings.model_fields.items()
    )
    parser = argparse.ArgumentParser(
        prog="authyard-operator",
        description="The Authyard operator: reconciles AuthServer and OAuthClient resources.\n"
        "In a pod it uses its service account; elsewhere KUBECONFIG (default: ~/.kube/config).",
        epilog=f"configuration (environment variables):\n{variables}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    return parser


async def _health_server(port: int) -> web.AppRunner:
    """Liveness for active and standby replicas alike: the process and its event loop answer."""
    from aiohttp import web

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()  # noqa: S104 - probed by the kubelet
    return runner


def _on_stop_signals(callback: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, callback)


async def _pass_on_early_signal(kopf_ready: asyncio.Event, stopping: asyncio.Event) -> None:
    """A signal that arrived after the standby phase but before kopf took the handlers over reached ours:
    hand it to kopf once kopf is ready to act on it."""
    await kopf_ready.wait()
    if stopping.is_set():
        signal.raise_signal(signal.SIGTERM)


async def _unless_stopping(work: Awaitable[None], stopping: asyncio.Event) -> bool:
    """Await ``work``: True when it finished, False (and ``work`` cancelled) when a stop signal came first."""
    task, stop = asyncio.ensure_future(work), asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, stop):
            pending.cancel()
        await asyncio.wait({task, stop})  # both settled: cancelled, failed or done
    if task.cancelled():
        return False
    task.result()  # its failure, if it failed
    return True


async def run(settings: OperatorSettings) -> int:
    import kopf
    from prometheus_client import start_http_server

    from authyard_operator import main as operator_module  # noqa: F401 - registers the handlers
    from authyard_operator import metrics
    from authyard_operator.kube.client import Kube
    from authyard_operator.leadership import LeaderElector

    stopping = asyncio.Event()
    _on_stop_signals(stopping.set)
    health = await _health_server(settings.health_port)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    lost_leadership = asyncio.Event()
    elector: LeaderElector | None = None
    leading = False
    background: list[asyncio.Task[None]] = []
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
            if not await _unless_stopping(elector.wait_until_leader(), stopping):
                log.info("stopped while on standby")
                return 0
            leading = True
            metrics.IS_LEADER.set(1)
            background.append(asyncio.create_task(elector.keep_leading(lost_leadership)))
            background.append(asyncio.create_task(_stop_when(lost_leadership)))
        if stopping.is_set():
            return 0
        kopf_ready = asyncio.Event()
        background.append(asyncio.create_task(_pass_on_early_signal(kopf_ready, stopping)))
        namespaces = settings.watch_namespaces
        await kopf.operator(
            standalone=True, clusterwide=not namespaces, namespaces=namespaces, ready_flag=kopf_ready,
        )  # fmt: skip
        _on_stop_signals(stopping.set)  # kopf's handlers are gone with it; a second signal changes nothing
        # kopf returned: asked to stop (0), or leadership was lost: exit non-zero and come back as a standby
        # rather than act without the lease.
        return 1 if lost_leadership.is_set() else 0
    finally:
        metrics.IS_LEADER.set(0)
        for task in background:
            task.cancel()
        if elector is not None and leading:
            await elector.release()
        if kube is not None:
            await kube.close()
        await health.cleanup()


async def _stop_when(lost_leadership: asyncio.Event) -> None:
    await lost_leadership.wait()
    signal.raise_signal(signal.SIGTERM)  # kopf's own handler stops it, as on a pod's termination


def main(argv: Sequence[str] | None = None) -> int:
    build_parser().parse_args(argv)
    settings = OperatorSettings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        import kopf  # noqa: F401 - the operator's own dependency, absent from the auth server's image
    except ModuleNotFoundError as missing:
        print(
            f"authyard-operator: {missing.name} is not installed: install authyard with the 'operator' extra",
            file=sys.stderr,
        )
        return 2
    from authyard_operator.kube import config as cluster_config

    try:
        cluster_config.load()  # before anything starts: no configuration is a one-line error, not a crash
        return asyncio.run(run(settings))
    except cluster_config.ConfigError as error:
        print(f"authyard-operator: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
