"""The operator-scale benchmark's pure parts: percentiles; apply -> Ready times from the API's write log."""

from __future__ import annotations

import kmock
import pytest

from bench.operator_scale import ReadyTimes, percentile
from harness.kube import OAUTHCLIENTS
from harness.kube_emulator import WatchEvent

CLIENTS = kmock.resource(OAUTHCLIENTS)
SECRETS = kmock.resource("v1/secrets")


def client(ready: str | None) -> dict[str, object]:
    conditions = [] if ready is None else [{"type": "Ready", "status": ready}]
    return {"metadata": {"name": "x"}, "status": {"conditions": conditions}}


def event(
    at: float, kind: str, name: str, obj: dict[str, object], resource: kmock.resource = CLIENTS
) -> WatchEvent:
    return WatchEvent(0, resource, "team", name, kind, obj, None, at=at)


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]  # 100 .. 1, unsorted
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([3.0], 0.99) == 3.0
    with pytest.raises(ValueError):
        percentile([], 0.5)
    with pytest.raises(ValueError):
        percentile([1.0], 0.0)


def test_ready_times_count_from_creation_to_the_first_ready_status() -> None:
    times = ReadyTimes(OAUTHCLIENTS, "team")
    times.feed(
        [
            event(10.0, "ADDED", "a", client(None)),
            event(10.5, "ADDED", "b", client(None)),
            event(11.0, "MODIFIED", "a", client("False")),
            event(11.5, "ADDED", "a", client("True"), resource=SECRETS),  # another resource: ignored
        ]
    )
    assert times.became_ready == {}
    times.feed(
        [
            event(12.0, "MODIFIED", "a", client("True")),
            event(13.0, "MODIFIED", "a", client("False")),
            event(14.0, "MODIFIED", "a", client("True")),  # Ready again later: the first time counts
            event(12.5, "MODIFIED", "c", client("True")),  # created before the log began: no latency
        ]
    )
    assert sorted(times.latencies()) == [2.0]
    assert set(times.became_ready) == {"a", "c"}
