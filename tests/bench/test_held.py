"""SQLite's writer holds, read from the server's own /metrics page (prometheus text format)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from bench import held


def _page(holds: list[float]) -> str:
    """A /metrics page as the server renders it, with these holds (seconds) observed."""
    registry = CollectorRegistry()
    histogram = Histogram(
        "authserver_sqlite_writers_held_seconds",
        "held",
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        registry=registry,
    )
    for seconds in holds:
        histogram.observe(seconds)
    return generate_latest(registry).decode()


def test_a_run_counts_only_its_own_holds_and_bounds_the_longest() -> None:
    before = held.parse(_page([0.008]))
    after = held.parse(_page([0.008, 0.007, 0.3]))
    run = after.since(before)
    assert run.count == 2
    assert abs(run.seconds - 0.307) < 1e-9
    assert run.longest_ms_at_most == 500.0  # 300 ms fits the 0.5 s bucket, not the 0.25 s one


def test_no_hold_and_no_metric_read_as_zero() -> None:
    assert held.parse(_page([])).count == 0
    assert held.parse(_page([])).longest_ms_at_most is None
    assert held.parse("# a PostgreSQL server has no such histogram\n") == held.WritersHeld(0, 0.0, ())


def test_a_hold_beyond_the_last_bucket_has_no_bound() -> None:
    assert held.parse(_page([7.0])).longest_ms_at_most is None
    assert held.parse(_page([0.004])).longest_ms_at_most == 5.0
