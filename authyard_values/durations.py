"""Durations as people write them in specs and environment variables: ``90``, ``15m``, ``720h``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$|^[0-9]+$"


# Longer than any lifetime anyone means (about 2,700 years), still inside what timedelta can hold.
_LONGEST = timedelta(days=1_000_000)


def parse_duration(value: str | int | float | timedelta) -> timedelta:
    """Parse a Go-style duration (``15m``, ``1h30m``) or a bare number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return _bounded(value)
    text = value.strip()
    if text.isdigit():
        return _bounded(int(text))
    position, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration; write it like 90s, 15m, 720h or 1h30m")
    return _bounded(total)


def _bounded(seconds: float) -> timedelta:
    """A clear error instead of timedelta's OverflowError (a 500, not a 400, where it escapes validation)."""
    if not seconds <= _LONGEST.total_seconds():  # also refuses nan and inf
        raise ValueError(f"a duration must be at most {_LONGEST.days:,} days")
    return timedelta(seconds=seconds)


# A settings field that accepts any spelling parse_duration does.
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
