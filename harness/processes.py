"""A program serving HTTP on loopback, in a session (process group) and a working directory of its own.

Its stdout and stderr go to ``<name>.log`` in that directory, so that callers can scan it. Readiness is a
poll of ``ready_path`` with a bounded deadline that fails early (with the log's tail) if the program
exits; shutdown is SIGTERM, then SIGKILL of the whole group after a bound, so that workers a supervisor
left behind go too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
READY_POLL_SECONDS = 0.05


class NotReady(RuntimeError):
    """The program exited before it was ready, or was not ready by the deadline (the log's tail says why)."""


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without any AUTHSERVER_* setting (or metrics directory) leaking into a
    child, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("AUTHSERVER_") and key != "PROMETHEUS_MULTIPROC_DIR"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def listen_args(port: int, workers: int) -> list[str]:
    """The options ``authserver serve`` and uvicorn both take: serve on 127.0.0.1:``port`` with ``workers``
    worker processes."""
    return ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]


class ServerProcess:
    """``command`` serving on 127.0.0.1:``port``; started by :meth:`start`, stopped by :meth:`stop` (which
    may be called any number of times, and again after a restart)."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        directory: Path,
        port: int,
        env: dict[str, str],
        ready_path: str,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.directory = directory
        self.port = port
        self.env = env
        self.ready_path = ready_path
        self.process: subprocess.Popen[bytes] | None = None
        self._group_alive = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} on {self.base_url}>"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Start the program and wait until it answers 200 on ``ready_path``."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.directory,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: its workers go down with it
            )
        self._group_alive = True
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Poll ``ready_path`` until 200 or the deadline; fail early (with the log) if the process exits.
        On failure the process is stopped."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(timeout=2.0) as http:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    self.stop()
                    raise NotReady(
                        f"{self.name} exited with {self.process.returncode} before it was ready:\n"
                        f"{self.log_tail()}"
                    )
                try:
                    response = http.get(self.base_url + self.ready_path)
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code} {response.text[:200]}"
                except httpx.TransportError as error:
                    last = repr(error)
                time.sleep(READY_POLL_SECONDS)
        self.stop()
        raise NotReady(f"{self.name} not ready within {timeout:.0f} s (last: {last}):\n{self.log_tail()}")

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int | None:
        """SIGTERM, then SIGKILL to the process group after ``timeout`` seconds; the exit status."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout)
        if self._group_alive:
            # Workers that outlived their parent (they should not) go too; the group is ours until then.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            self._group_alive = False
        return process.returncode

    def worker_pids(self) -> list[int]:
        """The worker processes a supervisor spawned (multiprocessing's ``spawn_main``; the resource
        tracker is not a worker), from /proc; empty while there are none."""
        pids: list[int] = []
        for children in Path(f"/proc/{self.pid}/task").glob("*/children"):
            for child in children.read_text().split():
                try:
                    if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                        pids.append(int(child))
                except OSError:  # gone meanwhile
                    continue
        return sorted(pids)
