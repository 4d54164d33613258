"""The comparison as a markdown table, and as JSON in ``bench/results/peer-<timestamp>.json``."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench.report import RESULTS_DIR, errors_text

AUTHYARD = "Authyard"


def aggregate(scenario: str, concurrency: int, server: str, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from the interleaved rounds: mean requests/s, median latencies, errors and CPU summed."""
    responses = sum(r.get("cpu_requests") or 0 for r in rounds)
    cpu = sum(r.get("cpu_seconds") or 0.0 for r in rounds)
    return {
        "scenario": scenario,
        "concurrency": concurrency,
        "server": server,
        "rps": statistics.fmean(r["rps"] for r in rounds),
        "rps_rounds": [r["rps"] for r in rounds],
        "p50_ms": statistics.median(r["p50_ms"] for r in rounds),
        "p99_ms": statistics.median(r["p99_ms"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "exhausted": sum(r.get("exhausted", 0) for r in rounds),
        "cpu_us_per_request": cpu / responses * 1e6 if responses else None,
        "ratio": None,
        "wrk": rounds,
    }


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Authyard's requests/s over each other server's, at the same endpoint and concurrency."""
    authyard = {(r["scenario"], r["concurrency"]): r["rps"] for r in rows if r["server"] == AUTHYARD}
    for row in rows:
        mine = authyard.get((row["scenario"], row["concurrency"]))
        if row["server"] != AUTHYARD and mine is not None and row["rps"] > 0:
            row["ratio"] = mine / row["rps"]


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| endpoint | concurrency | server | requests/s | p50 ms | p99 ms | errors | Authyard ÷ server "
        "| server CPU µs/req |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        responses = sum(r.get("requests", 0) for r in row["wrk"])
        errors = errors_text(row["errors"], row["exhausted"], responses)
        ratio = "—" if row["ratio"] is None else f"{row['ratio']:.2f}"
        cpu = "—" if row["cpu_us_per_request"] is None else f"{row['cpu_us_per_request']:,.0f}"
        lines.append(
            f"| {row['scenario']} | {row['concurrency']} | {row['server']} | {row['rps']:,.0f} "
            f"| {row['p50_ms']:,.2f} | {row['p99_ms']:,.2f} | {errors} | {ratio} | {cpu} |"
        )
    return "\n".join(lines)


def write_json(results: dict[str, Any], stamp: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"peer-{stamp}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path
