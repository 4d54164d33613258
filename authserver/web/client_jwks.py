"""The keys private_key_jwt assertions are checked with (``protocol.client_assertion.ClientKeys``): a client's
inline ``jwks``, or the JWK Set its ``jwks_uri`` serves, fetched here because this layer may do HTTP.

A fetched set is cached per client for ``cache_seconds``; an assertion naming a kid the set lacks may have
it fetched again (a client's signing-key rotation), at most once per ``refresh_interval`` per client. A
failed fetch is remembered for that interval too, so a hanging or broken jwks_uri costs one bounded wait
(``timeout``, the whole fetch) per interval instead of one per request. Each fetch: GET, no redirects, at
most ``max_bytes``, a JSON JWK Set of public signing keys (``crypto.client_jwks``).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from authserver.crypto.client_jwks import InvalidJwks, parse_jwks_text
from authserver.observability import metrics
from authserver.protocol.client_assertion import ClientKeysUnavailable
from authserver.protocol.models import Client
from authserver.web.backchannel_delivery import trust
from authserver.web.key_fetching import MAX_BYTES, KeyFetchCache, Keys, bounded_get

TIMEOUT_SECONDS = 3.0
CACHE_SECONDS = 300.0
REFRESH_INTERVAL_SECONDS = 5.0
_MAX_ENTRIES = 4096  # inline key sets a worker keeps parsed


class ClientKeySource:
    def __init__(
        self,
        *,
        timeout: float = TIMEOUT_SECONDS,
        cache_seconds: float = CACHE_SECONDS,
        refresh_interval: float = REFRESH_INTERVAL_SECONDS,
        max_bytes: int = MAX_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
        ca_file: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._cache = KeyFetchCache(
            cache_seconds=cache_seconds,
            refresh_interval=refresh_interval,
            count=lambda _client, outcome: metrics.CLIENT_JWKS_FETCHES.labels(outcome).inc(),
            clock=clock,
        )
        self._inline: OrderedDict[str, Keys] = OrderedDict()
        # Never follow a redirect: the registered URI is the one the administrator vouched for.
        self._http = httpx.AsyncClient(
            transport=transport, follow_redirects=False, timeout=httpx.Timeout(timeout), verify=trust(ca_file)
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def __call__(self, client: Client, refresh: bool) -> Sequence[Mapping[str, Any]]:
        if client.jwks is not None:
            return self._inline_keys(client.jwks)
        if client.jwks_uri is None:
            raise ClientKeysUnavailable("the client registered neither jwks nor jwks_uri")
        uri = client.jwks_uri
        return await self._cache.get(client.client_id, uri, refresh, lambda: self._get(uri))

    async def _get(self, uri: str) -> Keys:
        body = await bounded_get(
            self._http, uri, what="its jwks_uri", limit_seconds=self._timeout, max_bytes=self._max_bytes
        )
        try:
            return parse_jwks_text(body)
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
