"""The write batcher on its own (no database): who runs when, with whom, and what each caller gets back.

Executions are gated on events the test opens, so every interleaving here is decided by the test, not by
timing; the only clock is the wait timeout's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from authserver.storage.write_batches import WriteBatcher


class GatedWrites:
    """A kind of write whose executions each wait for the test's ``open_next()``; records every batch."""

    def __init__(self, name: str = "write", fail_with: Exception | None = None) -> None:
        self.name = name
        self.fail_with = fail_with
        self.batches: list[list[Any]] = []
        self.running = 0
        self.most_running = 0
        self._gates: list[asyncio.Event] = []
        self._started = asyncio.Event()

    async def execute(self, items: Sequence[Any]) -> list[Any]:
        self.batches.append(list(items))
        gate = asyncio.Event()
        self._gates.append(gate)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        self._started.set()
        try:
            await gate.wait()
        finally:
            self.running -= 1
        if self.fail_with is not None:
            raise self.fail_with
        return [f"{self.name}:{item}" for item in items]

    async def started(self, count: int) -> None:
        """Until ``count`` batches have started executing."""
        while len(self.batches) < count:
            self._started.clear()
            await self._started.wait()

    def open_next(self) -> None:
        next(gate for gate in self._gates if not gate.is_set()).set()


async def _turns(count: int = 5) -> None:
    """Let every runnable task run up to its next wait (a few loop turns; no clock)."""
    for _ in range(count):
        await asyncio.sleep(0)


async def test_a_write_that_finds_a_connection_free_runs_at_once_alone() -> None:
    batcher, writes = WriteBatcher(slots=2, wait_timeout=5), GatedWrites()
    first = asyncio.create_task(batcher.submit(writes.execute, "a", "a"))
    await writes.started(1)
    assert writes.batches == [["a"]] and batcher.in_use == 1
    writes.open_next()
    assert await first == "write:a"
    assert batcher.in_use == 0


async def test_writes_waiting_for_a_connection_go_together_in_arrival_order() -> None:
    batcher, writes = WriteBatcher(slots=1, wait_timeout=5), GatedWrites()
    first = asyncio.create_task(batcher.submit(writes.execute, "k0", 0))
    await writes.started(1)
    waiting = [asyncio.create_task(batcher.submit(writes.execute, f"k{n}", n)) for n in range(1, 6)]
    await _turns()
    assert len(writes.batches) == 1  # all five wait: the only connection is busy
    writes.open_next()
    await writes.started(2)
    assert writes.batches[1] == [1, 2, 3, 4, 5]
    writes.open_next()
    assert await first == "write:0"
    assert await asyncio.gather(*waiting) == [f"write:{n}" for n in range(1, 6)]
    assert batcher.in_use == 0


async def test_two_writes_of_one_key_never_share_a_batch() -> None:
    batcher, writes = WriteBatcher(slots=1, wait_timeout=5), GatedWrites()
    first = asyncio.create_task(batcher.submit(writes.execute, "busy", "busy"))
    await writes.started(1)
    same_token = [asyncio.create_task(batcher.submit(writes.execute, "t", f"t{n}")) for n in range(2)]
    other = asyncio.create_task(batcher.submit(writes.execute, "u", "u"))
    await _turns()
    writes.open_next()
    await writes.started(2)
    assert writes.batches[1] == ["t0", "u"]  # the second claim of "t" waits for the next batch
    writes.open_next()
    await writes.started(3)
    assert writes.batches[2] == ["t1"]
    writes.open_next()
    assert [await task for task in (first, *same_token, other)] == [
        "write:busy",
        "write:t0",
        "write:t1",
        "write:u",
    ]


async def test_kinds_do_not_mix_and_a_freed_connection_goes_to_the_oldest_waiter() -> None:
    batcher = WriteBatcher(slots=1, wait_timeout=5)
    rotations, redemptions = GatedWrites("rotation"), GatedWrites("redemption")
    first = asyncio.create_task(batcher.submit(rotations.execute, "r0", "r0"))
    await rotations.started(1)
    code = asyncio.create_task(batcher.submit(redemptions.execute, "c1", "c1"))
    await _turns()
    later = [asyncio.create_task(batcher.submit(rotations.execute, f"r{n}", f"r{n}")) for n in (2, 3)]
    await _turns()
    rotations.open_next()
    await redemptions.started(1)  # the redemption waited longest: it goes next, alone
    assert redemptions.batches == [["c1"]] and len(rotations.batches) == 1
    redemptions.open_next()
    await rotations.started(2)
    assert rotations.batches[1] == ["r2", "r3"]
    rotations.open_next()
    assert await asyncio.gather(first, code, *later) == [
        "rotation:r0",
        "redemption:c1",
        "rotation:r2",
        "rotation:r3",
    ]


async def test_never_more_statements_at_once_than_connections() -> None:
    batcher, writes = WriteBatcher(slots=3, wait_timeout=5), GatedWrites()
    tasks = [asyncio.create_task(batcher.submit(writes.execute, n, n)) for n in range(40)]
    await writes.started(3)
    while not all(task.done() for task in tasks):
        await _turns()
        assert writes.running <= 3
        if writes.running:
            writes.open_next()
    assert writes.most_running == 3
    assert sorted(await asyncio.gather(*tasks)) == sorted(f"write:{n}" for n in range(40))
    assert sorted(item for batch in writes.batches for item in batch) == list(range(40))  # each ran once
    assert batcher.in_use == 0


