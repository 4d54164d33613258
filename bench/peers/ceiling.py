"""The yardstick of ``python -m bench`` in the same run: ``bench/ceiling_app.py``, a constant-JSON FastAPI
route on uvicorn with Authyard's uvicorn settings and the same worker count."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import processes
from bench.peers.workload import Workload, bench_script
from harness.ports import free_port
from harness.processes import ServerProcess


@dataclass
class Ceiling:
    server: ServerProcess
    label: str = "ceiling (constant JSON)"

    @staticmethod
    def start(launch: Callable[[ServerProcess], ServerProcess], directory: Path, workers: int) -> Ceiling:
        return Ceiling(launch(processes.ceiling(directory, free_port(), workers)))

    def scenarios(self) -> frozenset[str]:
        return frozenset({"ceiling"})

    def workload(self, scenario: str, count: int) -> Workload:
        return Workload(bench_script("get.lua"), self.server.base_url + "/")
