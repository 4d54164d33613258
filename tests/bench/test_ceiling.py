"""Every ratio is against the mean of the ceiling measured before and after the endpoints."""

from __future__ import annotations

from bench.__main__ import ceiling_by_setting
from bench.report import matrix_table


def _row(scenario: str, rps: float, when: str | None = None, concurrency: int = 50) -> dict[str, object]:
    row: dict[str, object] = {
        "scenario": scenario,
        "db": "—",
        "workers": 2,
        "concurrency": concurrency,
        "rps": rps,
        "p50_ms": 1.0,
        "p99_ms": 2.0,
        "errors": 0,
        "ratio": None,
    }
    if when:
        row["when"] = when
    return row


def test_the_ceiling_of_a_setting_is_the_mean_of_its_samples() -> None:
    rows = [
        _row("ceiling", 10_000, "before"),
        _row("ceiling", 4_000, "before", concurrency=10),
        _row("client_credentials", 6_000),
        _row("ceiling", 14_000, "after"),
    ]
    assert ceiling_by_setting(rows) == {(2, 50): 12_000, (2, 10): 4_000}


def test_the_table_says_which_ceiling_sample_a_row_is() -> None:
    table = matrix_table([_row("ceiling", 10_000, "before"), _row("ceiling", 14_000, "after")])
    assert "| ceiling (before) |" in table and "| ceiling (after) |" in table
