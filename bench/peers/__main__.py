"""``python -m bench.peers``: Authyard side by side with peer servers, on this machine, in one run.

Every server runs at the same time on 127.0.0.1 with the same worker count and one shared throwaway
PostgreSQL 15 cluster (a database each); only one is under load at a time. For each endpoint and
concurrency the rounds are interleaved (Authyard, Authly, oidc-provider, Authyard, Authly, ...), so
whatever else the machine does hits all of them alike. The constant-JSON ceiling app runs in the same
session for reference.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from bench import report, wrk
from bench.fleet import Fleet
from bench.peers import checks, install, log, measure, table
from bench.peers.authly import Authly, create_database
from bench.peers.authyard import Authyard
from bench.peers.ceiling import Ceiling
from bench.peers.oidc_provider import OidcProvider
from bench.peers.workload import CONSUMING, SCENARIOS, Target
from bench.processes import REPO

MAX_SEEDED = 300_000
STACK = ("uvicorn", "fastapi", "starlette", "uvloop", "httptools", "pydantic")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run (3)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved runs per server and row (2)")
    parser.add_argument("--concurrency", type=int, action="append", help="wrk connections (10 and 50)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of every server (2)")
    parser.add_argument(
        "--db-pool", type=int, default=10, help="pool min = max per worker (10: Authyard's default)"
    )
    parser.add_argument("--scenarios", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--no-oidc-provider", action="store_true", help="skip the Node.js peer")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (server logs)")
    parser.add_argument("--no-save", action="store_true", help="print only, write no results file")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 60:
        parser.error("--duration must be between 1 and 60 seconds")
    if not 1 <= args.rounds <= 10:
        parser.error("--rounds must be between 1 and 10")
    if not 1 <= args.workers <= 8:
        parser.error("--workers must be between 1 and 8")
    args.concurrency = list(dict.fromkeys(args.concurrency or [10, 50]))
    if any(not 1 <= value <= 1000 for value in args.concurrency):
        parser.error("--concurrency must be between 1 and 1000")
    chosen = [s.strip() for s in (args.scenarios or ",".join(SCENARIOS)).split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    args.scenarios = tuple(s for s in SCENARIOS if s in chosen)
    return args


def start_targets(fleet: Fleet, args: argparse.Namespace, notes: list[str]) -> list[Target]:
    python = install.authly_venv()
    schema = install.authly_schema(python)
    node_dir = None if args.no_oidc_provider else install.oidc_provider_dir()
    cluster = fleet.postgres()
    targets: list[Target] = []
    authyard_url = cluster.create_database("authyard")
    targets.append(
        Authyard.start(fleet.launch, fleet.workdir / "authyard", authyard_url, args.workers, args.db_pool)
    )
    authly_url = create_database(cluster, schema)
    authly = Authly.start(fleet.launch, python, fleet.workdir / "authly", authly_url, args.workers)
    if authly.start_attempts > 1:
        notes.append(
            f"Authly took {authly.start_attempts} starts: a worker failed on its secrets-store race "
            "(see bench/peers/authly.py)"
        )
    targets.append(authly)
    if node_dir is not None:
        targets.append(
            OidcProvider.start(
                fleet.launch, node_dir, cluster, fleet.workdir / "oidc-provider", args.workers, args.db_pool
            )
        )
    elif not args.no_oidc_provider:
        notes.append("oidc-provider skipped: node or npm is not installed")
    if "ceiling" in args.scenarios:
        targets.append(Ceiling.start(fleet.launch, fleet.workdir / "ceiling", args.workers))
    return targets


def seed_count(rates: list[float], duration: float) -> int:
    """Credentials for one consuming run: well above the fastest rate seen so far for it (the first run
    knows only the light check run's rate, which can be a third of what c=10 reaches)."""
    fastest = max(rates, default=0.0)
    return min(MAX_SEEDED, int(max(fastest * 4, 1500.0) * duration) + 1000)


def run_matrix(targets: list[Target], args: argparse.Namespace, notes: list[str]) -> list[dict[str, Any]]:
    rates: dict[tuple[str, str], list[float]] = defaultdict(list)
    usable: dict[str, list[Target]] = {}
    for scenario in args.scenarios:
        usable[scenario] = []
        for target in targets:
            if scenario not in target.scenarios():
                continue
            try:
                problem, rate = checks.check(target, scenario)
            except (httpx.HTTPError, RuntimeError, KeyError, ValueError) as error:
                problem, rate = f"{target.label} {scenario}: {error!r}"[:500], 0.0
            if problem is not None:
                notes.append(f"not measured: {problem}")
                log(notes[-1])
                continue
            rates[(target.label, scenario)].append(rate)
            usable[scenario].append(target)
    rows: list[dict[str, Any]] = []
    for scenario in args.scenarios:
        for concurrency in args.concurrency:
            rounds: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for round_index in range(args.rounds):
                for target in usable[scenario]:
                    count = (
                        seed_count(rates[(target.label, scenario)], args.duration)
                        if scenario in CONSUMING
                        else 0
                    )
                    workload = target.workload(scenario, count)
                    try:
                        result = measure.run(target.server, workload, concurrency, args.duration)
                    finally:
                        if workload.token_file is not None:
                            workload.token_file.unlink(missing_ok=True)
                    rates[(target.label, scenario)].append(float(result["rps"]))
                    rounds[target.label].append(result)
                    log(
                        f"{scenario:18} c={concurrency:<3} round {round_index + 1} {target.label:24} "
                        f"{result['rps']:8.0f} req/s  p50 {result['p50_ms']:7.2f} ms  "
                        f"p99 {result['p99_ms']:7.2f} ms"
                        f"  errors {result['errors']}"
                        + (f"  EXHAUSTED {result['exhausted']}" if result.get("exhausted") else "")
                    )
            rows += [table.aggregate(scenario, concurrency, label, runs) for label, runs in rounds.items()]
    table.add_ratios(rows)
    return rows


def _version(command: list[str]) -> str | None:
    if shutil.which(command[0]) is None:
        return None
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)  # noqa: S603
    return result.stdout.strip() or None


