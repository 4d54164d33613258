"""Report tables never present a run in which nothing answered as an error-free one."""

from __future__ import annotations

from typing import Any

from bench.peers.table import aggregate, markdown
from bench.report import matrix_table


def _wrk(requests: int, errors: int = 0) -> dict[str, Any]:
    return {"requests": requests, "rps": requests / 3, "p50_ms": 0.0, "p99_ms": 0.0, "errors": errors}


def test_a_peer_row_with_no_response_says_so_instead_of_zero_errors() -> None:
    silent = aggregate("password", 50, "Authly", [_wrk(0), _wrk(0)])
    answered = aggregate("password", 10, "Authly", [_wrk(18), _wrk(0)])
    table = markdown([silent, answered])
    assert "| password | 50 | Authly | 0 | 0.00 | 0.00 | 0 (no response within the run) |" in table
    assert "| password | 10 | Authly | 3 | 0.00 | 0.00 | 0 |" in table  # one round answered


def test_a_benchmark_row_with_no_response_says_so() -> None:
    row = {
        "scenario": "refresh_token",
        "db": "postgresql",
        "workers": 2,
        "concurrency": 50,
        "rps": 0.0,
        "p50_ms": 0.0,
        "p99_ms": 0.0,
        "errors": 0,
        "exhausted": 0,
        "wrk": _wrk(0),
    }
    assert "| 0 (no response within the run) |" in matrix_table([row])
    assert "(no response" not in matrix_table([{**row, "rps": 900.0, "wrk": _wrk(2700)}])
