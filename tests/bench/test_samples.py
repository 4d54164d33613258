"""Rows at the targets' setting are several samples: medians of the figures, sums of the counts."""

from __future__ import annotations

import pytest

from bench.__main__ import Bench, parse_args
from bench.samples import merged


def _sample(
    rps: float, p99: float, max_ms: float, errors: int = 0, requests: int = 1000
) -> dict[str, object]:
    return {
        "rps": rps,
        "p50_ms": p99 / 2,
        "p99_ms": p99,
        "max_ms": max_ms,
        "requests": requests,
        "responses": requests,
        "errors": errors,
        "cpu_us_per_request": 1e6 / rps,
        "wal_flush_ms_mean": None,
    }


def test_figures_are_medians_counts_add_up_and_the_slowest_request_is_kept() -> None:
    result = merged(
        [_sample(9_000, 12.0, 40.0), _sample(6_000, 30.0, 90.0, errors=2), _sample(8_000, 11.0, 20.0)]
    )
    assert result["rps"] == 8_000
    assert result["p99_ms"] == 12.0  # the median p99, not the p99 of the median sample or the worst one
    assert result["cpu_us_per_request"] == 1e6 / 8_000
    assert result["max_ms"] == 90.0
    assert result["errors"] == 2  # an error in any sample is an error of the row
    assert result["requests"] == 3000
    assert result["wal_flush_ms_mean"] is None
    assert [sample["rps"] for sample in result["samples"]] == [9_000, 6_000, 8_000]


def test_sqlite_holds_add_up_and_the_longest_is_kept_per_sample_too() -> None:
    holds = [(1, 10.0), (0, None), (2, 500.0)]
    result = merged(
        [
            {**_sample(4_000, 25.0, 40.0), "writers_held": count, "writers_held_ms_at_most": longest}
            for count, longest in holds
        ]
    )
    assert result["writers_held"] == 3
    assert result["writers_held_ms_at_most"] == 500.0
    assert [(s["writers_held"], s["writers_held_ms_at_most"]) for s in result["samples"]] == holds


def test_one_sample_is_the_row_as_measured() -> None:
    sample = _sample(7_000, 10.0, 30.0)
    assert merged([sample]) is sample


def test_no_samples_is_an_error() -> None:
    with pytest.raises(ValueError):
        merged([])


def test_a_run_takes_three_samples_at_the_targets_setting_unless_told_otherwise() -> None:
    assert parse_args([]).repeat == 3
    assert parse_args(["--quick"]).repeat == 1
    assert parse_args(["--repeat", "5"]).repeat == 5
    with pytest.raises(SystemExit):
        parse_args(["--repeat", "0"])


def test_only_the_targets_setting_is_sampled_more_than_once(tmp_path: object) -> None:
    bench = Bench(
        args=parse_args([]),
        duration=5.0,
        concurrencies=[1, 10, 50],
        worker_counts=[1, 2],
        databases=["sqlite"],
        workdir=tmp_path,  # type: ignore[arg-type]
    )
    calls: list[tuple[int, int]] = []

    def measure(workers: int, concurrency: int) -> dict[str, object]:
        calls.append((workers, concurrency))
        return _sample(1_000.0 * (len(calls)), 10.0, 20.0)

    assert bench.sampled(2, 50, measure, 2, 50)["rps"] == 2_000  # the median of 1,000, 2,000 and 3,000
    assert bench.sampled(1, 50, measure, 1, 50)["rps"] == 4_000
    assert bench.sampled(2, 10, measure, 2, 10)["rps"] == 5_000
    assert calls == [(2, 50)] * 3 + [(1, 50), (2, 10)]
