"""Everything a benchmark run starts, stopped whatever happens: the servers (SIGTERM, then SIGKILL of their
process groups, each wait bounded: ``harness.processes.ServerProcess.stop``), the PostgreSQL cluster, the
work directory."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from harness.postgres import PostgresCluster
from harness.processes import ServerProcess


def logger(name: str) -> Callable[[str], None]:
    """A progress log on stderr, each line stamped ``[name HH:MM:SS]``."""

    def log(message: str) -> None:
        print(f"[{name} {datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    return log


@dataclass
class Fleet:
    workdir: Path
    log: Callable[[str], None]
    keep: bool = False  # leave the work directory behind (its logs) instead of removing it
    servers: list[ServerProcess] = field(default_factory=list)
    cluster: PostgresCluster | None = None

    def postgres(self) -> PostgresCluster:
        """The run's throwaway PostgreSQL cluster, started on first use."""
        if self.cluster is None:
            self.log("starting a throwaway PostgreSQL 15 cluster")
            cluster = PostgresCluster(durable=True)  # every commit flushed, as users run it
            self.cluster = cluster  # registered before it starts: close() stops a half-started one too
            cluster.start()
            cluster.wait_until_accepting()
        return self.cluster

    def launch(self, server: ServerProcess) -> ServerProcess:
        """Starts ``server`` (waiting for its readiness path, bounded); it is stopped by :meth:`close`."""
        self.servers.append(server)
        self.log(f"starting {server.name} on {server.base_url}")
        server.start()
        return server

    def stop(self, server: ServerProcess) -> None:
        server.stop()
        self.servers.remove(server)

    def close(self) -> None:
        for server in reversed(self.servers):
            try:
                server.stop()
            except Exception as error:  # keep stopping the others
                self.log(f"stopping {server.name} failed: {error!r}")
        self.servers.clear()
        if self.cluster is not None:
            try:
                self.cluster.destroy()
            except Exception as error:
                self.log(f"stopping PostgreSQL failed: {error!r}")
            self.cluster = None
        if self.keep:
            self.log(f"kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
