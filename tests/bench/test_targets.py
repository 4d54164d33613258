"""The benchmark's target verdicts: computed from the run's own rows, never assumed."""

from __future__ import annotations

from typing import Any

from bench import targets


def _row(
    scenario: str, rps: float, p99: float, ratio: float, db: str = "postgresql", **extra: Any
) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "db": db,
        "workers": 2,
        "concurrency": 50,
        "rps": rps,
        "p99_ms": p99,
        "ratio": ratio,
        "errors": 0,
        **extra,
    }


def _verdicts(results: dict[str, Any]) -> dict[str, str]:
    return {check.target.split(" ")[0]: check.verdict() for check in targets.evaluate(results)}


def test_a_focused_run_reports_what_it_did_not_measure() -> None:
    results = {
        "rows": [_row("ceiling", 8000, 9.0, 1.0, db="—"), _row("client_credentials", 4500, 12.0, 0.56)]
    }
    verdicts = _verdicts(results)
    assert verdicts["client_credentials"] == "met"
    assert verdicts["introspection"] == "not measured"
    assert verdicts["logins"] == "not measured"
    assert verdicts["p99"] == "met"


def test_errors_or_a_low_ratio_miss_the_token_target() -> None:
    assert (
        _verdicts({"rows": [_row("client_credentials", 3000, 12.0, 0.38)]})["client_credentials"] == "missed"
    )
    failing = _row("client_credentials", 4500, 12.0, 0.56, errors=3)
    assert _verdicts({"rows": [failing]})["client_credentials"] == "missed"


def test_a_p99_miss_names_the_rows_and_says_when_throughput_alone_forbids_the_limit() -> None:
    results = {
        "rows": [
            _row("ceiling", 8000, 9.0, 1.0, db="—"),
            _row("introspection", 6000, 31.0, 0.75),
            _row("refresh_token", 1250, 90.0, 0.16),
        ]
    }
    check = next(check for check in targets.evaluate(results) if check.target.startswith("p99"))
    assert check.met is False
    assert "introspection postgresql 31 ms, " in check.measured  # 50 / 6,000/s = 8 ms: no excuse
    assert "refresh_token postgresql 90 ms (mean 40 ms = c ÷ throughput)" in check.measured
    assert "the ceiling's own p99 9.0 ms" in check.measured


def test_a_p99_miss_beside_its_p50_and_the_ceilings_spread() -> None:
    results = {
        "rows": [
            _row("ceiling", 12946, 9.13, 1.0, db="—", p50_ms=3.65),
            _row("refresh_token", 3425, 28.4, 0.25, db="sqlite", p50_ms=14.0),
        ]
    }
    check = next(check for check in targets.evaluate(results) if check.target.startswith("p99"))
    assert "refresh_token sqlite 28 ms (p50 14 ms at 3,425/s)" in check.measured
    assert "the ceiling's own p99 9.1 ms, 2.5 times its p50" in check.measured
    assert check.met is False


def test_a_p99_miss_says_how_long_the_workers_waited_for_a_cpu() -> None:
    row = _row("authorization_code", 3000, 40.0, 0.2, worker_cpu_wait_share=0.31)
    check = next(check for check in targets.evaluate({"rows": [row]}) if check.target.startswith("p99"))
    assert "authorization_code postgresql 40 ms (workers waited for a CPU 31% of the time)" in check.measured


def test_a_p99_miss_on_a_durable_database_gives_the_disks_share() -> None:
    row = _row(
        "refresh_token", 5000, 60.0, 0.3, wal_flush_ms_mean=0.42, wrk={"max_ms": 387.0}
    )  # fast on average, stalled now and then: the flush mean and the slowest request tell them apart
    check = next(check for check in targets.evaluate({"rows": [row]}) if check.target.startswith("p99"))
    assert (
        "refresh_token postgresql 60 ms (WAL flushes 0.42 ms on average; slowest request 387 ms)"
        in check.measured
    )
    sqlite = _row("refresh_token", 5000, 60.0, 0.3, db="sqlite", wrk={"max_ms": 90.0})
    check = next(check for check in targets.evaluate({"rows": [sqlite]}) if check.target.startswith("p99"))
    assert "WAL" not in check.measured


def _p99_text(row: dict[str, Any]) -> str:
    return next(
        check for check in targets.evaluate({"rows": [row]}) if check.target.startswith("p99")
    ).measured


def test_a_p99_miss_on_sqlite_says_whether_a_log_restart_held_the_writers() -> None:
    stalled = _row(
        "authorization_code",
        3000,
        700.0,
        0.2,
        db="sqlite",
        writers_held=3,
        writers_held_ms_at_most=1000.0,
        wrk={"max_ms": 774.0},
    )
    assert (
        "authorization_code sqlite 700 ms (log restarts held the writers 3 times, each for at most 1000 ms; "
        "slowest request 774 ms)" in _p99_text(stalled)
    )
    beyond = {**stalled, "writers_held_ms_at_most": None}
    assert "the longest over 5 s" in _p99_text(beyond)
    unheld = {**stalled, "writers_held": 0, "writers_held_ms_at_most": None}
    assert "(no log restart held the writers; slowest request 774 ms)" in _p99_text(unheld)


def test_logins_per_core_prefer_the_servers_own_cpu_figure() -> None:
    login = {
        "db": "sqlite",
        "cpus": 2,
        "alone_logins_per_s": 36.0,  # 18 per machine core: the load generator shares the cores
        "alone_server_cpu_ms_per_login": 24.0,  # 41.7 logins per server core-second
        "token_p99_ms": 14.0,
        "token_errors": 0,
    }
    checks = {
        check.target.split(" ")[0]: check for check in targets.evaluate({"rows": [], "logins": [login]})
    }
    assert checks["logins"].met is True
    assert "41.7 per server core-second" in checks["logins"].measured
    slow = {**login, "alone_server_cpu_ms_per_login": 40.0}
    slow_checks = targets.evaluate({"rows": [], "logins": [slow]})
    assert next(check for check in slow_checks if check.target.startswith("logins")).met is False


def test_private_key_jwt_needs_four_tenths_of_the_ceiling_and_no_errors() -> None:
    assert _verdicts({"rows": [_row("private_key_jwt", 3000, 12.0, 0.41)]})["private_key_jwt"] == "met"
    assert _verdicts({"rows": [_row("private_key_jwt", 2800, 12.0, 0.38)]})["private_key_jwt"] == "missed"
    failing = _row("private_key_jwt", 3000, 12.0, 0.45, errors=1)
    assert _verdicts({"rows": [failing]})["private_key_jwt"] == "missed"


def test_the_workload_identity_and_token_exchange_rows_have_the_same_target() -> None:
    for scenario in ("service_account", "token_exchange"):
        assert _verdicts({"rows": [_row(scenario, 3000, 12.0, 0.41)]})[scenario] == "met"
        assert _verdicts({"rows": [_row(scenario, 2000, 12.0, 0.30)]})[scenario] == "missed"
        assert _verdicts({"rows": [_row(scenario, 3000, 12.0, 0.5, errors=2)]})[scenario] == "missed"
