"""Operator scale: N OAuthClients on one AuthServer, end to end, outside pytest.

``bash scripts/bench-operator.sh`` (or ``.venv/bin/python -m bench.operator_scale --clients 100 1000``).
For each N it starts, on loopback only:

* the emulated Kubernetes API (tests/operator/emulator.py, served by kmock's aiohttp server as its pytest
  plugin does, for the lifetime of one run) with the repository's CRDs;
* ``authyard-operator`` as a child process (leader election off, production resync intervals, metrics port);
* an AuthServer, and ``authserver serve`` on a throwaway PostgreSQL 15 cluster with the admin token the
  operator generated (the Deployment's pods, in effect);

then applies N confidential OAuthClients and prints: the time until all N are Ready, the operator's
reconciles per second over that time, its peak RSS (VmHWM) and the auth server's client count. Every wait
has a deadline; everything stops at the end, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from kmock._internal import apps
from prometheus_client.parser import text_string_to_metric_families

from bench import processes
from tests.operator.emulator import AuthyardEmulator
from tests.support.postgres import PostgresCluster, free_port
from tests.support.server_process import ServerProcess, server_environment

ROOT = Path(__file__).resolve().parents[1]
OPERATOR = Path(sys.executable).parent / "authyard-operator"
GROUP_PATH = "/apis/authyard.dev/v1alpha1/namespaces"
PLATFORM, TEAM = "platform", "team-a"
POST_CONCURRENCY = 20
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


def ready(obj: dict[str, Any] | None) -> bool:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def cpu_seconds(pid: int | None = None) -> float:
    """utime + stime of a process (None: this one), in seconds."""
    return processes.own_cpu_seconds() if pid is None else processes.cpu_seconds([pid])


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmHWM, VmRSS) of a process, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) / 1024  # kB
    return fields["VmHWM"], fields["VmRSS"]


async def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.25) -> None:  # noqa: ASYNC109
    """Poll ``predicate`` (sync or async) until true, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout:.0f}s")


async def reconciles(http: httpx.AsyncClient, port: int) -> int:
    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "authyard_operator_reconciles"
            for sample in family.samples
            if sample.name.endswith("_total")
        )
    )


@contextlib.asynccontextmanager
async def emulated_api() -> AsyncIterator[AuthyardEmulator]:
    """The emulator on a loopback port, as kmock's pytest plugin runs it, with the built-ins and CRDs."""
    async with AuthyardEmulator() as emulator, apps.Server(emulator):
        emulator.declare_builtins()
        for path in sorted((ROOT / "crds").glob("*.yaml")):
            emulator.declare_crd(yaml.safe_load(path.read_text()))
        for namespace in (PLATFORM, TEAM):
            emulator.create_namespace(namespace)
        try:
            yield emulator
        finally:
            emulator.close_watches()


def oauthclient(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "authyard.dev/v1alpha1",
        "kind": "OAuthClient",
        "metadata": {"name": name, "namespace": TEAM},
        "spec": {
            "authServerRef": {"name": "auth", "namespace": PLATFORM},
            "grantTypes": ["client_credentials"],
            "scopes": ["orders.read"],
            "secret": {"name": f"{name}-oauth"},
        },
    }


def write_kubeconfig(workdir: Path, api: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    cluster = {"name": "emulator", "cluster": {"server": api}}
    context = {"name": "emulator", "context": {"cluster": "emulator", "user": "bench"}}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "bench", "user": {"token": "emulator-token"}}],
        "contexts": [context],
        "current-context": "emulator",
    }
    path = workdir / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


