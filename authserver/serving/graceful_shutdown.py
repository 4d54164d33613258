"""Graceful shutdown behind a load balancer: drain first, then stop.

On SIGTERM a worker first drains for ``shutdown_drain``: readiness answers 503 so load balancers (a
Service's endpoints, HAProxy's health checks) stop sending it new requests, and every response carries
``Connection: close`` so clients holding kept-alive connections reconnect to another backend; requests that
still arrive are served. Then uvicorn's own graceful shutdown runs: it stops accepting, lets in-flight
requests finish within ``shutdown_timeout`` and exits. A second SIGTERM, or SIGINT, stops without waiting.

Kubernetes removes a terminating pod from its Service while the kubelet signals it, and the two race: a
drain in the server does what a ``preStop`` sleep does, without needing a ``sleep`` binary in the image, and
works the same behind any load balancer that health-checks ``/readyz``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

_SignalHandler = Callable[[int, FrameType | None], Any]
_draining = False


def draining() -> bool:
    return _draining


def install(drain_seconds: float) -> None:
    """Put the drain in front of the SIGTERM handler uvicorn installed for this worker.

    Called from the application's startup, which runs inside uvicorn's signal capture; uvicorn restores
    the process's original handlers itself when it stops.
    """
    if drain_seconds <= 0 or threading.current_thread() is not threading.main_thread():
        return
    stop = signal.getsignal(signal.SIGTERM)
    if not callable(stop):
        return
    loop = asyncio.get_running_loop()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        global _draining
        if _draining:  # asked twice: stop now
            stop(signum, frame)
            return
        _draining = True
        # A signal handler may only hand work to the loop; the loop logs and schedules the stop.
        loop.call_soon_threadsafe(_drain_then_stop, loop, drain_seconds, stop, signum)

    signal.signal(signal.SIGTERM, on_sigterm)


def _drain_then_stop(
    loop: asyncio.AbstractEventLoop, drain_seconds: float, stop: _SignalHandler, signum: int
) -> None:
    log.info("SIGTERM: draining %.1f s (readiness 503, keep-alive off), then shutting down", drain_seconds)
    loop.call_later(drain_seconds, stop, signum, None)
