"""wrk on loopback, bounded by ``-d``, with the Lua scripts of ``bench/lua``; one JSON line per run."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA_DIR = Path(__file__).resolve().parent / "lua"
_MARKER = "BENCH_JSON "
# wrk -t: one thread per core is what wrk wants; it needs at least one connection per thread.
MAX_THREADS = max(1, min(2, os.cpu_count() or 1))


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError(
            "wrk is not installed: run scripts/bench.sh (it installs it) or apt-get install wrk"
        )
    return found


@dataclass
class WrkRun:
    """A started wrk process; :meth:`result` waits (bounded) and parses its summary."""

    process: subprocess.Popen[str]
    duration: float
    command: list[str]

    def result(self) -> dict[str, float | int]:
        try:
            stdout, stderr = self.process.communicate(timeout=self.duration + 60)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"wrk did not finish: {' '.join(self.command)}") from None
        for line in stdout.splitlines():
            if line.startswith(_MARKER):
                summary: dict[str, float | int] = json.loads(line[len(_MARKER) :])
                seconds = summary["duration_us"] / 1e6
                summary["rps"] = summary["requests"] / seconds if seconds > 0 else 0.0
                return summary
        raise RuntimeError(f"wrk printed no summary (exit {self.process.returncode}):\n{stdout}\n{stderr}")

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            self.process.wait(timeout=10)


def start(
    script: str,
    url: str,
    concurrency: int,
    duration: float,
    env: dict[str, str] | None = None,
) -> WrkRun:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("the benchmark only sends traffic to 127.0.0.1")
    threads = min(MAX_THREADS, concurrency)
    command = [
        wrk_binary(),
        "-t",
        str(threads),
        "-c",
        str(concurrency),
        "-d",
        f"{duration:g}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_DIR / script),
        url,
    ]
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.update(BENCH_LUA_DIR=str(LUA_DIR), BENCH_THREADS=str(threads))
    process = subprocess.Popen(  # noqa: S603 - wrk with arguments built here
        command, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    return WrkRun(process, duration, command)


def run(
    script: str,
    url: str,
    concurrency: int,
    duration: float,
    env: dict[str, str] | None = None,
) -> dict[str, float | int]:
    wrk_run = start(script, url, concurrency, duration, env)
    try:
        return wrk_run.result()
    finally:
        wrk_run.kill()
