"""Operator scale: N OAuthClients on one AuthServer, end to end, outside pytest.

``bash scripts/bench-operator.sh`` (or ``.venv/bin/python -m bench.operator_scale --clients 100 1000``).
For each N it starts, on loopback only:

* the emulated Kubernetes API (harness/kube_emulator.py, served by kmock's aiohttp server as its pytest
  plugin does, for the lifetime of one run) with the repository's CRDs;
* ``authyard-operator`` as a child process (leader election off, production resync intervals, metrics port);
* an AuthServer, and ``authserver serve`` on a throwaway PostgreSQL 15 cluster with the admin token the
  operator generated (the Deployment's pods, in effect);

then applies N confidential OAuthClients and prints: the time until all N are Ready, each client's time
from apply to Ready (p50, p99: from the emulated API's own record of when it stored the object and when
the status it stored first said Ready), the operator's reconciles per second over that time, its CPU per
client, its peak RSS (VmHWM) and the auth server's client count. Every wait has a deadline; everything
stops at the end, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from bench import processes
from harness.kube import OAUTHCLIENTS, serving_emulator, write_kubeconfig
from harness.kube_emulator import AuthyardEmulator, WatchEvent, as_resource
from harness.operator import (
    OPERATOR_SCRIPT,
    PLATFORM,
    TEAM,
    OperatorProcess,
    ServedAuthServer,
    oauthclient,
    operator_process_env,
    ready_condition,
    registered_client_ids,
    scrape_reconciles,
    served_authserver,
)
from harness.polling import wait_for
from harness.postgres import PostgresCluster

POST_CONCURRENCY = 20
STEP_SECONDS = 60.0  # the deadline of each step before the clients are applied
STOP_SECONDS = 20.0


@dataclass
class Result:
    clients: int
    seconds_to_apply: float
    seconds_until_all_ready: float
    reconciles: int
    reconciles_per_second: float
    operator_peak_rss_mib: float
    operator_rss_mib: float
    server_clients: int
    emulator_objects: int
    # CPU seconds spent during the run (apply until all Ready): where the time goes.
    operator_cpu_s: float
    server_cpu_s: float
    emulator_cpu_s: float  # this process: the emulated API server
    operator_cpu_ms_per_client: float
    ready_p50_s: float  # one client's apply (stored by the API) -> its status first Ready
    ready_p99_s: float
    ready_max_s: float
    # --steady: over that many seconds after all were Ready (resync timers, usage passes), per second.
    steady_seconds: float = 0.0
    steady_reconciles_per_second: float | None = None
    steady_operator_cores: float | None = None  # operator CPU seconds per second
    steady_emulator_cores: float | None = None


def ready(obj: dict[str, object] | None) -> bool:
    return ready_condition(obj).get("status") == "True"


def percentile(values: Iterable[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``fraction`` of them at or below."""
    ordered = sorted(values)
    if not ordered or not 0 < fraction <= 1:
        raise ValueError("percentile needs values and a fraction in (0, 1]")
    return ordered[math.ceil(fraction * len(ordered)) - 1]


@dataclass
class ReadyTimes:
    """When each object of one resource and namespace was created and when its status first said Ready,
    read from the API's write log as it grows (``feed`` the events written since the last call)."""

    resource: str
    namespace: str
    created: dict[str, float] = field(default_factory=dict)
    became_ready: dict[str, float] = field(default_factory=dict)

    def feed(self, events: Iterable[WatchEvent]) -> None:
        resource = as_resource(self.resource)
        for event in events:
            if event.resource != resource or event.namespace != self.namespace:
                continue
            if event.type == "ADDED":
                self.created.setdefault(event.name, event.at)
            if event.name not in self.became_ready and event.type != "DELETED" and ready(event.object):
                self.became_ready[event.name] = event.at

    def latencies(self) -> list[float]:
        """Seconds from creation to first Ready, of each object that got there."""
        return [at - self.created[name] for name, at in self.became_ready.items() if name in self.created]


