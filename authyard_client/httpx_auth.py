"""An ``httpx.Auth`` that sends a token source's access token (RFC 6750 §2.1) and, when the resource server
answers 401, tries once more with a fresh token (the first may have been revoked, or signed with a key the
server has not seen yet)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import httpx

from authyard_client.token_source import AsyncTokenSource, TokenSource


class BearerAuth(httpx.Auth):
    """``httpx.Client(auth=BearerAuth(TokenSource(...)))`` or ``httpx.AsyncClient(auth=BearerAuth(
    AsyncTokenSource(...)))``."""

    requires_request_body = True  # the body is sent again on the retry

    def __init__(self, source: TokenSource | AsyncTokenSource) -> None:
        self.source = source

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        source = self.source
        if not isinstance(source, TokenSource):
            raise TypeError("an httpx.Client needs a TokenSource (AsyncTokenSource is for httpx.AsyncClient)")
        token = source.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            source.invalidate(token)
            request.headers["Authorization"] = f"Bearer {source.token()}"
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        source = self.source
        if not isinstance(source, AsyncTokenSource):
            raise TypeError("an httpx.AsyncClient needs an AsyncTokenSource, not a TokenSource")
        token = await source.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            source.invalidate(token)
            request.headers["Authorization"] = f"Bearer {await source.token()}"
            yield request
