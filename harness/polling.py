"""Waiting for observed state with a bounded deadline: it returns as soon as the state is there."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def wait_for(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,  # noqa: ASYNC109 -- a deadline for polling, not for one awaited call
    *,
    interval: float = 0.05,
    message: str | Callable[[], str] = "",
) -> T:
    """Poll ``predicate`` (sync or async) until it returns something truthy, and return that.

    This synchronises on observed state with a bounded deadline (it is not a sleep): it returns as soon
    as the state is there, and fails with the last value (or exception) seen when the deadline passes.
    Exceptions from the predicate (KeyError, AssertionError...) count as "not yet"."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while True:
        try:
            result = predicate()
            if inspect.isawaitable(result):
                result = await result
            last = result
            if result:
                return result  # type: ignore[return-value]
        except Exception as error:
            last = error
        if loop.time() >= deadline:
            text = message() if callable(message) else message
            raise TimeoutError(f"not true within {timeout}s: {text or predicate!r}; last value: {last!r}")
        await asyncio.sleep(interval)