def cpu_seconds(pid: int | None = None) -> float:
    """utime + stime of a process (None: this one), in seconds."""
    return processes.own_cpu_seconds() if pid is None else processes.cpu_seconds([pid])


async def total_reconciles(metrics_port: int) -> int:
    return int(sum((await scrape_reconciles(metrics_port)).values()))


async def run_once(clients: int, cluster: PostgresCluster, workdir: Path, steady: float = 0.0) -> Result:
    async with serving_emulator(namespaces=(PLATFORM, TEAM)) as emulator:
        kubeconfig = write_kubeconfig(workdir / "kubeconfig", str(emulator.url).rstrip("/"))
        # Production resync intervals: nothing of this shell's AUTHYARD_* settings reaches the operator.
        operator = OperatorProcess(
            OPERATOR_SCRIPT, log_path=workdir / "operator.log", timeout=STOP_SECONDS, isolated=True
        )

        async def start_operator(issuer: str) -> OperatorProcess:
            operator.env = {
                "KUBECONFIG": str(kubeconfig),
                **operator_process_env(issuer, log_level="warning"),
            }
            return await operator.start(
                ready=lambda: emulator.active_watches() >= 3, ready_timeout=STEP_SECONDS
            )

        try:
            async with served_authserver(
                emulator, cluster, workdir, start_operator, timeout=STEP_SECONDS
            ) as served:
                result = await measure(clients, emulator, served)
                if steady > 0:
                    await measure_steady(result, served, steady)
                return result
        finally:
            await operator.stop()


async def measure(
    clients: int, emulator: AuthyardEmulator, served: ServedAuthServer[OperatorProcess]
) -> Result:
    """Applies ``clients`` OAuthClients and waits until all of them are Ready."""
    operator, server = served.operator, served.server
    assert operator.process is not None
    operator_pid, metrics_port = operator.process.pid, int(operator.env["AUTHYARD_METRICS_PORT"])
    names = [f"client-{index:05d}" for index in range(clients)]
    before = await total_reconciles(metrics_port)
    cpu_before = cpu_seconds(operator_pid), cpu_seconds(server.pid), cpu_seconds()
    started = time.monotonic()
    semaphore = asyncio.Semaphore(POST_CONCURRENCY)
    path = f"/apis/authyard.dev/v1alpha1/namespaces/{TEAM}/oauthclients"

    async with httpx.AsyncClient(base_url=str(emulator.url), timeout=30) as http:

        async def apply(name: str) -> None:
            async with semaphore:
                (await http.post(path, json=oauthclient(name))).raise_for_status()

        await asyncio.gather(*(apply(name) for name in names))
    applied = time.monotonic() - started

    # Read incrementally from the API's write log: listing (and copying) every object twice a second
    # cost this process more CPU than serving the operator did at 10,000 clients.
    times, seen = ReadyTimes(OAUTHCLIENTS, TEAM), 0

    def all_ready() -> bool:
        nonlocal seen
        events = emulator.writes(seen)
        seen += len(events)
        times.feed(events)
        return len(times.became_ready) >= clients

    await wait_for(all_ready, 120 + 2.0 * clients, interval=0.5, message=f"{clients} clients not all Ready")
    elapsed = time.monotonic() - started
    cpu = [
        round(after - before, 1)
        for before, after in zip(
            cpu_before, (cpu_seconds(operator_pid), cpu_seconds(server.pid), cpu_seconds()), strict=True
        )
    ]
    done = await total_reconciles(metrics_port) - before
    memory = processes.memory_kib(operator_pid)
    registered = len(await registered_client_ids(server.base_url, served.admin_token))
    kinds = (OAUTHCLIENTS, "v1/secrets", "v1/events")
    objects = sum(len(emulator.list(resource, TEAM)) for resource in kinds)
    latencies = times.latencies()
    return Result(
        clients=clients,
        seconds_to_apply=round(applied, 2),
        seconds_until_all_ready=round(elapsed, 2),
        reconciles=done,
        reconciles_per_second=round(done / elapsed, 1),
        operator_peak_rss_mib=round(memory["VmHWM"] / 1024, 1),
        operator_rss_mib=round(memory["VmRSS"] / 1024, 1),
        server_clients=registered,
        emulator_objects=objects,
        operator_cpu_s=cpu[0],
        server_cpu_s=cpu[1],
        emulator_cpu_s=cpu[2],
        operator_cpu_ms_per_client=round(cpu[0] * 1000 / clients, 1),
        ready_p50_s=round(percentile(latencies, 0.5), 2),
        ready_p99_s=round(percentile(latencies, 0.99), 2),
        ready_max_s=round(max(latencies), 2),
    )


