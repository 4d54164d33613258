"""The connection-budget rule: maxReplicas x per-pod pool <= 0.9 x budget, and its edge cases."""

from __future__ import annotations

import pytest
from authyard_operator.sizing import (
    INVALID_SPEC,
    MIN_POOL,
    POOL_BUDGET_EXCEEDED,
    budget_needed,
    size_pools,
    smallest_worker_pool,
    usable_connections,
)

from tests.operator.support import DB, spec_of


def direct(budget: int, write_connections: int = 1, **spec: object) -> dict[str, object]:
    return {"database": {**DB, "maxConnections": budget, "writeConnections": write_connections}, **spec}


def hpa(max_replicas: int, min_replicas: int = 1) -> dict[str, object]:
    return {"enabled": True, "minReplicas": min_replicas, "maxReplicas": max_replicas}


def test_the_briefs_example() -> None:
    sizing = size_pools(spec_of(direct(100, autoscaling=hpa(20, 3))))
    assert sizing.fits and sizing.reason is None
    assert sizing.status() == {
        "mode": "direct",
        "budget": 100,
        "perPodPoolMax": 4,
        "perPodPoolMin": 1,
        "aggregateMax": 80,
    }


def test_without_autoscaling_replicas_are_the_maximum() -> None:
    sizing = size_pools(spec_of(direct(100, replicas=3, autoscaling={"enabled": False, "maxReplicas": 50})))
    assert (sizing.per_pod_max, sizing.per_pod_min, sizing.aggregate_max) == (30, 7, 90)


def test_max_replicas_one_gets_the_whole_usable_budget() -> None:
    sizing = size_pools(spec_of(direct(10, autoscaling=hpa(1))))
    assert sizing.fits
    assert (sizing.per_pod_max, sizing.per_pod_min, sizing.aggregate_max) == (9, 2, 9)
    assert not sizing.allows_surge  # a second pod would need 18 connections


def test_min_is_a_quarter_of_max_but_at_least_one() -> None:
    assert size_pools(spec_of(direct(100, replicas=1))).per_worker_min == 90 // 4
    assert size_pools(spec_of(direct(100, replicas=30))).per_worker_min == 1  # max 3


def test_workers_split_the_pod_share() -> None:
    sizing = size_pools(spec_of(direct(100, replicas=2, workers=4)))
    assert sizing.per_worker_max == 11  # floor(90 / 8)
    assert sizing.per_pod_max == 44 and sizing.aggregate_max == 88


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        (direct(3, replicas=2), ["spec.database.maxConnections", "spec.replicas", "pgbouncer"]),
        (direct(20, autoscaling=hpa(20)), ["spec.database.maxConnections", "spec.autoscaling.maxReplicas"]),
        (direct(100, replicas=10, workers=16), ["spec.workers"]),
    ],
)
def test_a_budget_too_small_says_which_field_to_change(spec: dict[str, object], names: list[str]) -> None:
    sizing = size_pools(spec_of(spec))
    assert not sizing.fits
    assert sizing.reason == POOL_BUDGET_EXCEEDED
    for name in names:
        assert name in sizing.message
    assert "perPodPoolMax" not in sizing.status()


def test_the_suggested_budget_is_enough() -> None:
    sizing = size_pools(spec_of(direct(20, autoscaling=hpa(20))))
    needed = budget_needed(20 * MIN_POOL)
    assert f"to {needed} or more" in sizing.message
    assert size_pools(spec_of(direct(needed, autoscaling=hpa(20)))).fits
    assert not size_pools(spec_of(direct(needed - 1, autoscaling=hpa(20)))).fits


def test_a_budget_of_one_suggests_no_pod_count() -> None:
    sizing = size_pools(spec_of(direct(1, replicas=1)))
    assert not sizing.fits and "lower spec.replicas" not in sizing.message


@pytest.mark.parametrize("budget", [2, 3, 5, 10, 11, 57, 100, 101, 999, 5000])
@pytest.mark.parametrize("pods", [1, 2, 3, 7, 20, 100])
@pytest.mark.parametrize("workers", [1, 3])
def test_whatever_fits_stays_within_ninety_percent(budget: int, pods: int, workers: int) -> None:
    sizing = size_pools(spec_of(direct(budget, replicas=pods, workers=workers)))
    if sizing.fits:
        assert sizing.aggregate_max <= 0.9 * budget
        assert sizing.per_worker_max >= MIN_POOL
        assert 1 <= sizing.per_worker_min <= sizing.per_worker_max
        if sizing.allows_surge:
            assert (pods + 1) * sizing.per_pod_max <= 0.9 * budget
    else:
        assert usable_connections(budget) < pods * workers * MIN_POOL


