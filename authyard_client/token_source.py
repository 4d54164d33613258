"""Access tokens for a workload (client_credentials, RFC 6749 §4.4), kept fresh.

Two variants with one behaviour: :class:`AsyncTokenSource` (asyncio, one event loop) and
:class:`TokenSource` (threads). Both

- refresh the token once a jittered fraction of its lifetime has passed (:mod:`authyard_client.refresh`);
- make one token request however many callers ask at once: while the token in hand is still valid, the
  other callers get it at once (the async source refreshes in a background task; the sync source in the
  first caller's thread, the others do not wait); without a valid token every caller waits for the same
  request;
- retry a failed refresh with exponential backoff and jitter while the token in hand serves, and never serve
  a token past its expiry: then they raise :class:`TokenUnavailable` (its cause says why), until a request
  succeeds again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypedDict, Unpack

import httpx

from authyard_client.client_auth import ClientAuthentication
from authyard_client.errors import ClientKitError, ConfigurationError, TokenRequestError
from authyard_client.metrics import RefreshStats
from authyard_client.refresh import (
    AccessToken,
    RefreshPolicy,
    Schedule,
    build_request,
    discovered_token_endpoint,
    discovery_url,
    parse_token_response,
)
from authyard_client.settings import ClientSettings

logger = logging.getLogger(__name__)
Clock = Callable[[], float]


class SourceOptions(TypedDict, total=False):
    """The keyword arguments both token sources take (besides their HTTP client)."""

    token_endpoint: str | None  # default: from the issuer's discovery document
    issuer: str | None
    scope: str
    resources: tuple[str, ...] | list[str]  # RFC 8707 resource indicators: the audiences asked for
    policy: RefreshPolicy | None
    timeout: float  # of each HTTP request, when the source makes its own client
    clock: Clock


class _SourceBase:
    def __init__(self, auth: ClientAuthentication, **options: Unpack[SourceOptions]) -> None:
        token_endpoint, issuer = options.get("token_endpoint"), options.get("issuer")
        if token_endpoint is None and issuer is None:
            raise ConfigurationError("give the token endpoint or the issuer (its discovery has the endpoint)")
        self.auth = auth
        self.issuer = issuer
        self.scope = options.get("scope", "")
        self.resources = tuple(options.get("resources", ()))
        self.policy = options.get("policy") or RefreshPolicy()
        self.timeout = options.get("timeout", 10.0)
        self.clock = options.get("clock", time.monotonic)
        self.stats = RefreshStats(auth.client_id)
        self._token_endpoint = token_endpoint
        self._schedule = Schedule(self.policy)

    @classmethod
    def from_settings(
        cls,
        settings: ClientSettings,
        method: str | None = None,
        *,
        private_key_file: str | Path | None = None,
        kid: str | None = None,
        service_account_token_file: str | Path | None = None,
        **options: Any,
    ) -> Self:
        """A source for ``settings`` (see :meth:`ClientSettings.authentication` for the method);
        ``options`` are the constructor's keyword arguments (``http`` included) and override the settings."""
        auth = settings.authentication(
            method,
            private_key_file=private_key_file,
            kid=kid,
            service_account_token_file=service_account_token_file,
        )
        defaults = {
            "token_endpoint": settings.token_endpoint,
            "issuer": settings.issuer,
            "scope": settings.scope,
            "resources": settings.audiences,
        }
        return cls(auth, **{**defaults, **options})

    @classmethod
    def from_secret_dir(cls, directory: str | Path, method: str | None = None, **options: Any) -> Self:
        """A source for the operator's Secret mounted at ``directory`` (as :meth:`from_settings`)."""
        return cls.from_settings(ClientSettings.from_secret_dir(directory), method, **options)

    def _record(self, kind: str, started: float, result: AccessToken | ClientKitError) -> None:
        """Note the outcome of one token request (the caller holds the source's lock)."""
        life_used = self._schedule.life_used(started)
        if isinstance(result, AccessToken):
            self._schedule.succeeded(result)
            self.stats.record(kind, "success", life_used)
        else:
            self._schedule.failed(result, self.clock())
            self.stats.record(kind, "failure", life_used)
            # The message names the rule the server applied; it carries no credential.
            logger.warning("token request for %s failed (%s): %s", self.auth.client_id, kind, result)

    def _parse(self, response: httpx.Response, started: float) -> AccessToken:
        return parse_token_response(response, started, self.policy.min_validity)

    def _discovered(self, response: httpx.Response) -> str:
        assert self.issuer is not None
        if response.status_code != 200:
            status = response.status_code
            raise TokenRequestError(f"discovery answered {status}", status_code=status)
        try:
            document = response.json()
        except ValueError:
            raise TokenRequestError("the discovery document is not JSON") from None
        self._token_endpoint = discovered_token_endpoint(document, self.issuer)
        return self._token_endpoint


