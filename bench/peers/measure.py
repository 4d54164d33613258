"""One wrk run against one server, and the CPU time the server's whole process group spent on it (uvicorn or
node:cluster workers alike): unlike requests/s, that figure hardly moves with the neighbours' load.

When wrk stops, every connection still has one request in flight, which the server goes on working on. The
run therefore ends only when the server is idle again (its process group's CPU time stops growing, polled,
bounded), so that work neither slows the next server's run nor escapes the count: CPU per response is the
group's CPU time from the start until idle over the responses plus those in-flight requests.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bench import wrk
from bench.peers.workload import Workload
from harness.processes import ServerProcess

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IDLE_POLL_SECONDS = 0.2
IDLE_CPU_SECONDS = 0.02  # less than this per poll interval (10% of a core, two clock ticks): idle
DRAIN_TIMEOUT_SECONDS = 60.0


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in process group ``pgid`` (/proc/<pid>/stat)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return total


def wait_idle(pgid: int) -> float:
    """Polls until the group's CPU time stops growing (bounded); the seconds it took."""
    started = time.monotonic()
    last = group_cpu_seconds(pgid)
    while time.monotonic() - started < DRAIN_TIMEOUT_SECONDS:
        time.sleep(IDLE_POLL_SECONDS)  # poll interval
        now = group_cpu_seconds(pgid)
        if now - last < IDLE_CPU_SECONDS:
            break
        last = now
    return time.monotonic() - started


def run(server: ServerProcess, workload: Workload, concurrency: int, duration: float) -> dict[str, Any]:
    before = group_cpu_seconds(server.pid)
    result: dict[str, Any] = dict(wrk.run(workload.script, workload.url, concurrency, duration, workload.env))
    result["drain_seconds"] = wait_idle(server.pid)
    spent = group_cpu_seconds(server.pid) - before
    served = (result.get("responses") or 0) + (concurrency if not result.get("exhausted") else 0)
    result["cpu_seconds"] = spent
    result["cpu_requests"] = served
    result["cpu_us_per_request"] = spent / served * 1e6 if served else None
    return result
