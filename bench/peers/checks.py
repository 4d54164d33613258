"""Before anything is measured: one short, light wrk run per server and scenario (it also warms the server
up), which must answer only 2xx, and for introspection a look at the answer (``active`` must be true: a 200
with ``active: false`` would be a meaningless row)."""

from __future__ import annotations

import httpx

from bench.peers import measure
from bench.peers.workload import CONSUMING, Target

CHECK_SECONDS = 1.0
CHECK_CONCURRENCY = 2
CHECK_CREDENTIALS = 3000


def introspection_is_active(target: Target) -> bool:
    workload = target.workload("introspection", 0)
    response = httpx.post(
        f"{workload.url}/introspect",
        data={"token": workload.env["BENCH_TOKEN"], "token_type_hint": "access_token"},
        headers={"Authorization": f"Basic {workload.env['BENCH_BASIC']}"},
        timeout=10.0,
    )
    return response.status_code == 200 and response.json().get("active") is True


def check(target: Target, scenario: str) -> tuple[str | None, float]:
    """A problem (None if there is none) and the rate seen, for sizing the consuming runs' seeds."""
    if scenario == "introspection" and not introspection_is_active(target):
        return f"{target.label} introspection: the token is not active", 0.0
    count = CHECK_CREDENTIALS if scenario in CONSUMING else 0
    workload = target.workload(scenario, count)
    try:
        result = measure.run(target.server, workload, CHECK_CONCURRENCY, CHECK_SECONDS)
    finally:
        if workload.token_file is not None:
            workload.token_file.unlink(missing_ok=True)
    if not result.get("responses") or result.get("errors"):
        return (
            f"{target.label} {scenario}: {result.get('responses', 0)} responses, "
            f"{result.get('http_errors', 0)} HTTP errors, {result.get('socket_errors', 0)} socket errors "
            f"in a {CHECK_SECONDS:g} s check run",
            0.0,
        )
    return None, float(result["rps"])
