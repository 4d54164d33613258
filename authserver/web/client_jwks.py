"""The keys private_key_jwt assertions are checked with (``protocol.client_assertion.ClientKeys``): a client's
inline ``jwks``, or the JWK Set its ``jwks_uri`` serves, fetched here because this layer may do HTTP.

A fetched set is cached per client for ``cache_seconds``; an assertion naming a kid the set lacks may have
it fetched again (a client's signing-key rotation), at most once per ``refresh_interval`` per client. A
failed fetch is remembered for that interval too, so a hanging or broken jwks_uri costs one bounded wait
(``timeout``, the whole fetch) per interval instead of one per request. Each fetch: GET, no redirects, at
most ``max_bytes``, a JSON JWK Set of public signing keys (``crypto.client_jwks``).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from authserver.crypto.client_jwks import InvalidJwks, parse_jwks_text
from authserver.protocol.client_assertion import ClientKeysUnavailable
from authserver.protocol.models import Client
from authserver.web.backchannel_delivery import trust

TIMEOUT_SECONDS = 3.0
CACHE_SECONDS = 300.0
REFRESH_INTERVAL_SECONDS = 5.0
MAX_BYTES = 64 * 1024
_MAX_ENTRIES = 4096  # clients whose key sets a worker keeps; the least recently fetched go first

Keys = tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class _Fetched:
    uri: str
    at: float
    keys: Keys | None  # None: the fetch failed
    failure: str = ""


class ClientKeySource:
    def __init__(
        self,
        *,
        timeout: float = TIMEOUT_SECONDS,
        cache_seconds: float = CACHE_SECONDS,
        refresh_interval: float = REFRESH_INTERVAL_SECONDS,
        max_bytes: int = MAX_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = timeout
        self._cache_seconds = cache_seconds
        self._refresh_interval = refresh_interval
        self._max_bytes = max_bytes
        self._clock = clock
        self._fetched: OrderedDict[str, _Fetched] = OrderedDict()
        self._inline: OrderedDict[str, Keys] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}  # one per client with a jwks_uri
        # Never follow a redirect: the registered URI is the one the administrator vouched for.
        self._http = httpx.AsyncClient(
            transport=transport, follow_redirects=False, timeout=httpx.Timeout(timeout), verify=trust(None)
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def __call__(self, client: Client, refresh: bool) -> Sequence[Mapping[str, Any]]:
        if client.jwks is not None:
            return self._inline_keys(client.jwks)
        if client.jwks_uri is None:
            raise ClientKeysUnavailable("the client registered neither jwks nor jwks_uri")
        uri = client.jwks_uri
        entry = self._usable(client.client_id, uri, refresh)
        if entry is None:
            lock = self._locks.setdefault(client.client_id, asyncio.Lock())
            async with lock:  # one fetch per client at a time; the others wait for its result
                entry = self._usable(client.client_id, uri, refresh)
                if entry is None:
                    entry = await self._fetch(client.client_id, uri)
        if entry.keys is None:
            raise ClientKeysUnavailable(entry.failure)
        return entry.keys

    def _usable(self, client_id: str, uri: str, refresh: bool) -> _Fetched | None:
        """The cached fetch if it still serves: not stale, and (when a refresh is asked) not refreshable yet;
        a failure serves only until the refresh interval ends."""
        entry = self._fetched.get(client_id)
        if entry is None or entry.uri != uri:
            return None
        age = self._clock() - entry.at
        if age < self._refresh_interval:
            return entry
        if entry.keys is None or refresh or age >= self._cache_seconds:
            return None
        return entry

    async def _fetch(self, client_id: str, uri: str) -> _Fetched:
        try:
            keys: Keys | None = await self._get(uri)
            failure = ""
        except ClientKeysUnavailable as error:
            keys, failure = None, error.description
        entry = _Fetched(uri, self._clock(), keys, failure)
        self._fetched[client_id] = entry
        self._fetched.move_to_end(client_id)
        while len(self._fetched) > _MAX_ENTRIES:
            self._fetched.popitem(last=False)
        return entry

    async def _get(self, uri: str) -> Keys:
        try:
            async with asyncio.timeout(self._timeout):  # the whole fetch, however slowly it trickles
                async with self._http.stream("GET", uri, headers={"Accept": "application/json"}) as response:
                    if response.status_code != 200:
                        raise ClientKeysUnavailable(f"its jwks_uri answered HTTP {response.status_code}")
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > self._max_bytes:
                            raise ClientKeysUnavailable(
                                f"its jwks_uri served more than {self._max_bytes} bytes"
                            )
        except TimeoutError:
            raise ClientKeysUnavailable(f"its jwks_uri did not answer within {self._timeout:g} s") from None
        except httpx.HTTPError as error:
            raise ClientKeysUnavailable(
                f"its jwks_uri could not be fetched ({type(error).__name__})"
            ) from None
        try:
            return parse_jwks_text(bytes(body))
        except InvalidJwks as error:
            raise ClientKeysUnavailable(
                f"its jwks_uri did not serve a JWK Set of public keys: {error}"
            ) from None

    def _inline_keys(self, text: str) -> Keys:
        keys = self._inline.get(text)
        if keys is None:
            try:
                keys = parse_jwks_text(text)
            except InvalidJwks as error:  # registration checked it; a row edited by hand may not be
                raise ClientKeysUnavailable(f"its registered jwks is unusable: {error}") from None
            self._inline[text] = keys
            while len(self._inline) > _MAX_ENTRIES:
                self._inline.popitem(last=False)
        return keys
