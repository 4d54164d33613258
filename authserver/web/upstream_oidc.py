"""The HTTP side of sign-in through an upstream OpenID provider (``protocol.upstream_sign_in`` decides).

Discovery (OIDC Discovery §4) and the provider's JWK Set are fetched here and cached per provider; the token
request (OIDC Core §3.1.3.1) and userinfo (§5.3) are made once per sign-in. Every request is bounded by
``timeout`` as a whole (connecting, and however slowly the answer trickles) and by ``MAX_BYTES``; redirects
are not followed. A failed discovery is remembered for ``RETRY_SECONDS``, so a provider that is down costs one
bounded wait per few seconds, not one per person. Tokens received are returned to the caller only: never
logged (failures are logged by kind, without a body).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from authserver.protocol.upstream_sign_in import (
    Failure,
    OidcUpstream,
    ProviderMetadata,
    UpstreamFailure,
    invalid,
)
from authserver.web.backchannel_delivery import trust

TIMEOUT_SECONDS = 5.0
METADATA_CACHE_SECONDS = 600.0
KEYS_CACHE_SECONDS = 600.0
RETRY_SECONDS = 5.0  # a failure is remembered this long; an unknown kid refetches the keys at most this often
MAX_BYTES = 256 * 1024


@dataclass(frozen=True)
class _Cached:
    at: float
    value: Any  # ProviderMetadata, a key list, or the UpstreamFailure to raise again


class UpstreamOidcClient:
    def __init__(
        self,
        *,
        timeout: float = TIMEOUT_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timeout = timeout
        self._transport = transport
        self._clock = clock
        self._clients: dict[str | None, httpx.AsyncClient] = {}
        self._metadata: dict[str, _Cached] = {}
        self._keys: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    def _http(self, upstream: OidcUpstream) -> httpx.AsyncClient:
        client = self._clients.get(upstream.ca_file)
        if client is None:
            client = httpx.AsyncClient(
                transport=self._transport,
                follow_redirects=False,
                timeout=httpx.Timeout(self._timeout),
                verify=trust(None if upstream.ca_file is None else Path(upstream.ca_file)),
            )
            self._clients[upstream.ca_file] = client
        return client

    async def metadata(self, upstream: OidcUpstream) -> ProviderMetadata:
        """The provider's discovery document, cached; raises ``UpstreamFailure``."""
        cached = self._fresh(self._metadata, upstream.name, METADATA_CACHE_SECONDS)
        if cached is None:
            async with self._locks.setdefault(f"metadata:{upstream.name}", asyncio.Lock()):
                cached = self._fresh(self._metadata, upstream.name, METADATA_CACHE_SECONDS)
                if cached is None:
                    # OIDC Discovery §4: the issuer with /.well-known/openid-configuration appended.
                    url = upstream.issuer.rstrip("/") + "/.well-known/openid-configuration"
                    try:
                        value: Any = ProviderMetadata.parse(await self._json(upstream, "GET", url), upstream)
                    except UpstreamFailure as failure:
                        value = failure
                    cached = _Cached(self._clock(), value)
                    self._metadata[upstream.name] = cached
        if isinstance(cached.value, UpstreamFailure):
            raise cached.value
        metadata: ProviderMetadata = cached.value
        return metadata

    async def keys(
        self, upstream: OidcUpstream, metadata: ProviderMetadata, *, refresh: bool = False
    ) -> Sequence[Mapping[str, Any]]:
        """The provider's JWK Set, cached; ``refresh`` (a kid it lacked) fetches it again unless it was
        fetched in the last few seconds."""
        cached = self._keys.get(upstream.name)
        now = self._clock()
        if cached is not None and not isinstance(cached.value, UpstreamFailure):
            age = now - cached.at
            if age < RETRY_SECONDS or (not refresh and age < KEYS_CACHE_SECONDS):
                keys: Sequence[Mapping[str, Any]] = cached.value
                return keys
        elif cached is not None and now - cached.at < RETRY_SECONDS:
            raise cached.value
        async with self._locks.setdefault(f"keys:{upstream.name}", asyncio.Lock()):
            try:
                document = await self._json(upstream, "GET", metadata.jwks_uri)
                found = document.get("keys") if isinstance(document, dict) else None
                if not isinstance(found, list):
                    raise invalid("the provider's jwks_uri did not serve a JWK Set")
                value: Any = tuple(key for key in found if isinstance(key, dict))
            except UpstreamFailure as failure:
                value = failure
            self._keys[upstream.name] = _Cached(self._clock(), value)
        if isinstance(value, UpstreamFailure):
            raise value
        return tuple(value)

    async def exchange(
        self,
        upstream: OidcUpstream,
        metadata: ProviderMetadata,
        code: str,
        redirect_uri: str,
        verifier: str,
    ) -> dict[str, Any]:
        """The token response for ``code`` (OIDC Core §3.1.3.1), the client authenticated as the provider
        prefers (client_secret_basic unless it offers only client_secret_post)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        auth: httpx.BasicAuth | None = None
        if metadata.client_authentication() == "client_secret_post":
            form |= {"client_id": upstream.client_id, "client_secret": upstream.client_secret}
        else:
            # RFC 6749 §2.3.1: each part form-urlencoded before the Basic encoding.
            from urllib.parse import quote

            auth = httpx.BasicAuth(quote(upstream.client_id, safe=""), quote(upstream.client_secret, safe=""))
        answer = await self._json(upstream, "POST", metadata.token_endpoint, data=form, auth=auth)
        if not isinstance(answer, dict) or not isinstance(answer.get("id_token"), str):
            raise invalid("the token response has no ID token")
        return answer

    async def userinfo(self, upstream: OidcUpstream, metadata: ProviderMetadata, access_token: str) -> Any:
        if metadata.userinfo_endpoint is None:
            return None
        return await self._json(
            upstream,
            "GET",
            metadata.userinfo_endpoint,
            headers={"Authorization": f"Bearer {access_token}"},
        )

    def _fresh(self, cache: dict[str, _Cached], name: str, lifetime: float) -> _Cached | None:
        entry = cache.get(name)
        if entry is None:
            return None
        age = self._clock() - entry.at
        limit = RETRY_SECONDS if isinstance(entry.value, UpstreamFailure) else lifetime
        return entry if age < limit else None

    async def _json(
        self,
        upstream: OidcUpstream,
        method: str,
        url: str,
        *,
        data: dict[str, str] | None = None,
        auth: httpx.BasicAuth | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The JSON body of a 200 answer; ``UpstreamFailure`` for a timeout, a connection failure, another
        status, an oversized or non-JSON body. Which endpoint failed goes into the failure's detail (for
        the log), never a body."""
        endpoint = url.split("?", 1)[0]
        try:
            async with asyncio.timeout(self._timeout):  # the whole exchange, however slowly it trickles
                async with self._http(upstream).stream(
                    method,
                    url,
                    data=data,
                    auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                    headers={"Accept": "application/json", **(headers or {})},
                ) as response:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_BYTES:
                            raise invalid(f"{endpoint} answered more than {MAX_BYTES} bytes")
                    status = response.status_code
        except TimeoutError:
            raise UpstreamFailure(
                Failure.TIMEOUT, "it did not answer in time", f"{endpoint}: no answer in {self._timeout} s"
            ) from None
        except httpx.HTTPError as error:
            raise UpstreamFailure(
                Failure.UNAVAILABLE, "it cannot be reached", f"{endpoint}: {type(error).__name__}"
            ) from None
        if status != 200:
            if 400 <= status < 500:
                raise invalid(f"{endpoint} answered HTTP {status}")
            raise UpstreamFailure(Failure.UNAVAILABLE, "it cannot be reached", f"{endpoint}: HTTP {status}")
        try:
            return orjson.loads(bytes(body))
        except orjson.JSONDecodeError:
            raise invalid(f"{endpoint} did not answer JSON") from None