async def run_once(clients: int, cluster: PostgresCluster, workdir: Path) -> Result:
    async with emulated_api() as emulator, httpx.AsyncClient(timeout=30) as http:
        api = str(emulator.url).rstrip("/")
        kubeconfig = write_kubeconfig(workdir, api)
        port, metrics_port = free_port(), free_port()
        issuer = f"http://127.0.0.1:{port}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AUTHYARD_", "KUBERNETES_"))},
            "KUBECONFIG": str(kubeconfig),
            "AUTHYARD_LEADER_ELECTION": "false",
            "AUTHYARD_ADMIN_URL_TEMPLATE": issuer,
            "AUTHYARD_HEALTH_PORT": str(free_port()),
            "AUTHYARD_METRICS_PORT": str(metrics_port),
            "AUTHYARD_LOG_LEVEL": "warning",
        }
        with (workdir / "operator.log").open("wb") as log:
            operator = await asyncio.create_subprocess_exec(
                str(OPERATOR), stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, env=env
            )
        server: ServerProcess | None = None
        try:
            await wait_until(
                lambda: emulator.active_watches() >= 3, 60, "the operator did not start watching"
            )
            await http.post(
                f"{api}{GROUP_PATH}/{PLATFORM}/authservers",
                json={
                    "apiVersion": "authyard.dev/v1alpha1",
                    "kind": "AuthServer",
                    "metadata": {"name": "auth", "namespace": PLATFORM},
                    "spec": {"issuer": issuer, "clientPolicy": {"allowedNamespaces": [PLATFORM, TEAM]}},
                },
            )
            await wait_until(
                lambda: emulator.get("v1/secrets", PLATFORM, "auth-admin"), 60, "no admin Secret"
            )
            admin_secret = emulator.get("v1/secrets", PLATFORM, "auth-admin") or {}
            admin_token = base64.b64decode(admin_secret["data"]["token"]).decode()
            directory = workdir / "server"
            directory.mkdir()
            database = cluster.create_database(f"scale_{clients}_{port}")
            server = ServerProcess(
                directory,
                port,
                server_environment(directory, database, issuer, AUTHSERVER_ADMIN_TOKEN=admin_token),
            )
            await asyncio.to_thread(server.cli, "migrate")
            await asyncio.to_thread(server.start)
            await wait_until(
                lambda: emulator.get("apps/v1/deployments", PLATFORM, "auth"), 60, "no Deployment"
            )
            emulator.mark_deployment_ready(PLATFORM, "auth")
            await wait_until(
                lambda: ready(emulator.get("authyard.dev/v1alpha1/authservers", PLATFORM, "auth")),
                60,
                "AuthServer not Ready",
            )

            names = [f"client-{index:05d}" for index in range(clients)]
            assert server.process is not None
            before = await reconciles(http, metrics_port)
            cpu_before = cpu_seconds(operator.pid), cpu_seconds(server.process.pid), cpu_seconds()
            started = time.monotonic()
            semaphore = asyncio.Semaphore(POST_CONCURRENCY)

            async def apply(name: str) -> None:
                async with semaphore:
                    response = await http.post(
                        f"{api}{GROUP_PATH}/{TEAM}/oauthclients", json=oauthclient(name)
                    )
                    response.raise_for_status()

            await asyncio.gather(*(apply(name) for name in names))
            applied = time.monotonic() - started

            def all_ready() -> bool:
                listed = emulator.list("authyard.dev/v1alpha1/oauthclients", TEAM)
                return sum(ready(obj) for obj in listed) == clients

            await wait_until(all_ready, 120 + 2.0 * clients, f"{clients} clients not all Ready", interval=0.5)
            elapsed = time.monotonic() - started
            cpu = [
                round(after - before, 1)
                for before, after in zip(
                    cpu_before,
                    (cpu_seconds(operator.pid), cpu_seconds(server.process.pid), cpu_seconds()),
                    strict=True,
                )
            ]
            done = await reconciles(http, metrics_port) - before
            peak, rss = memory_mib(operator.pid)

            registered, after = 0, None
            headers = {"Authorization": f"Bearer {admin_token}"}
            for _ in range(1000):  # bounded pagination
                page = (
                    await http.get(
                        f"{issuer}/admin/clients",
                        params={"limit": 1000, **({"after": after} if after else {})},
                        headers=headers,
                    )
                ).json()
                registered += len(page)
                if len(page) < 1000:
                    break
                after = page[-1]["client_id"]
            kinds = ("authyard.dev/v1alpha1/oauthclients", "v1/secrets", "v1/events")
            objects = sum(len(emulator.list(resource, TEAM)) for resource in kinds)
            return Result(
                clients=clients,
                seconds_to_apply=round(applied, 2),
                seconds_until_all_ready=round(elapsed, 2),
                reconciles=done,
                reconciles_per_second=round(done / elapsed, 1),
                operator_peak_rss_mib=round(peak, 1),
                operator_rss_mib=round(rss, 1),
                server_clients=registered,
                emulator_objects=objects,
                operator_cpu_s=cpu[0],
                server_cpu_s=cpu[1],
                emulator_cpu_s=cpu[2],
            )
        finally:
            if operator.returncode is None:
                operator.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(operator.wait(), STOP_SECONDS)
                except TimeoutError:
                    operator.kill()
                    await operator.wait()
            if server is not None:
                await asyncio.to_thread(server.stop)


def table(results: list[Result]) -> str:
    lines = [
        "| OAuthClients | apply (s) | all Ready (s) | reconciles | reconciles/s | operator peak RSS (MiB) "
        "| auth server clients | CPU s: operator / auth server / emulated API |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.clients:,} | {r.seconds_to_apply} | {r.seconds_until_all_ready} | {r.reconciles:,} | "
            f"{r.reconciles_per_second} | {r.operator_peak_rss_mib} | {r.server_clients:,} | "
            f"{r.operator_cpu_s} / {r.server_cpu_s} / {r.emulator_cpu_s} |"
        )
    return "\n".join(lines)


async def main_async(counts: list[int]) -> list[Result]:
    cluster = PostgresCluster(max_connections=100)
    cluster.start()
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="authyard-operator-scale-") as tmp:
            for count in counts:
                print(f"running N={count} ...", file=sys.stderr, flush=True)
                result = await run_once(count, cluster, Path(tmp) / f"n{count}")
                print(json.dumps(asdict(result)), file=sys.stderr, flush=True)
                results.append(result)
    finally:
        cluster.destroy()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[100, 1000], help="values of N")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = asyncio.run(main_async(args.clients))
    print(table(results))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0 if all(r.server_clients == r.clients for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
