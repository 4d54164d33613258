"""Server processes on loopback: ``authserver serve`` as users run it, and the ceiling app on uvicorn.

Each runs in its own session (process group) in a working directory of its own, with its output in
``server.log`` there. Readiness is a poll with a deadline; shutdown is SIGTERM, then SIGKILL of the group.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from authserver.serving import connection_shares
from authserver.serving.balanced_loop import UVICORN_LOOP
from authserver.serving.http_protocol import UVICORN_HTTP

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
CLI_TIMEOUT_SECONDS = 120.0


def authserver_command() -> list[str]:
    script = VENV_BIN / "authserver"
    return [str(script)] if script.exists() else [sys.executable, "-m", "authserver"]


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without any AUTHSERVER_* setting leaking in, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AUTHSERVER_") and key != "PROMETHEUS_MULTIPROC_DIR"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """``authserver <args>`` against the server's configuration; its stdout, or an error with its output."""
    result = subprocess.run(  # noqa: S603 - our own console script, fixed arguments
        [*authserver_command(), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"authserver {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result.stdout


@dataclass
class Server:
    """A server process on 127.0.0.1:``port``, started by :meth:`start`, always stopped by :meth:`stop`."""

    name: str
    command: list[str]
    directory: Path
    port: int
    env: dict[str, str]
    ready_path: str
    process: subprocess.Popen[bytes] | None = None
    _log: object = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self._log = log
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv built by the harness
            self.command,
            cwd=self.directory,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        last = "no answer"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.process.returncode} before it was ready:\n"
                        f"{self.log_tail()}"
                    )
                try:
                    response = client.get(self.base_url + self.ready_path)
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text[:200]}"
                except httpx.TransportError as error:
                    last = type(error).__name__
                time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} not ready within {START_TIMEOUT_SECONDS:.0f} s ({last}):\n{self.log_tail()}"
        )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
        if process is not None:
            # Workers left behind by a supervisor that died (they share its process group).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
            self._log = None

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes: the serve process itself with one worker, else its spawned
        children (multiprocessing ``spawn_main``; the resource tracker is not a worker)."""
        children = [pid for pid in _children(self.pid) if b"spawn_main" in _cmdline(pid)]
        return children or [self.pid]


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent:
            found.append(int(entry.name))
    return sorted(found)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


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


def authserver(directory: Path, port: int, workers: int, env: dict[str, str]) -> Server:
    command = [
        *authserver_command(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    return Server(f"authserver-w{workers}", command, directory, port, env, "/readyz")


def ceiling(directory: Path, port: int, workers: int) -> Server:
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
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
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
    return Server(f"ceiling-w{workers}", command, directory, port, env, "/")
