"""Several wrk samples of one row, merged into the figures the row reports.

On a shared machine one 5 s sample moves with whatever else ran in those seconds (the ceiling has swung by
half within a minute: docs/performance.md). The rows the targets are judged on are therefore measured more
than once, back to back, and report the median of each figure; counts add up, the slowest
request is the slowest of all, and each sample's own figures stay in the results file.
"""

from __future__ import annotations

import statistics
from typing import Any

# Figures that describe a rate or a distribution: the row reports their median over the samples.
MEDIAN_FIELDS = (
    "rps",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "cpu_us_per_request",
    "machine_cpu_us_per_request",
    "worker_cpu_wait_share",
    "wal_flush_ms_mean",
)
# Counts over the whole measurement: every error of every sample counts.
SUM_FIELDS = (
    "requests",
    "responses",
    "duration_us",
    "bytes",
    "socket_errors",
    "http_errors",
    "errors",
    "exhausted",
    "wal_flushes",
    "writers_held",
    "writers_held_ms",
)

# The worst moment of the whole measurement: the slowest request, the longest hold of SQLite's writers.
MAX_FIELDS = ("max_ms", "writers_held_ms_at_most")
# Each sample's own figures, kept beside the merged ones.
SAMPLE_FIELDS = ("rps", "p50_ms", "p99_ms", "max_ms", "errors", "writers_held", "writers_held_ms_at_most")


def merged(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """One result from ``samples`` (at least one); a single sample is returned as it is."""
    if not samples:
        raise ValueError("no samples to merge")
    if len(samples) == 1:
        return samples[0]
    result: dict[str, Any] = dict(samples[-1])
    for name in MEDIAN_FIELDS:
        values = [sample[name] for sample in samples if sample.get(name) is not None]
        result[name] = statistics.median(values) if values else None
    for name in SUM_FIELDS:
        values = [sample[name] for sample in samples if sample.get(name) is not None]
        result[name] = sum(values) if values else None
    for name in MAX_FIELDS:
        maxima = [sample[name] for sample in samples if sample.get(name) is not None]
        result[name] = max(maxima) if maxima else None
    result["samples"] = [{name: sample.get(name) for name in SAMPLE_FIELDS} for sample in samples]
    return result