async def measure_steady(result: Result, served: ServedAuthServer[OperatorProcess], seconds: float) -> None:
    """The operator's load once every client is Ready: its CPU and reconciles over ``seconds`` (a fixed
    measurement window, not a wait for anything)."""
    operator = served.operator
    assert operator.process is not None
    pid, metrics_port = operator.process.pid, int(operator.env["AUTHYARD_METRICS_PORT"])
    reconciles, operator_cpu, emulator_cpu = (
        await total_reconciles(metrics_port),
        cpu_seconds(pid),
        cpu_seconds(),
    )
    started = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - started
    result.steady_seconds = round(elapsed, 1)
    result.steady_reconciles_per_second = round(
        (await total_reconciles(metrics_port) - reconciles) / elapsed, 1
    )
    result.steady_operator_cores = round((cpu_seconds(pid) - operator_cpu) / elapsed, 2)
    result.steady_emulator_cores = round((cpu_seconds() - emulator_cpu) / elapsed, 2)


def table(results: list[Result]) -> str:
    lines = [
        "| OAuthClients | apply (s) | all Ready (s) | apply → Ready p50 / p99 / max (s) | reconciles/s "
        "| operator peak RSS (MiB) | operator CPU per client (ms) | auth server clients "
        "| CPU s: operator / auth server / emulated API |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.clients:,} | {r.seconds_to_apply} | {r.seconds_until_all_ready} | "
            f"{r.ready_p50_s} / {r.ready_p99_s} / {r.ready_max_s} | {r.reconciles_per_second} | "
            f"{r.operator_peak_rss_mib} | {r.operator_cpu_ms_per_client} | {r.server_clients:,} | "
            f"{r.operator_cpu_s} / {r.server_cpu_s} / {r.emulator_cpu_s} |"
        )
    return "\n".join(lines)


async def main_async(counts: list[int], steady: float = 0.0) -> list[Result]:
    cluster = PostgresCluster(max_connections=100)
    cluster.start()
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="authyard-operator-scale-") as tmp:
            for count in counts:
                print(f"running N={count} ...", file=sys.stderr, flush=True)
                result = await run_once(count, cluster, Path(tmp) / f"n{count}", steady)
                print(json.dumps(asdict(result)), file=sys.stderr, flush=True)
                results.append(result)
    finally:
        cluster.destroy()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000], help="values of N")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--steady", type=float, default=0.0, help="then measure the operator's load for this many seconds"
    )
    args = parser.parse_args()
    if not 0 <= args.steady <= 1800:
        parser.error("--steady must be between 0 and 1800 seconds")
    results = asyncio.run(main_async(args.clients, args.steady))
    print(table(results))
    for r in results:
        if r.steady_seconds:
            print(
                f"{r.clients:,} clients, {r.steady_seconds} s after all Ready: "
                f"{r.steady_reconciles_per_second} reconciles/s, operator {r.steady_operator_cores} cores, "
                f"emulated API {r.steady_emulator_cores}"
            )
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0 if all(r.server_clients == r.clients for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
