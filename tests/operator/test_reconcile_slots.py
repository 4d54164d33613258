"""Reconcile slots: a bounded number of reconciles per kind at a time, the rest queued in arrival order."""

from __future__ import annotations

import asyncio

from authyard_operator.reconcile_slots import ReconcileSlots


async def test_at_most_the_limit_run_at_once_and_the_rest_start_in_arrival_order() -> None:
    slots = ReconcileSlots(per_kind=2)
    running: set[int] = set()
    most, started = 0, []
    release = asyncio.Event()

    async def reconcile(index: int) -> None:
        nonlocal most
        async with slots.of("OAuthClient"):
            started.append(index)
            running.add(index)
            most = max(most, len(running))
            await release.wait()
            running.discard(index)

    tasks = [asyncio.create_task(reconcile(index)) for index in range(6)]
    for _ in range(20):  # scheduling rounds, not time: every task reaches its slot or the queue
        await asyncio.sleep(0)
    assert started == [0, 1]

    async with asyncio.timeout(1):  # another kind does not wait behind OAuthClients
        async with slots.of("AuthServer"):
            pass

    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    assert started == [0, 1, 2, 3, 4, 5]
    assert most == 2
