"""The results as markdown (to paste into the README) and as JSON (``bench/results/<timestamp>.json``)."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from bench import targets

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "interpreter": interpreter(),
    }


def interpreter() -> str:
    """Which CPython build ran the servers: its binary and whether libpython is a shared library. A default
    pyenv build (shared libpython, no PGO or LTO) cost 10-25% more CPU per token than the distribution's
    static PGO+LTO binary on the same machine, so results name the build (``scripts/setup.sh`` says why)."""
    try:
        shared = "libpython" in Path("/proc/self/maps").read_text()
    except OSError:
        return os.path.realpath(sys.executable)
    linkage = "shared libpython" if shared else "libpython linked in"
    return f"{os.path.realpath(sys.executable)}, {linkage}"


def _number(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def errors_text(errors: int, exhausted: int, responses: int) -> str:
    """wrk's error count, with what it cannot say: a run in which nothing answered has no late responses to
    count as timeouts (wrk counts a timeout only when it sees one), so "0 errors" would read as a success."""
    text = str(errors)
    if exhausted:
        text += " (tokens ran out)"
    if not responses:
        text += " (no response within the run)"
    return text


def matrix_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | db | workers | concurrency | requests/s | p50 ms | p99 ms | max ms | errors "
        "| vs ceiling | worker CPU µs/req | machine CPU µs/req | workers waiting for a CPU "
        "| WAL flush ms (mean) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        errors = errors_text(row["errors"], row.get("exhausted", 0), row.get("wrk", {}).get("requests", 1))
        ratio = "—" if row.get("ratio") is None else f"{row['ratio']:.2f}"
        cpu = "—" if row.get("cpu_us_per_request") is None else _number(row["cpu_us_per_request"])
        machine = row.get("machine_cpu_us_per_request")
        machine_text = "—" if machine is None else _number(machine)
        name = f"{row['scenario']} ({row['when']})" if row.get("when") else row["scenario"]
        wait = row.get("worker_cpu_wait_share")
        wait_text = "—" if wait is None else f"{wait:.0%}"
        slowest = row.get("wrk", {}).get("max_ms")
        slowest_text = "—" if slowest is None else _number(slowest, 1)
        flush = row.get("wal_flush_ms_mean")
        flush_text = "—" if flush is None else _number(flush, 2)
        lines.append(
            f"| {name} | {row['db']} | {row['workers']} | {row['concurrency']} "
            f"| {_number(row['rps'])} | {_number(row['p50_ms'], 2)} | {_number(row['p99_ms'], 2)} "
            f"| {slowest_text} | {errors} | {ratio} | {cpu} | {machine_text} | {wait_text} | {flush_text} |"
        )
    return "\n".join(lines)


def login_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| db | workers | parallel logins | logins/s alone (per core) "
        "| server CPU ms/login (logins per server core-s) | load generator CPU ms/login | logins/s "
        "| login p50 ms | login p99 ms | login failures "
        "| client_credentials c | client_credentials requests/s | client_credentials p99 ms (alone) "
        "| client_credentials errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        alone = row.get("token_p99_ms_alone")
        server_ms = row.get("alone_server_cpu_ms_per_login")
        client_ms = row.get("alone_client_cpu_ms_per_login")
        server_text = "—" if not server_ms else f"{_number(server_ms, 1)} ({_number(1000 / server_ms, 1)})"
        client_text = "—" if client_ms is None else _number(client_ms, 1)
        by_itself = row.get("alone_logins_per_s")
        by_itself_text = (
            "—"
            if by_itself is None
            else f"{_number(by_itself, 1)} ({_number(by_itself / max(row.get('cpus') or 1, 1), 1)})"
        )
        alone_text = "—" if alone is None else _number(alone, 2)
        lines.append(
            f"| {row['db']} | {row['workers']} | {row['concurrency']} | {by_itself_text} "
            f"| {server_text} | {client_text} "
            f"| {_number(row['logins_per_s'], 1)} "
            f"| {_number(row['p50_ms'], 0)} | {_number(row['p99_ms'], 0)} | {row['failures']} "
            f"| {row['token_concurrency']} | {_number(row['token_rps'])} "
            f"| {_number(row['token_p99_ms'], 2)} ({alone_text}) | {row['token_errors']} |"
        )
    return "\n".join(lines)


def rss_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| db | workers | after | worker VmRSS MiB | worker VmHWM MiB |",
        "|---|---:|---|---|---|",
    ]
    for row in rows:
        rss = ", ".join(f"{kib / 1024:.1f}" for kib in row["vmrss_kib"])
        hwm = ", ".join(f"{kib / 1024:.1f}" for kib in row["vmhwm_kib"])
        lines.append(f"| {row['db']} | {row['workers']} | {row['after']} | {rss} | {hwm} |")
    return "\n".join(lines)


def _samples_note(results: dict[str, Any]) -> str:
    repeat = results.get("repeat") or 1
    if repeat == 1:
        return ""
    return (
        f"; rows at the targets' setting (most workers and connections) are the median of {repeat} samples "
        "back to back (each sample's figures in the results file)"
    )


def _interpreter_note(info: dict[str, Any]) -> str:
    build = info.get("interpreter")  # results saved before it was recorded have none
    return f" ({build})" if build else ""


def markdown(results: dict[str, Any]) -> str:
    info = results["machine"]
    parts = [
        f"Command: `{results['command']}`  ",
        f"Date: {results['date']}  ",
        f"Machine: nproc {info['nproc']}, {info['cpu_model']}, Linux {info['kernel']}, "
        f"Python {info['python']}{_interpreter_note(info)}; wrk on the same machine (loopback), "
        f"{results['duration']} s per row" + _samples_note(results),
        "",
        "Targets of the performance issue, checked against this run:",
        "",
        targets.table(targets.evaluate(results)),
        "",
        matrix_table(results["rows"]),
    ]
    if results.get("logins"):
        parts += [
            "",
            "Interactive login (argon2id): alone, then with client_credentials load at the same time:",
            "",
        ]
        parts.append(login_table(results["logins"]))
    if results.get("rss"):
        parts += ["", "Worker memory:", "", rss_table(results["rss"])]
    if results.get("profiles"):
        parts += ["", "Profiles: " + ", ".join(f"`{path}`" for path in results["profiles"])]
    return "\n".join(parts)


def write_json(results: dict[str, Any], stamp: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{stamp}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path