def test_usable_is_exact_integer_arithmetic() -> None:
    assert [usable_connections(b) for b in (1, 9, 10, 11, 100)] == [0, 8, 9, 9, 90]


def test_embedded_sqlite_is_one_pod() -> None:
    sizing = size_pools(spec_of({}))
    assert sizing.fits and sizing.mode == "embedded" and sizing.budget is None
    assert sizing.status()["mode"] == "embedded"


@pytest.mark.parametrize("spec", [{"replicas": 2}, {"autoscaling": hpa(3)}])
def test_embedded_sqlite_with_more_pods_is_an_invalid_spec(spec: dict[str, object]) -> None:
    sizing = size_pools(spec_of(spec))
    assert not sizing.fits and sizing.reason == INVALID_SPEC
    assert "spec.database" in sizing.message and "spec.replicas" in sizing.message


def test_pgbouncer_bounds_the_server_side_pool() -> None:
    spec = spec_of(
        {**direct(100, autoscaling=hpa(20, 3))} | {"database": {**DB, "pooler": {"type": "pgbouncer"}}}
    )
    sizing = size_pools(spec)
    assert sizing.fits and sizing.mode == "pgbouncer"
    assert sizing.pooler_instances == 2 and sizing.pooler_pool_size == 45
    assert sizing.aggregate_max == 90 <= 0.9 * 100
    assert sizing.per_worker_max == 9  # ceil(2 x 90 / 20): twice the server connections, spread over pods
    assert sizing.pooler_max_client_conn == 180  # every pod's pool may land on one instance
    assert sizing.allows_surge
    assert sizing.status() == {
        "mode": "pgbouncer",
        "budget": 100,
        "perPodPoolMax": 9,
        "perPodPoolMin": 2,
        "aggregateMax": 90,
        "poolerPoolSize": 45,
    }


def test_pgbouncer_client_pool_is_clamped() -> None:
    few = size_pools(spec_of({"replicas": 1, "database": {**DB, "pooler": {"type": "pgbouncer"}}}))
    assert few.per_worker_max == 20
    many = size_pools(
        spec_of(
            {
                "replicas": 100,
                "database": {**DB, "maxConnections": 5, "pooler": {"type": "pgbouncer", "instances": 1}},
            }
        )
    )
    assert many.fits and many.per_worker_max == MIN_POOL and many.pooler_max_client_conn == 200


def test_pgbouncer_that_cannot_fit_names_its_instances() -> None:
    spec = spec_of({"database": {**DB, "maxConnections": 4, "pooler": {"type": "pgbouncer", "instances": 3}}})
    sizing = size_pools(spec)
    assert not sizing.fits and sizing.reason == POOL_BUDGET_EXCEEDED
    assert "spec.database.pooler.instances" in sizing.message
    assert "spec.database.maxConnections to 7 or more" in sizing.message


def test_write_connections_leave_one_connection_for_everything_else() -> None:
    """The server refuses a pool its write connections fill, so the budget must give each worker one more."""
    assert [smallest_worker_pool(writes) for writes in (1, 2, 3, 16)] == [MIN_POOL, 3, 4, 17]
    # 90 usable / (10 pods x 3 workers) = 3 per worker: enough beside 2 write connections, not beside 3.
    fits = size_pools(spec_of(direct(100, write_connections=2, replicas=10, workers=3)))
    assert fits.fits and fits.per_worker_max == 3 and fits.write_connections == 2
    refused = size_pools(spec_of(direct(100, write_connections=3, replicas=10, workers=3)))
    assert not refused.fits and refused.reason == POOL_BUDGET_EXCEEDED
    assert "at least 4 connections each" in refused.message
    assert "spec.database.writeConnections" in refused.message
    needed = budget_needed(30 * 4)
    assert f"to {needed} or more" in refused.message
    assert size_pools(spec_of(direct(needed, write_connections=3, replicas=10, workers=3))).fits
    # With the default single write connection the message does not send users to a field they never set.
    assert "writeConnections" not in size_pools(spec_of(direct(3, replicas=2))).message


@pytest.mark.parametrize("write_connections", [1, 2, 5, 16])
@pytest.mark.parametrize("budget", [10, 57, 100, 999])
@pytest.mark.parametrize("pods", [1, 3, 20])
def test_every_pool_that_fits_has_room_beside_its_write_connections(
    write_connections: int, budget: int, pods: int
) -> None:
    for pooler in ("none", "pgbouncer"):
        spec = direct(budget, write_connections=write_connections, replicas=pods)
        spec["database"]["pooler"] = {"type": pooler}  # type: ignore[index]
        sizing = size_pools(spec_of(spec))
        if sizing.fits:
            assert sizing.per_worker_max > write_connections == sizing.write_connections
            if pooler == "none":
                assert sizing.aggregate_max <= 0.9 * budget
