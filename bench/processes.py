"""The servers a benchmark starts (``authserver serve`` as users run it, and the ceiling app on uvicorn)
and what it reads of their processes: CPU time, time spent waiting for a CPU, memory.

Starting and stopping them is the harness's (``harness.processes``, ``harness.authserver``).
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

from authserver.serving import connection_shares
from authserver.serving.balanced_loop import UVICORN_LOOP
from authserver.serving.http_protocol import UVICORN_HTTP
from harness.authserver import AuthServer
from harness.processes import ServerProcess, clean_environment, listen_args

REPO = Path(__file__).resolve().parent.parent


def authserver_environment(
    database_url: str, admin_token: str, db_pool: int, **overrides: str
) -> dict[str, str]:
    """The settings a benchmark gives ``authserver serve``: rate limits off, room for c=50 without the
    overload 503, a fixed pool, warning logs; ``overrides`` change any of them."""
    settings = {
        "AUTHSERVER_DATABASE_URL": database_url,
        "AUTHSERVER_ADMIN_TOKEN": admin_token,
        "AUTHSERVER_TOKEN_RATE_PER_CLIENT": "0",
        "AUTHSERVER_TOKEN_RATE_PER_IP": "0",
        "AUTHSERVER_MAX_IN_FLIGHT": "1024",
        # min = max: SQLAlchemy closes connections above the minimum when they are returned.
        "AUTHSERVER_DB_POOL_MIN_SIZE": str(db_pool),
        "AUTHSERVER_DB_POOL_MAX_SIZE": str(db_pool),
        "AUTHSERVER_LOG_LEVEL": "warning",
    }
    return clean_environment(**{**settings, **overrides})


def worker_pids(server: ServerProcess) -> list[int]:
    """The processes that serve requests: the spawned workers, or the server process itself when it is
    its only worker."""
    return server.worker_pids() or [server.pid]


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (/proc/<pid>/stat utime and stime)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return total


def run_queue_seconds(pids: list[int]) -> float:
    """Time the processes' main threads (the workers' event loops) were ready to run but waited for a CPU,
    so far (/proc/<pid>/schedstat, second field, in ns)."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def own_cpu_seconds() -> float:
    """User + system CPU time this process (the load generator, the emulated API) has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy (not idle or iowait) so far, from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _CLOCK_TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB, from /proc/<pid>/status."""
    values: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
    except OSError:
        pass
    return values


def authserver(directory: Path, port: int, workers: int, env: dict[str, str]) -> AuthServer:
    """``authserver serve`` as a benchmark runs it: without an access log."""
    return AuthServer(directory, port, env, workers=workers, access_log=False, name=f"authserver-w{workers}")


def ceiling(directory: Path, port: int, workers: int) -> ServerProcess:
    """The constant-JSON app with the settings ``authserver serve`` gives uvicorn."""
    env, loop = clean_environment(), "uvloop"
    if workers > 1:  # connections spread over the workers as ``authserver serve`` spreads them
        directory.mkdir(parents=True, exist_ok=True)
        env[connection_shares.ENV] = connection_shares.create(str(directory))
        loop = UVICORN_LOOP
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.ceiling_app:app",
        "--app-dir",
        str(REPO),
        *listen_args(port, workers),
        "--loop",
        loop,
        "--http",
        UVICORN_HTTP,
        "--log-level",
        "info",
        "--no-access-log",
        "--no-proxy-headers",
        "--no-server-header",
        "--timeout-graceful-shutdown",
        "10",
    ]
    return ServerProcess(f"ceiling-w{workers}", command, directory, port, env, "/")