class AsyncTokenSource(_SourceBase):
    """Tokens for asyncio code. Use it from one event loop; close it (or ``async with``) to end a refresh in
    flight and, if it made one, its HTTP client."""

    def __init__(
        self,
        auth: ClientAuthentication,
        *,
        http: httpx.AsyncClient | None = None,
        **options: Unpack[SourceOptions],
    ) -> None:
        super().__init__(auth, **options)
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=self.timeout)
        self._inflight: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        task, self._inflight = self._inflight, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self._owns_http:
            await self._http.aclose()

    async def token(self) -> str:
        """A valid access token's value (raises TokenUnavailable when there is none to serve)."""
        return (await self.access_token()).value

    async def access_token(self) -> AccessToken:
        while True:
            now = self.clock()
            usable = self._schedule.usable(now)
            if usable is not None:
                if self._inflight is None and self._schedule.due(now):
                    self._inflight = asyncio.create_task(self._refresh())
                return usable
            if self._inflight is None:
                if not self._schedule.may_attempt(now):
                    raise self._schedule.unavailable(now)
                self._inflight = asyncio.create_task(self._refresh())
            # shield: a cancelled caller must not cancel the request the others wait for.
            await asyncio.shield(self._inflight)

    def invalidate(self, value: str) -> None:
        """A resource server refused ``value`` (401): the next call gets a new token."""
        self._schedule.reject(value)

    async def _refresh(self) -> None:
        started = self.clock()
        kind = self._schedule.kind(started)
        try:
            result: AccessToken | ClientKitError = await self._fetch(started)
        except ClientKitError as error:
            result = error
        finally:
            self._inflight = None
        self._record(kind, started, result)

    async def _fetch(self, started: float) -> AccessToken:
        try:
            endpoint = self._token_endpoint or await self._discover()
            request = build_request(self.auth, endpoint, self.scope, self.resources)
            response = await self._http.post(request.url, data=request.form, headers=request.headers)
        except httpx.HTTPError as error:
            raise TokenRequestError(f"the token request failed: {type(error).__name__}: {error}") from error
        return self._parse(response, started)

    async def _discover(self) -> str:
        assert self.issuer is not None
        return self._discovered(await self._http.get(discovery_url(self.issuer)))


class TokenSource(_SourceBase):
    """Tokens for threaded code; safe to share between threads. Close it (or ``with``) to close the HTTP
    client it made."""

    def __init__(
        self,
        auth: ClientAuthentication,
        *,
        http: httpx.Client | None = None,
        **options: Unpack[SourceOptions],
    ) -> None:
        super().__init__(auth, **options)
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=self.timeout)
        self._condition = threading.Condition()
        self._refreshing = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def token(self) -> str:
        return self.access_token().value

    def access_token(self) -> AccessToken:
        while True:
            with self._condition:
                now = self.clock()
                usable = self._schedule.usable(now)
                if usable is not None and (self._refreshing or not self._schedule.due(now)):
                    return usable
                if usable is None and self._refreshing:
                    self._condition.wait()  # the refresh in flight notifies when it ends
                    continue
                if usable is None and not self._schedule.may_attempt(now):
                    raise self._schedule.unavailable(now)
                self._refreshing = True
                started = now
                kind = self._schedule.kind(now)
            # This caller makes the request; the others get the valid token meanwhile, or wait for it.
            try:
                result: AccessToken | ClientKitError = self._fetch(started)
            except ClientKitError as error:
                result = error
            except BaseException:
                with self._condition:
                    self._refreshing = False
                    self._condition.notify_all()
                raise
            with self._condition:  # the outcome is recorded before any waiter looks again
                self._record(kind, started, result)
                self._refreshing = False
                self._condition.notify_all()

    def invalidate(self, value: str) -> None:
        with self._condition:
            self._schedule.reject(value)

    def _fetch(self, started: float) -> AccessToken:
        try:
            endpoint = self._token_endpoint or self._discover()
            request = build_request(self.auth, endpoint, self.scope, self.resources)
            response = self._http.post(request.url, data=request.form, headers=request.headers)
        except httpx.HTTPError as error:
            raise TokenRequestError(f"the token request failed: {type(error).__name__}: {error}") from error
        return self._parse(response, started)

    def _discover(self) -> str:
        assert self.issuer is not None
        return self._discovered(self._http.get(discovery_url(self.issuer)))
