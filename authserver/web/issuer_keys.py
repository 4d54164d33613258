"""The keys of trusted issuers (``protocol.trusted_issuers.IssuerKeys``), fetched here because this layer
may do HTTP: the issuer's configured ``jwks_uri``, or the one its discovery document names.

Each fetch reads the discovery document (unless a jwks_uri is configured) and checks that its ``issuer`` is
exactly the configured one (OIDC Discovery §4.3: otherwise another issuer's keys could be passed off as
this one's), then the JWK Set. Both GETs: the issuer's CA file (beside the public CAs), the bearer token
file's current content when configured (re-read every time: the kubelet rotates a projected token), no
redirects, a size limit and a timeout for the whole fetch. The set is cached per issuer, refetched on an
unknown kid at most once per refresh interval, and a failure is remembered as long (``web.key_fetching``).

The bearer token is sent to the discovery URL and to the JWKS URI (configured, or named by the discovery
document that was fetched over the configured trust): a Kubernetes API server asks for it at both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from authserver.config import TrustedIssuerConfig, check_trusted_url
from authserver.crypto.client_jwks import InvalidJwks, parse_jwks_text
from authserver.observability import metrics
from authserver.protocol.trusted_issuers import TrustedIssuer
from authserver.web.backchannel_delivery import trust
from authserver.web.key_fetching import MAX_BYTES, FetchFailed, KeyFetchCache, Keys, bounded_get

TIMEOUT_SECONDS = 3.0
CACHE_SECONDS = 300.0
REFRESH_INTERVAL_SECONDS = 5.0
_MAX_TOKEN_BYTES = 16 * 1024


class IssuerKeySource:
    def __init__(
        self,
        issuers: Sequence[TrustedIssuerConfig],
        *,
        timeout: float = TIMEOUT_SECONDS,
        cache_seconds: float = CACHE_SECONDS,
        refresh_interval: float = REFRESH_INTERVAL_SECONDS,
        max_bytes: int = MAX_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._configs = {config.name: config for config in issuers}
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._cache = KeyFetchCache(
            cache_seconds=cache_seconds,
            refresh_interval=refresh_interval,
            count=lambda name, outcome: metrics.TRUSTED_ISSUER_FETCHES.labels(name, outcome).inc(),
            clock=clock,
        )
        # One client per issuer: each has its own CA file. Never follow a redirect.
        self._http = {
            config.name: httpx.AsyncClient(
                transport=transport,
                follow_redirects=False,
                timeout=httpx.Timeout(timeout),
                verify=trust(config.ca_file),
            )
            for config in issuers
        }
        for config in issuers:
            for outcome in metrics.FETCH_OUTCOMES:
                metrics.TRUSTED_ISSUER_FETCHES.labels(config.name, outcome)

    async def close(self) -> None:
        for http in self._http.values():
            await http.aclose()

    async def __call__(self, issuer: TrustedIssuer, refresh: bool) -> Sequence[Mapping[str, Any]]:
        config = self._configs[issuer.name]
        return await self._cache.get(config.name, config.issuer, refresh, lambda: self._fetch(config))

    async def _fetch(self, config: TrustedIssuerConfig) -> Keys:
        http = self._http[config.name]
        headers = self._authorization(config)
        jwks_uri = config.jwks_uri or await self._discover(http, config, headers)
        body = await self._get(http, jwks_uri, "its JWKS", headers)
        try:
            return parse_jwks_text(body)
        except InvalidJwks as error:
            raise FetchFailed(f"its JWKS is not a JWK Set of public keys: {error}", "invalid") from None

    async def _discover(
        self, http: httpx.AsyncClient, config: TrustedIssuerConfig, headers: Mapping[str, str]
    ) -> str:
        body = await self._get(http, config.discovery_document_url, "its discovery document", headers)
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise FetchFailed("its discovery document is not JSON", "invalid") from None
        if not isinstance(document, dict):
            raise FetchFailed("its discovery document is not a JSON object", "invalid")
        # OIDC Discovery §4.3: the issuer in the document MUST be exactly the one it was fetched for.
        if document.get("issuer") != config.issuer:
            raise FetchFailed("its discovery document names another issuer", "invalid")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise FetchFailed("its discovery document has no jwks_uri", "invalid")
        try:
            return check_trusted_url(jwks_uri)
        except ValueError:
            raise FetchFailed("its discovery document's jwks_uri is not an https URL", "invalid") from None

    async def _get(self, http: httpx.AsyncClient, uri: str, what: str, headers: Mapping[str, str]) -> bytes:
        return await bounded_get(
            http, uri, what=what, limit_seconds=self._timeout, max_bytes=self._max_bytes, headers=headers
        )

    @staticmethod
    def _authorization(config: TrustedIssuerConfig) -> dict[str, str]:
        if config.bearer_token_file is None:
            return {}
        try:
            # Read on every fetch: the kubelet replaces a projected token before it expires.
            token = config.bearer_token_file.read_bytes()[:_MAX_TOKEN_BYTES].decode().strip()
        except (OSError, UnicodeDecodeError) as error:
            raise FetchFailed(
                f"its bearer token file cannot be read ({type(error).__name__})", "invalid"
            ) from None
        return {"Authorization": f"Bearer {token}"} if token else {}
