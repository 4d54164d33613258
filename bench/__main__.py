"""``python -m bench [--duration 5] [--quick]``: the whole benchmark, one command.

Matrix: concurrency 1, 10, 50 x workers 1, 2 x database SQLite, PostgreSQL for the database scenarios
(client_credentials, introspection, refresh_token, authorization_code); ceiling, JWKS and metadata need no
database and run once per worker count. ``--quick``: concurrency 50, 2 workers, 2 s per row.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote

from bench import held, processes, profile, report, samples, seed, wal, workload_issuer, wrk
from bench import login as login_bench
from bench.fleet import Fleet, logger
from harness.authserver import run_cli
from harness.ports import free_port
from harness.processes import ServerProcess

DATABASES = ("sqlite", "postgresql")
SCENARIOS = (
    "ceiling",
    "jwks",
    "metadata",
    "client_credentials",
    "private_key_jwt",
    "private_key_jwt_es256",
    "service_account",
    "token_exchange",
    "introspection",
    "refresh_token",
    "authorization_code",
    "login",
)
PROFILED = (
    "client_credentials",
    "private_key_jwt",
    "private_key_jwt_es256",
    "service_account",
    "token_exchange",
    "introspection",
    "refresh_token",
    "authorization_code",
)
MAX_SEEDED = 300_000
LOGIN_TOKEN_CONCURRENCY = 10


log = logger("bench")


@dataclass
class Database:
    kind: str
    directory: Path
    url: str
    credentials: seed.Credentials = field(default_factory=seed.Credentials.generate)
    user_id: str | None = None
    many_clients: Path | None = None  # --clients N: their Basic credentials, one per line


@dataclass
class Bench:
    args: argparse.Namespace
    duration: float
    concurrencies: list[int]
    worker_counts: list[int]
    databases: list[str]
    scenarios: tuple[str, ...] = SCENARIOS
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="authyard-bench-")))
    rows: list[dict[str, Any]] = field(default_factory=list)
    section: int | None = None  # the database section being measured: its rows' ratios use its ceilings
    logins: list[dict[str, Any]] = field(default_factory=list)
    rss: list[dict[str, Any]] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _databases: dict[str, Database] = field(default_factory=dict)
    fleet: Fleet = field(init=False)
    issuer: workload_issuer.WorkloadIssuer = field(init=False)

    def __post_init__(self) -> None:
        self.fleet = Fleet(self.workdir, log, keep=self.args.keep)
        self.issuer = workload_issuer.WorkloadIssuer()

    # Lifecycle --------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stops every process and the PostgreSQL cluster; removes the working directory."""
        self.fleet.close()
        self.issuer.close()

    def database(self, kind: str) -> Database:
        if kind in self._databases:
            return self._databases[kind]
        directory = self.workdir / kind
        directory.mkdir(parents=True)
        if kind == "sqlite":
            database = Database(kind, directory, f"sqlite+aiosqlite:///{directory}/authserver.db")
        else:
            database = Database(kind, directory, self.fleet.postgres().create_database("authyard_bench"))
            run_cli(["migrate"], self.server_env(database), directory)
        self._databases[kind] = database
        return database

    def server_env(self, database: Database) -> dict[str, str]:
        overrides: dict[str, str] = {}
        for assignment in self.args.server_env or ():
            name, _, value = assignment.partition("=")
            overrides[name] = value
        trusted = self.issuer.trusted_issuers_file(self.workdir)
        return processes.authserver_environment(
            database.url,
            database.credentials.admin_token,
            self.args.db_pool,
            **{"AUTHSERVER_TRUSTED_ISSUERS_FILE": str(trusted), **overrides},
        )

    def start_authserver(self, kind: str, workers: int) -> tuple[ServerProcess, Database]:
        database = self.database(kind)
        log(f"starting authserver serve --workers {workers} on {kind}")
        server = self.fleet.launch(
            processes.authserver(database.directory, free_port(), workers, self.server_env(database))
        )
        seed.register_clients(server.base_url, database.credentials, workload_issuer.SUBJECT)
        if database.user_id is None:
            database.user_id = asyncio.run(seed.ensure_user(database.url, database.credentials.password))
        self.warm_up(
            "client_credentials.lua",
            server.base_url,
            {"BENCH_BASIC": database.credentials.service_basic, "BENCH_SCOPE": seed.SERVICE_SCOPE},
        )
        return server, database

    def warm_up(self, script: str, url: str, env: dict[str, str] | None = None) -> None:
        """A short unrecorded run after each start: imports, caches and connection pools fill first."""
        if self.args.warmup > 0:
            wrk.run(script, url, 10, self.args.warmup, env)

    def warm_client_caches(self, script: str, url: str, env: dict[str, str]) -> None:
        """Unrecorded requests until every worker has read every one of the ``--clients`` clients once: the
        steady state of a server that has been up for a while (each worker's first use of a client reads it
        from the database; after that the client-change sync keeps it). About five requests per client and
        worker, at the rate a cold cache allows."""
        seconds = max(self.args.warmup, self.args.clients * max(self.worker_counts) * 5 / 4000)
        log(f"warming the client caches with {self.args.clients} clients for {seconds:.0f} s")
        wrk.run(script, url, 50, seconds, env)

    def client_credentials_load(self, database: Database) -> tuple[str, dict[str, str]]:
        """The wrk script and environment of the client_credentials row: the one service client, or with
        ``--clients N`` requests spread over N clients (seeded into the database once)."""
        if not self.args.clients:
            return "client_credentials.lua", {
                "BENCH_BASIC": database.credentials.service_basic,
                "BENCH_SCOPE": seed.SERVICE_SCOPE,
            }
        if database.many_clients is None:
            path = database.directory / "many-clients.txt"
            started = time.monotonic()
            seed.seed_service_clients(database.url, self.args.clients, path)
            seconds = time.monotonic() - started
            log(f"seeded {self.args.clients} client_credentials clients in {seconds:.1f} s")
            database.many_clients = path
        env = {"BENCH_TOKEN_FILE": str(database.many_clients), "BENCH_SCOPE": seed.SERVICE_SCOPE}
        return "client_credentials_many.lua", env

    # Measurements -----------------------------------------------------------------------------------------

    def record(
        self, scenario: str, db: str, workers: int, concurrency: int, result: dict[str, Any]
    ) -> dict[str, Any]:
        row = {
            "scenario": scenario,
            "db": db,
            "workers": workers,
            "concurrency": concurrency,
            "rps": result["rps"],
            "p50_ms": result["p50_ms"],
            "p99_ms": result["p99_ms"],
            "errors": result["errors"],
            "exhausted": result.get("exhausted", 0),
            "cpu_us_per_request": result.get("cpu_us_per_request"),
            "machine_cpu_us_per_request": result.get("machine_cpu_us_per_request"),
            "worker_cpu_wait_share": result.get("worker_cpu_wait_share"),
            "wal_flushes": result.get("wal_flushes"),
            "wal_flush_ms_mean": result.get("wal_flush_ms_mean"),
            "writers_held": result.get("writers_held"),
            "writers_held_ms_at_most": result.get("writers_held_ms_at_most"),
            "ratio": None,
            "wrk": result,
        }
        if scenario != "ceiling" and self.section is not None:
            row["section"] = self.section
        self.rows.append(row)
        log(
            f"{scenario:18} {db:10} w={workers} c={concurrency:<3} {result['rps']:9.0f} req/s "
            f"p50 {result['p50_ms']:7.2f} ms  p99 {result['p99_ms']:7.2f} ms  errors {result['errors']}"
            + (f"  EXHAUSTED {result['exhausted']}" if result.get("exhausted") else "")
            + (f"  {result['cpu_us_per_request']:.0f} us CPU/req" if result.get("cpu_us_per_request") else "")
            + (
                f"  WAL flushes {result['wal_flushes']}, mean {result['wal_flush_ms_mean']:.2f} ms"
                if result.get("wal_flush_ms_mean") is not None
                else ""
            )
            + (
                f"  writers held {result['writers_held']}x, {result['writers_held_ms']:.0f} ms"
                if result.get("writers_held")
                else ""
            )
        )
        return row

    def measured(
        self,
        server: ServerProcess,
        script: str,
        url: str,
        concurrency: int,
        env: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """wrk, plus the CPU time the server's workers spent per response: a figure that, unlike
        requests/s, hardly moves with whatever else the shared machine runs."""
        pids = processes.worker_pids(server)
        before, machine_before = processes.cpu_seconds(pids), processes.machine_busy_seconds()
        waited_before, started = processes.run_queue_seconds(pids), time.monotonic()
        result: dict[str, Any] = dict(wrk.run(script, url, concurrency, self.duration, env))
        spent = processes.cpu_seconds(pids) - before
        machine = processes.machine_busy_seconds() - machine_before
        # How long each worker's event loop, ready to run, waited for a CPU: the share of the run in which
        # its requests made no progress at all, whatever their own cost (the latency tail on 2 cores).
        waited = processes.run_queue_seconds(pids) - waited_before
        elapsed = (time.monotonic() - started) * len(pids)
        result["worker_cpu_wait_share"] = waited / elapsed if elapsed else None
        responses = result.get("responses") or result.get("requests") or 0
        result["cpu_us_per_request"] = spent / responses * 1e6 if responses else None
        # Everything the machine did per response: workers, wrk, the database, and anything else running.
        result["machine_cpu_us_per_request"] = machine / responses * 1e6 if responses else None
        return result

    def sampled(
        self, workers: int, concurrency: int, measure: Callable[..., dict[str, Any]], *args: Any
    ) -> dict[str, Any]:
        """``measure(*args)`` once, or ``--repeat`` times back to back at the targets' setting (the most
        workers and connections of the run), merged into medians (``bench/samples.py``)."""
        at_target = workers == max(self.worker_counts) and concurrency == max(self.concurrencies)
        count = self.args.repeat if at_target else 1
        results = []
        for index in range(count):
            results.append(measure(*args))
            if count > 1:
                last = results[-1]
                log(f"  sample {index + 1}/{count}: {last['rps']:.0f} req/s, p99 {last['p99_ms']:.2f} ms")
        return samples.merged(results)

    def run_ceiling(self, workers: int, slot: int, when: str) -> None:
        """The ceiling's ``slot``-th measurement for ``workers``: slot k is taken right before the k-th
        database section, slot k + 1 right after it."""
        server = self.fleet.launch(processes.ceiling(self.workdir / "ceiling", free_port(), workers))
        try:
            self.warm_up("get.lua", server.base_url + "/")
            for concurrency in self.concurrencies:
                result = self.sampled(
                    workers, concurrency, self.measured, server, "get.lua", server.base_url + "/", concurrency
                )
                row = self.record("ceiling", "—", workers, concurrency, result)
                row["when"], row["slot"] = when, slot
        finally:
            self.fleet.stop(server)

    def run_database_scenarios(self, kind: str, workers: int, with_constants: bool) -> None:
        server, database = self.start_authserver(kind, workers)
        try:
            url = server.base_url
            credentials = database.credentials
            if with_constants:
                for scenario, path in (
                    ("jwks", "/.well-known/jwks.json"),
                    ("metadata", "/.well-known/oauth-authorization-server"),
                ):
                    if scenario not in self.scenarios:
                        continue
                    for concurrency in self.concurrencies:
                        result = self.sampled(
                            workers, concurrency, self.measured, server, "get.lua", url + path, concurrency
                        )
                        self.record(scenario, "—", workers, concurrency, result)
            cc_script, cc_env = self.client_credentials_load(database)
            # Without a client_credentials row, consuming runs are seeded for a generous 5,000/s.
            cc_rates: dict[int, float] = dict.fromkeys(self.concurrencies, 5000.0)
            if "client_credentials" in self.scenarios and self.args.clients:
                self.warm_client_caches(cc_script, url, cc_env)
            if "client_credentials" in self.scenarios:
                for concurrency in self.concurrencies:
                    result = self.sampled(
                        workers,
                        concurrency,
                        self.measured,
                        server,
                        cc_script,
                        url,
                        concurrency,
                        cc_env,
                    )
                    cc_rates[concurrency] = result["rps"]
                    self.record("client_credentials", kind, workers, concurrency, result)
                self.measure_rss(server, kind, workers, f"client_credentials c={self.concurrencies[-1]}")

            if "introspection" in self.scenarios:
                introspect_env = {
                    "BENCH_BASIC": credentials.service_basic,
                    "BENCH_TOKEN": seed.access_token(url, credentials),
                }
                for concurrency in self.concurrencies:
                    result = self.sampled(
                        workers,
                        concurrency,
                        self.measured,
                        server,
                        "introspection.lua",
                        url,
                        concurrency,
                        introspect_env,
                    )
                    self.record("introspection", kind, workers, concurrency, result)

            for scenario in ("service_account", "token_exchange"):
                if scenario in self.scenarios:
                    env = self.reusable_credential(scenario, server, database)
                    for concurrency in self.concurrencies:
                        result = self.sampled(
                            workers,
                            concurrency,
                            self.measured,
                            server,
                            f"{scenario}.lua",
                            url,
                            concurrency,
                            env,
                        )
                        self.record(scenario, kind, workers, concurrency, result)

            for scenario in (
                "private_key_jwt",
                "private_key_jwt_es256",
                "refresh_token",
                "authorization_code",
            ):
                if scenario in self.scenarios:
                    for concurrency in self.concurrencies:
                        self.run_consuming(scenario, server, database, workers, concurrency, cc_rates)

            login = "login" in self.scenarios and not self.args.no_login
            if workers == max(self.worker_counts) and login:
                self.run_logins(server, database, workers)
        finally:
            self.fleet.stop(server)

    def reusable_credential(self, scenario: str, server: ServerProcess, database: Database) -> dict[str, str]:
        """What a non-consuming scenario sends on every request: a service-account token for the server's
        issuer (an hour long), or an access token of the gateway client to exchange."""
        if scenario == "service_account":
            audience = seed.issuer_of(server.base_url)
            return {"BENCH_ASSERTION": self.issuer.token(audience), "BENCH_SCOPE": seed.SERVICE_SCOPE}
        basic = database.credentials.gateway_basic
        subject_token = seed.access_token(server.base_url, database.credentials, basic)
        return {"BENCH_BASIC": basic, "BENCH_TOKEN": subject_token}

    def seed_consumable(
        self, scenario: str, server: ServerProcess, database: Database, count: int
    ) -> dict[str, str]:
        """``count`` single-use credentials for ``scenario`` in a token file; the wrk environment for it."""
        assert database.user_id is not None
        path = database.directory / f"{scenario}-{time.monotonic_ns()}.txt"
        started = time.monotonic()
        if scenario.startswith("private_key_jwt"):
            algorithm = "ES256" if scenario == "private_key_jwt_es256" else "RS256"
            seed.sign_client_assertions(server.base_url, database.credentials, count, path, algorithm)
            log(f"signed {count} client assertions in {time.monotonic() - started:.1f} s")
            return {
                "BENCH_TOKEN_FILE": str(path),
                "BENCH_CLIENT_ID": seed.KEY_CLIENT_ID,
                "BENCH_SCOPE": seed.SERVICE_SCOPE,
            }
        seeder = seed.seed_refresh_tokens if scenario == "refresh_token" else seed.seed_authorization_codes
        seeder(database.url, count, database.user_id, server.base_url, path)
        log(f"seeded {count} {scenario} credentials in {time.monotonic() - started:.1f} s")
        return {
            "BENCH_BASIC": database.credentials.web_basic,
            "BENCH_TOKEN_FILE": str(path),
            "BENCH_REDIRECT_URI": quote(seed.REDIRECT_URI, safe=""),
        }

    def run_consuming(
        self,
        scenario: str,
        server: ServerProcess,
        database: Database,
        workers: int,
        concurrency: int,
        cc_rates: dict[int, float],
    ) -> None:
        """Seeds enough single-use credentials for each sample (client_credentials' rate at the same
        concurrency bounds what a consuming grant can reach), then spends each once."""
        count = min(MAX_SEEDED, max(1000, math.ceil(cc_rates[concurrency] * self.duration * 1.5) + 500))
        postgres = database.kind == "postgresql"

        def measure() -> dict[str, Any]:
            env = self.seed_consumable(scenario, server, database, count)
            try:
                flushes_before = wal.wal_flushes(database.url) if postgres else None
                held_before = None if postgres else held.writers_held(server.base_url)
                script = (
                    "private_key_jwt.lua" if scenario.startswith("private_key_jwt") else f"{scenario}.lua"
                )
                result = self.measured(server, script, server.base_url, concurrency, env)
                if flushes_before is not None:
                    flushes = wal.wal_flushes(database.url).since(flushes_before)
                    result["wal_flushes"], result["wal_flush_ms_mean"] = flushes.count, flushes.mean_ms
                if held_before is not None:
                    holds = held.writers_held(server.base_url).since(held_before)
                    result["writers_held"] = holds.count
                    result["writers_held_ms"] = holds.seconds * 1000
                    result["writers_held_ms_at_most"] = holds.longest_ms_at_most
            finally:
                Path(env["BENCH_TOKEN_FILE"]).unlink(missing_ok=True)
            return result

        self.record(
            scenario, database.kind, workers, concurrency, self.sampled(workers, concurrency, measure)
        )

    def measure_rss(self, server: ServerProcess, kind: str, workers: int, after: str) -> None:
        pids = processes.worker_pids(server)
        memory = [processes.memory_kib(pid) for pid in pids]
        self.rss.append(
            {
                "db": kind,
                "workers": workers,
                "after": after,
                "pids": pids,
                "vmrss_kib": [m.get("VmRSS", 0) for m in memory],
                "vmhwm_kib": [m.get("VmHWM", 0) for m in memory],
            }
        )
        log(
            f"worker VmRSS after {after}: " + ", ".join(f"{m.get('VmRSS', 0) / 1024:.1f} MiB" for m in memory)
        )

    def run_logins(self, server: ServerProcess, database: Database, workers: int) -> None:
        """Logins at full speed, and wrk on client_credentials at the same time: does the KDF starve it?"""
        concurrency = self.args.login_concurrency
        seconds = max(self.duration, 3.0)
        log(
            f"logins: {concurrency} parallel for {seconds:g} s, "
            f"client_credentials c={LOGIN_TOKEN_CONCURRENCY} meanwhile"
        )
        # CPU per login: the server's (workers and their KDF threads) and this process's (the httpx
        # browsers, which share the machine's cores with the server).
        workers_before = processes.cpu_seconds(processes.worker_pids(server))
        client_before = processes.own_cpu_seconds()
        alone = asyncio.run(
            login_bench.measure(server.base_url, database.credentials.password, concurrency, seconds)
        )
        logins_done = max(alone["logins"], 1)
        server_ms = (
            (processes.cpu_seconds(processes.worker_pids(server)) - workers_before) * 1000 / logins_done
        )
        client_ms = (processes.own_cpu_seconds() - client_before) * 1000 / logins_done
        log(
            f"logins alone: {alone['logins_per_s']:.1f}/s ({alone['failures']} failed); "
            f"server CPU {server_ms:.1f} ms/login, load generator CPU {client_ms:.1f} ms/login"
        )
        token_run = wrk.start(
            "client_credentials.lua",
            server.base_url,
            LOGIN_TOKEN_CONCURRENCY,
            seconds,
            {"BENCH_BASIC": database.credentials.service_basic, "BENCH_SCOPE": seed.SERVICE_SCOPE},
        )
        try:
            logins = asyncio.run(
                login_bench.measure(server.base_url, database.credentials.password, concurrency, seconds)
            )
            token = token_run.result()
        finally:
            token_run.kill()
        token_alone = next(
            (
                row["p99_ms"]
                for row in self.rows
                if row["scenario"] == "client_credentials"
                and row["db"] == database.kind
                and row["workers"] == workers
                and row["concurrency"] == LOGIN_TOKEN_CONCURRENCY
            ),
            None,
        )
        entry = {
            "db": database.kind,
            "workers": workers,
            **logins,
            "token_concurrency": LOGIN_TOKEN_CONCURRENCY,
            "token_rps": token["rps"],
            "token_p50_ms": token["p50_ms"],
            "token_p99_ms": token["p99_ms"],
            "token_errors": token["errors"],
            "token_p99_ms_alone": token_alone,
            "alone_logins_per_s": alone["logins_per_s"],
            "alone_server_cpu_ms_per_login": server_ms,
            "alone_client_cpu_ms_per_login": client_ms,
            "alone_failures": alone["failures"],
            "cpus": os.cpu_count(),
        }
        self.logins.append(entry)
        log(
            f"logins {logins['logins_per_s']:.1f}/s ({logins['failures']} failed); "
            f"client_credentials meanwhile "
            f"{token['rps']:.0f} req/s, p99 {token['p99_ms']:.2f} ms"
        )

    def run_profiles(self, stamp: str) -> None:
        """py-spy on a single-worker server (the last database of the run: PostgreSQL by default) during
        client_credentials and introspection, and the two consuming grants."""
        pyspy = profile.find_or_install_pyspy()
        if pyspy is None:
            self.notes.append("py-spy unavailable: no profile")
            return
        kind = self.databases[-1]
        server, database = self.start_authserver(kind, 1)
        report.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        try:
            seconds = max(3, math.ceil(self.duration))
            credentials = database.credentials
            service = {"BENCH_BASIC": credentials.service_basic}
            for scenario in PROFILED:
                if scenario not in self.scenarios:
                    continue
                script = f"{scenario}.lua"
                if scenario == "client_credentials":
                    script, env = self.client_credentials_load(database)
                    if self.args.clients:  # profile the steady state, not the first read of each client
                        self.warm_client_caches(script, server.base_url, env)
                elif scenario == "introspection":
                    env = {**service, "BENCH_TOKEN": seed.access_token(server.base_url, credentials)}
                elif scenario in ("service_account", "token_exchange"):
                    env = self.reusable_credential(scenario, server, database)
                else:
                    env = self.seed_consumable(scenario, server, database, 3000 * seconds)
                self.profile_one(pyspy, server, scenario, script, env, seconds, f"{stamp}-{kind}")
                if "BENCH_TOKEN_FILE" in env and scenario != "client_credentials":  # spent credentials
                    Path(env["BENCH_TOKEN_FILE"]).unlink(missing_ok=True)
        finally:
            self.fleet.stop(server)

    def profile_one(
        self,
        pyspy: str,
        server: ServerProcess,
        scenario: str,
        script: str,
        env: dict[str, str],
        seconds: int,
        label: str,
    ) -> None:
        folded = report.RESULTS_DIR / f"profile-{label}-{scenario}.folded"
        text = report.RESULTS_DIR / f"profile-{label}-{scenario}.txt"
        log(f"profiling {scenario} on one worker for {seconds} s with py-spy")
        recorder = profile.start_recording(pyspy, server.pid, seconds, folded)
        try:
            time.sleep(0.3)  # py-spy attaches before the load starts
            result = wrk.run(script, server.base_url, 50, seconds, env)
            output, _ = recorder.communicate(timeout=seconds + 60)
        finally:
            if recorder.poll() is None:
                recorder.kill()
                recorder.wait(timeout=10)
        if recorder.returncode != 0 or not folded.exists():
            self.notes.append(f"py-spy failed on {scenario}: {output.strip()[-300:]}")
            log(self.notes[-1])
            return
        title = (
            f"{scenario}: authserver serve --workers 1 ({label.rsplit('-', 1)[-1]}), wrk -c50 {seconds} s "
            f"under the profiler: {result['rps']:.0f} req/s, p99 {result['p99_ms']:.1f} ms, "
            f"{result['errors']} errors"
        )
        text.write_text(profile.summarise(folded, title))
        self.profiles += [str(path.relative_to(processes.REPO)) for path in (text, folded)]

    # The whole run ----------------------------------------------------------------------------------------

    def run(self, stamp: str) -> None:
        for workers in self.worker_counts:
            # The ceiling is measured right before and right after each database's section, and that
            # section's ratios use the mean of those two: one 5 s sample is at the mercy of whatever else
            # the shared machine did in those 5 s (the ceiling, the cheapest request, suffers most), and a
            # machine that drifts over the minutes of a whole run would skew a ceiling taken further away.
            log(f"ceiling, {workers} worker(s)")
            self.run_ceiling(workers, 0, "before")
            if not set(self.scenarios) - {"ceiling"}:
                continue
            for index, kind in enumerate(self.databases):
                self.section = index
                try:
                    self.run_database_scenarios(kind, workers, with_constants=index == 0)
                finally:
                    self.section = None
                log(f"ceiling again, {workers} worker(s)")
                self.run_ceiling(workers, index + 1, f"after {kind}")
        if not self.args.no_profile and any(scenario in self.scenarios for scenario in PROFILED):
            self.run_profiles(stamp)
        set_ratios(self.rows)


def set_ratios(rows: list[dict[str, Any]]) -> None:
    """Each row's ratio to the ceiling of its setting (workers, concurrency): the mean of the two samples
    that bracket its section, or of every sample of the setting for a row outside any section."""
    samples: dict[tuple[int, int], dict[int, float]] = {}
    for row in rows:
        if row["scenario"] == "ceiling":
            samples.setdefault((row["workers"], row["concurrency"]), {})[row.get("slot", 0)] = row["rps"]
    for row in rows:
        by_slot = samples.get((row["workers"], row["concurrency"]), {})
        section = row.get("section")
        bracket = (section, section + 1) if section is not None else ()
        values = [by_slot[slot] for slot in bracket if slot in by_slot] or list(by_slot.values())
        row["ratio"] = row["rps"] / (sum(values) / len(values)) if values else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, help="seconds per row (default 5; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke test: c=50, 2 workers, 2 s")
    parser.add_argument("--db", choices=DATABASES, action="append", help="only this database (repeatable)")
    parser.add_argument(
        "--db-pool", type=int, default=10, help="DB pool min = max per worker (10: the server's default)"
    )
    parser.add_argument("--login-concurrency", type=int, default=8, help="parallel logins (8)")
    parser.add_argument("--no-login", action="store_true", help="skip the login measurement")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--warmup", type=float, default=1.0, help="unrecorded seconds after each start (1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary working directory")
    parser.add_argument(
        "--scenarios",
        help=f"comma-separated subset of {','.join(SCENARIOS)} (the ceiling always runs: ratios need it)",
    )
    parser.add_argument(
        "--workers", type=int, action="append", choices=(1, 2), help="worker count (repeatable)"
    )
    parser.add_argument("--concurrency", type=int, action="append", help="wrk connections (repeatable)")
    parser.add_argument("--no-save", action="store_true", help="print the table, write no results file")
    parser.add_argument(
        "--clients",
        type=int,
        help="client_credentials spread over this many clients (seeded into the database), in turn; "
        "default: the one service client",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        help="samples of each row at the targets' setting (most workers and connections), reported as "
        "medians (default 3; 1 with --quick)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        metavar="AUTHSERVER_NAME=VALUE",
        help="an extra server setting (repeatable), e.g. AUTHSERVER_VERIFIED_TOKEN_CACHE=0",
    )
    args = parser.parse_args(argv)
    if args.scenarios:
        chosen = [name.strip() for name in args.scenarios.split(",") if name.strip()]
        unknown = sorted(set(chosen) - set(SCENARIOS))
        if unknown:
            parser.error(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
        args.scenarios = tuple(dict.fromkeys(["ceiling", *chosen]))
    else:
        args.scenarios = SCENARIOS
    for assignment in args.server_env or ():
        if not assignment.startswith("AUTHSERVER_") or "=" not in assignment:
            parser.error(f"--server-env takes AUTHSERVER_NAME=VALUE, not {assignment!r}")
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if not 1 <= args.repeat <= 10:
        parser.error("--repeat must be between 1 and 10")
    if args.concurrency and any(not 1 <= value <= 1000 for value in args.concurrency):
        parser.error("--concurrency must be between 1 and 1000")
    if args.clients is not None and not 1 <= args.clients <= MAX_SEEDED:
        parser.error(f"--clients must be between 1 and {MAX_SEEDED:,}")
    if args.duration is not None and not 1 <= args.duration <= 600:
        parser.error("--duration must be between 1 and 600 seconds")
    return args


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    duration = args.duration or (2.0 if args.quick else 5.0)
    bench = Bench(
        args=args,
        duration=duration,
        concurrencies=list(dict.fromkeys(args.concurrency or ([50] if args.quick else [1, 10, 50]))),
        worker_counts=list(dict.fromkeys(args.workers or ([2] if args.quick else [1, 2]))),
        databases=list(dict.fromkeys(args.db or DATABASES)),
        scenarios=args.scenarios,
    )
    wrk.wrk_binary()  # fail before starting anything
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    command = "bash scripts/bench.sh " + shlex.join(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    try:
        bench.run(stamp)
    except KeyboardInterrupt:
        log("interrupted: stopping every process and the PostgreSQL cluster")
        return 130
    finally:
        bench.close()
    results = {
        "command": command.strip(),
        "date": now.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": report.machine(),
        "duration": duration,
        "repeat": args.repeat,
        "clients": args.clients,
        "wall_seconds": round(time.monotonic() - started, 1),
        "rows": bench.rows,
        "logins": bench.logins,
        "rss": bench.rss,
        "profiles": bench.profiles,
        "notes": bench.notes,
    }
    print(report.markdown(results))
    for note in bench.notes:
        print(f"\nNote: {note}")
    if args.no_save:
        print(f"\nResults not saved (--no-save), {results['wall_seconds']} s")
    else:
        path = report.write_json(results, stamp)
        print(f"\nResults: {path.relative_to(processes.REPO)} ({results['wall_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
