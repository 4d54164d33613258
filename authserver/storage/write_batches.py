"""Concurrent writes of one kind, sent to the database as one statement per batch (group commit).

Under load the token path's writes (refresh-token rotation, code redemption) queue for a connection. One
statement that claims ten rows costs PostgreSQL less than half the CPU per row of ten one-row statements
(docs/performance.md), and each statement is another round trip, another wake-up of a database process and
another turn of the worker's event loop. So whoever gets a connection takes every
write of its kind that is waiting (in arrival order, up to ``max_batch``) and runs them as one statement.

No timer and no delay: a write that finds a connection free runs at once, alone. Batches form only while
every connection is busy, from the writes that would otherwise wait for one. Waiting is first come, first
served: a freed connection goes to the oldest waiter, which then leads the next batch (no task is spawned
for it). Writes with the same key (the same token) never share a batch, so each batch's statement sees at
most one claim per row, and a replay is decided by the database in order like any other.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# Runs one batch (items in arrival order) and returns one result per item, in the same order.
Execute = Callable[[Sequence[Any]], Awaitable[Sequence[Any]]]

_LEAD = object()  # a waiter's future resolves to this when a connection is handed to it


@dataclass(eq=False)
class _Waiting:
    execute: Execute
    key: Hashable
    item: Any
    future: asyncio.Future[Any]
    deadline: asyncio.TimerHandle | None = field(default=None)


class WriteBatcher:
    """At most ``slots`` statements at a time (one per connection); waiters give up after ``wait_timeout``
    seconds without a connection (SQLAlchemy's pool timeout, as for any other wait on the pool)."""

    def __init__(
        self,
        slots: int,
        wait_timeout: float,
        max_batch: int = 64,
        observe: Callable[[Execute, int], None] | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError("a write batcher needs at least one connection")
        self.slots = slots
        self.wait_timeout = wait_timeout
        self.max_batch = max_batch
        self._observe = observe  # (execute, batch size) after each batch: metrics
        self._free = slots
        self._waiting: deque[_Waiting] = deque()

    @property
    def in_use(self) -> int:
        return self.slots - self._free

    async def submit(self, execute: Execute, key: Hashable, item: Any) -> Any:
        """``item``'s result from ``execute``, run in a batch with other waiting items of the same kind."""
        if self._free:
            self._free -= 1
            return await self._lead(execute, key, item)
        loop = asyncio.get_running_loop()
        waiting = _Waiting(execute, key, item, loop.create_future())
        waiting.deadline = loop.call_later(self.wait_timeout, self._expire, waiting)
        self._waiting.append(waiting)
        try:
            outcome = await waiting.future
        except asyncio.CancelledError:
            self._abandon(waiting)
            raise
        if outcome is _LEAD:
            return await self._lead(execute, key, item)
        return outcome

    async def _lead(self, execute: Execute, key: Hashable, item: Any) -> Any:
        try:
            followers = self._take(execute, key)
            items = [item, *(waiting.item for waiting in followers)]
            try:
                results = await execute(items)
                if len(results) != len(items):
                    raise RuntimeError(f"{len(items)} writes, {len(results)} results")
            except BaseException as error:
                failure = error if isinstance(error, Exception) else DBAPIError(None, None, error)
                for waiting in followers:
                    if not waiting.future.done():
                        waiting.future.set_exception(failure)
                raise
            for waiting, result in zip(followers, results[1:], strict=True):
                if not waiting.future.done():
                    waiting.future.set_result(result)
            if self._observe is not None:
                self._observe(execute, len(items))
            return results[0]
        finally:
            self._hand_on()

    def _take(self, execute: Execute, key: Hashable) -> list[_Waiting]:
        """The waiting items this batch can carry: same kind, one per key, oldest first."""
        if not self._waiting:
            return []
        taken: list[_Waiting] = []
        keys = {key}
        left: deque[_Waiting] = deque()
        for waiting in self._waiting:
            if waiting.future.done():
                continue  # cancelled, or timed out
            # ==, not is: a bound method is a new object at every attribute access.
            if waiting.execute == execute and waiting.key not in keys and len(taken) + 1 < self.max_batch:
                keys.add(waiting.key)
                taken.append(waiting)
                if waiting.deadline is not None:
                    waiting.deadline.cancel()  # the wait for a connection is over
            else:
                left.append(waiting)
        self._waiting = left
        return taken

    def _hand_on(self) -> None:
        """This connection goes to the oldest waiter, who leads the next batch; else it is free."""
        while self._waiting:
            waiting = self._waiting.popleft()
            if not waiting.future.done():
                if waiting.deadline is not None:
                    waiting.deadline.cancel()
                waiting.future.set_result(_LEAD)
                return
        self._free += 1

    def _expire(self, waiting: _Waiting) -> None:
        if not waiting.future.done():
            self._waiting.remove(waiting)
            waiting.future.set_exception(PoolTimeoutError("no free connection for the token path's writes"))

    def _abandon(self, waiting: _Waiting) -> None:
        """A cancelled waiter: out of the queue, and a connection handed to it goes on to the next."""
        if waiting.deadline is not None:
            waiting.deadline.cancel()
        future = waiting.future
        if (
            future.done()
            and not future.cancelled()
            and future.exception() is None
            and future.result() is _LEAD
        ):
            self._hand_on()
            return
        if waiting in self._waiting:
            self._waiting.remove(waiting)
