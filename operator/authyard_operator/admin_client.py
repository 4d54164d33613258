"""The auth server's admin API, as the operator calls it to register clients."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from authyard_operator.retry_after import parse as parse_retry_after

USAGE_PAGE = 1000  # the most the admin API returns at once


class AdminApiError(Exception):
    """``status`` 0: unreachable. The message never contains a secret (request bodies are not echoed)."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after  # seconds the auth server asked for (429, 503), if it did

    @property
    def retryable(self) -> bool:
        return self.status == 0 or self.status == 429 or self.status >= 500


class AdminClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def _call(
        self, method: str, url: str, token: str, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        try:
            response = await self.http.request(
                method, url, json=body, headers={"Authorization": f"Bearer {token}"}
            )
        except httpx.HTTPError as error:
            raise AdminApiError(
                0, f"admin API unreachable at {url.split('/admin')[0]}: {type(error).__name__}"
            ) from None
        if response.status_code >= 400 and response.status_code != 404:
            try:
                detail = response.json()
                message = f"{detail.get('error')}: {detail.get('error_description')}"
            except ValueError:
                message = response.text[:200]
            raise AdminApiError(
                response.status_code,
                f"admin API answered {response.status_code} ({message})",
                parse_retry_after(response.headers.get("Retry-After")),
            )
        return response

    async def upsert(
        self, base_url: str, token: str, client_id: str, registration: dict[str, Any]
    ) -> dict[str, Any]:
        response = await self._call("PUT", f"{base_url}/admin/clients/{client_id}", token, registration)
        registered: dict[str, Any] = response.json()  # the admin API's ClientView
        return registered

    async def usage(
        self, base_url: str, token: str, page_size: int = USAGE_PAGE
    ) -> dict[str, dict[str, Any]]:
        """Every client's usage the AuthServer recorded (``GET /admin/usage``, page by page), by client_id."""
        found: dict[str, dict[str, Any]] = {}
        after: str | None = None
        while True:
            query = f"?limit={page_size}" + (f"&after={quote(after, safe='')}" if after else "")
            response = await self._call("GET", f"{base_url}/admin/usage{query}", token)
            if response.status_code == 404:  # a server from before usage was counted
                return found
            page = response.json()
            found.update((entry["client_id"], entry) for entry in page["clients"])
            after = page.get("next")
            if not after:
                return found

    async def identity_providers(self, base_url: str, token: str) -> dict[str, Any] | None:
        """``GET /admin/identity-providers``: each upstream and whether it can be used now; None from a
        server that does not have the route yet."""
        response = await self._call("GET", f"{base_url}/admin/identity-providers", token)
        if response.status_code == 404:
            return None
        body: dict[str, Any] = response.json()
        return body

    async def delete(self, base_url: str, token: str, client_id: str) -> bool:
        """True when deleted, False when there was nothing to delete."""
        response = await self._call("DELETE", f"{base_url}/admin/clients/{client_id}", token)
        return response.status_code != 404
