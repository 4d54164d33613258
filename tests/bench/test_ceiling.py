"""Every ratio is against the mean of the ceiling measured right before and right after its section."""

from __future__ import annotations

from bench.__main__ import set_ratios
from bench.report import matrix_table


def _row(
    scenario: str,
    rps: float,
    when: str | None = None,
    concurrency: int = 50,
    *,
    slot: int | None = None,
    section: int | None = None,
) -> dict[str, object]:
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
    if slot is not None:
        row["slot"] = slot
    if section is not None:
        row["section"] = section
    return row


def test_a_row_is_divided_by_the_two_ceilings_that_bracket_its_section() -> None:
    sqlite_tokens = _row("client_credentials", 6_000, section=0)
    postgres_tokens = _row("client_credentials", 6_000, section=1)
    sqlite_slow = _row("client_credentials", 1_000, concurrency=10, section=0)
    rows = [
        _row("ceiling", 10_000, "before", slot=0),
        _row("ceiling", 4_000, "before", concurrency=10, slot=0),
        sqlite_tokens,
        sqlite_slow,
        _row("ceiling", 14_000, "after sqlite", slot=1),
        _row("ceiling", 4_000, "after sqlite", concurrency=10, slot=1),
        postgres_tokens,
        _row("ceiling", 16_000, "after postgresql", slot=2),
    ]
    set_ratios(rows)
    assert sqlite_tokens["ratio"] == 6_000 / 12_000
    assert postgres_tokens["ratio"] == 6_000 / 15_000  # the machine sped up: not the 6,000 / 13,333 of all
    assert sqlite_slow["ratio"] == 1_000 / 4_000
    # A ceiling sample belongs to no section: it reads against the mean of all of its setting's samples.
    assert rows[0]["ratio"] == 10_000 / (40_000 / 3)


def test_a_row_outside_any_section_uses_every_sample_of_its_setting() -> None:
    lone = _row("jwks", 9_000)
    rows = [_row("ceiling", 10_000, "before", slot=0), lone, _row("ceiling", 8_000, "after sqlite", slot=1)]
    set_ratios(rows)
    assert lone["ratio"] == 1.0


def test_a_missing_sample_leaves_the_other_one_of_the_bracket() -> None:
    tokens = _row("client_credentials", 6_000, section=1)
    set_ratios(
        [_row("ceiling", 10_000, "before", slot=0), _row("ceiling", 12_000, "after sqlite", slot=1), tokens]
    )
    assert tokens["ratio"] == 0.5


def test_the_table_says_which_ceiling_sample_a_row_is() -> None:
    table = matrix_table([_row("ceiling", 10_000, "before"), _row("ceiling", 14_000, "after sqlite")])
    assert "| ceiling (before) |" in table and "| ceiling (after sqlite) |" in table