async def test_under_a_sustained_queue_nobody_is_served_ahead_of_an_earlier_arrival() -> None:
    """New writes keep arriving, one per loop turn, while batches complete: every batch holds only
    writes that arrived before any write of a later batch (no barging past a waiter)."""
    batcher = WriteBatcher(slots=1, wait_timeout=30)
    batches: list[list[int]] = []

    async def execute(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        await _turns(3)  # a statement outlasts an arrival: the queue grows
        return list(items)

    tasks = []
    for arrival in range(200):
        tasks.append(asyncio.create_task(batcher.submit(execute, arrival, arrival)))
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    served = [arrival for batch in batches for arrival in sorted(batch)]
    assert served == list(range(200))
    assert max(len(batch) for batch in batches) > 1  # the queue did form batches


async def test_a_write_that_waits_too_long_is_a_pool_timeout_and_never_runs() -> None:
    batcher, writes = WriteBatcher(slots=1, wait_timeout=0.05), GatedWrites()
    first = asyncio.create_task(batcher.submit(writes.execute, "a", "a"))
    await writes.started(1)
    with pytest.raises(PoolTimeoutError):
        await batcher.submit(writes.execute, "b", "b")
    writes.open_next()
    assert await first == "write:a"
    assert writes.batches == [["a"]]
    # The connection is free again: the next write runs at once.
    after = asyncio.create_task(batcher.submit(writes.execute, "c", "c"))
    await writes.started(2)
    writes.open_next()
    assert await after == "write:c" and batcher.in_use == 0


async def test_a_cancelled_waiter_never_runs_and_keeps_no_connection() -> None:
    batcher, writes = WriteBatcher(slots=1, wait_timeout=5), GatedWrites()
    first = asyncio.create_task(batcher.submit(writes.execute, "a", "a"))
    await writes.started(1)
    gone = asyncio.create_task(batcher.submit(writes.execute, "b", "b"))
    kept = asyncio.create_task(batcher.submit(writes.execute, "c", "c"))
    await _turns()
    gone.cancel()
    await _turns()
    writes.open_next()
    await writes.started(2)
    assert writes.batches[1] == ["c"]
    writes.open_next()
    assert await asyncio.gather(first, kept) == ["write:a", "write:c"]
    assert gone.cancelled() and batcher.in_use == 0


async def test_a_waiter_cancelled_just_as_the_connection_is_handed_to_it_passes_it_on() -> None:
    batcher, writes = WriteBatcher(slots=1, wait_timeout=5), GatedWrites()
    first = asyncio.create_task(batcher.submit(writes.execute, "a", "a"))
    await writes.started(1)
    handed = asyncio.create_task(batcher.submit(writes.execute, "b", "b"))
    await _turns()
    writes.open_next()
    # One turn: "a" completes and hands the connection to "b", whose wake-up is queued behind this task.
    await asyncio.sleep(0)
    assert first.done() and not handed.done()
    handed.cancel()
    await _turns()
    assert await first == "write:a"
    assert batcher.in_use == 0  # passed on to nobody: free again
    after = asyncio.create_task(batcher.submit(writes.execute, "c", "c"))
    await writes.started(2)
    writes.open_next()
    assert await after == "write:c"
    assert writes.batches == [["a"], ["c"]]


async def test_a_failed_statement_fails_every_write_in_its_batch_and_frees_the_connection() -> None:
    batcher = WriteBatcher(slots=1, wait_timeout=5)
    broken = GatedWrites(fail_with=DBAPIError("statement", None, OSError("connection reset")))
    first = asyncio.create_task(batcher.submit(broken.execute, "a", "a"))
    await broken.started(1)
    waiting = [asyncio.create_task(batcher.submit(broken.execute, key, key)) for key in ("b", "c")]
    await _turns()
    broken.open_next()
    await broken.started(2)
    broken.open_next()
    outcomes = await asyncio.gather(first, *waiting, return_exceptions=True)
    assert all(isinstance(outcome, DBAPIError) for outcome in outcomes)
    assert broken.batches == [["a"], ["b", "c"]] and batcher.in_use == 0


async def test_a_batch_is_never_larger_than_its_limit() -> None:
    batcher, writes = WriteBatcher(slots=1, wait_timeout=5, max_batch=3), GatedWrites()
    tasks = [asyncio.create_task(batcher.submit(writes.execute, n, n)) for n in range(8)]
    await writes.started(1)
    while not all(task.done() for task in tasks):
        await _turns()
        if writes.running:
            writes.open_next()
    assert [len(batch) for batch in writes.batches] == [1, 3, 3, 1]


async def test_an_execute_that_loses_a_result_fails_its_whole_batch_instead_of_leaving_anyone_waiting() -> (
    None
):
    batcher, writes = WriteBatcher(slots=1, wait_timeout=5), GatedWrites()
    first = asyncio.create_task(batcher.submit(writes.execute, "a", "a"))
    await writes.started(1)

    async def short(items: Sequence[Any]) -> list[Any]:
        return list(items)[1:]

    waiting = [asyncio.create_task(batcher.submit(short, key, key)) for key in ("b", "c")]
    await _turns()
    writes.open_next()
    outcomes = await asyncio.gather(first, *waiting, return_exceptions=True)
    assert outcomes[0] == "write:a"
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes[1:])
    assert batcher.in_use == 0