def _git_revision() -> str | None:
    return _version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk.wrk_binary()  # fail before installing or starting anything
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    command = "bash scripts/bench-peer.sh " + shlex.join(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    notes: list[str] = []
    fleet = Fleet(Path(tempfile.mkdtemp(prefix="authyard-bench-peer-")), log, keep=args.keep)
    try:
        targets = start_targets(fleet, args, notes)
        rows = run_matrix(targets, args, notes)
        servers = {target.label: shlex.join(target.server.command) for target in targets}
    except KeyboardInterrupt:
        log("interrupted: stopping every server and the PostgreSQL cluster")
        return 130
    finally:
        fleet.close()
    results = {
        "command": command.strip(),
        "date": now.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": report.machine(),
        "authyard_revision": _git_revision(),
        "peers": {
            "authly": install.AUTHLY_VERSION,
            "authly_requirements": install.authly_requirements(),
            "authly_venv": install.versions(install.authly_venv(), STACK),
            "project_venv": {name: metadata.version(name) for name in STACK},
            "oidc_provider_package": json.loads((install.OIDC_PROVIDER_SOURCE / "package.json").read_text())[
                "dependencies"
            ],
            "node": _version(["node", "--version"]),
            "python": platform.python_version(),
        },
        "settings": {
            "duration": args.duration,
            "rounds": args.rounds,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "db_pool": args.db_pool,
        },
        "servers": servers,
        "wall_seconds": round(time.monotonic() - started, 1),
        "rows": rows,
        "notes": notes,
    }
    print(table.markdown(rows))
    for note in notes:
        print(f"\nNote: {note}")
    if args.no_save:
        print(f"\nResults not saved (--no-save), {results['wall_seconds']} s")
    else:
        path = table.write_json(results, stamp)
        print(f"\nResults: {Path(path).relative_to(REPO)} ({results['wall_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
