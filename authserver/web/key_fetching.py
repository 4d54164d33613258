"""What fetching public keys over HTTP has in common, for clients' jwks_uri (``web.client_jwks``) and trusted
issuers (``web.issuer_keys``): one bounded GET, and a cache that refetches on an unknown kid at most once per
refresh interval and remembers a failure as long, so a hanging or broken source costs one bounded wait per
interval instead of one per request.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from authserver.protocol.client_assertion import ClientKeysUnavailable

MAX_BYTES = 64 * 1024
_MAX_ENTRIES = 4096  # sources whose key sets a worker keeps; the least recently fetched go first

Keys = tuple[dict[str, Any], ...]


class FetchFailed(ClientKeysUnavailable):
    """A fetch failed; ``outcome`` is one of ``metrics.FETCH_OUTCOMES``, the description says what."""

    def __init__(self, description: str, outcome: str) -> None:
        super().__init__(description)
        self.outcome = outcome


async def bounded_get(
    http: httpx.AsyncClient,
    uri: str,
    *,
    what: str,
    limit_seconds: float,
    max_bytes: int = MAX_BYTES,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """The body of a 200 answer to GET ``uri``, within ``limit_seconds`` (the whole fetch, however slowly it
    trickles) and ``max_bytes``; FetchFailed otherwise. ``what`` names the source in descriptions."""
    try:
        async with asyncio.timeout(limit_seconds):
            async with http.stream(
                "GET", uri, headers={"Accept": "application/json", **(headers or {})}
            ) as response:
                if response.status_code != 200:
                    raise FetchFailed(f"{what} answered HTTP {response.status_code}", "http_status")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise FetchFailed(f"{what} served more than {max_bytes} bytes", "too_large")
    except TimeoutError:
        raise FetchFailed(f"{what} did not answer within {limit_seconds:g} s", "timeout") from None
    except httpx.HTTPError as error:
        raise FetchFailed(f"{what} could not be fetched ({type(error).__name__})", "unreachable") from None
    return bytes(body)


@dataclass(frozen=True)
class _Fetched:
    tag: str  # what was fetched (a URI): a cached entry for another one does not serve
    at: float
    keys: Keys | None  # None: the fetch failed
    failure: str = ""


class KeyFetchCache:
    """Key sets by source (a client id, an issuer name); one fetch per source at a time."""

    def __init__(
        self,
        *,
        cache_seconds: float,
        refresh_interval: float,
        count: Callable[[str, str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache_seconds = cache_seconds
        self._refresh_interval = refresh_interval
        self._count = count  # (source, outcome) for the fetch metric
        self._clock = clock
        self._fetched: OrderedDict[str, _Fetched] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, source: str, tag: str, refresh: bool, fetch: Callable[[], Awaitable[Keys]]) -> Keys:
        entry = self._usable(source, tag, refresh)
        if entry is None:
            lock = self._locks.setdefault(source, asyncio.Lock())
            async with lock:  # one fetch per source at a time; the others wait for its result
                entry = self._usable(source, tag, refresh)
                if entry is None:
                    entry = await self._fetch(source, tag, fetch)
        if entry.keys is None:
            raise ClientKeysUnavailable(entry.failure)
        return entry.keys

    def _usable(self, source: str, tag: str, refresh: bool) -> _Fetched | None:
        """The cached fetch if it still serves: not stale, and (when a refresh is asked) not refreshable yet;
        a failure serves only until the refresh interval ends."""
        entry = self._fetched.get(source)
        if entry is None or entry.tag != tag:
            return None
        age = self._clock() - entry.at
        if age < self._refresh_interval:
            return entry
        if entry.keys is None or refresh or age >= self._cache_seconds:
            return None
        return entry

    async def _fetch(self, source: str, tag: str, fetch: Callable[[], Awaitable[Keys]]) -> _Fetched:
        try:
            keys: Keys | None = await fetch()
            failure, outcome = "", "ok"
        except FetchFailed as error:
            keys, failure, outcome = None, error.description, error.outcome
        except ClientKeysUnavailable as error:
            keys, failure, outcome = None, error.description, "invalid"
        self._count(source, outcome)
        entry = _Fetched(tag, self._clock(), keys, failure)
        self._fetched[source] = entry
        self._fetched.move_to_end(source)
        while len(self._fetched) > _MAX_ENTRIES:
            self._fetched.popitem(last=False)
        return entry
