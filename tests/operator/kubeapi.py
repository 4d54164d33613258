"""A thin raw-path client over httpx, to act as a user (kubectl, a CI pipeline) against the emulated API.

For tests that talk to the emulated API like a client would: every call is a real HTTP request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


class ApiException(Exception):
    """The API answered with an error: ``status`` and the raw ``body`` (a Kubernetes Status, usually)."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.body = body


class KubeApi:
    def __init__(self, server: str, token: str = "emulator-token") -> None:
        self.http = httpx.AsyncClient(
            base_url=server, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, Any] | None = None,
        content_type: str | None = None,
    ) -> Any:
        """The decoded JSON response; raises ``ApiException`` (``.status``, ``.body``) on errors."""
        headers = {}
        content = None
        if body is not None:
            content = json.dumps(body).encode()
            headers["Content-Type"] = content_type or "application/json"
        elif content_type:
            headers["Content-Type"] = content_type
        response = await self.http.request(
            method, path, params=dict(query or {}), content=content, headers=headers
        )
        if response.status_code >= 400:
            raise ApiException(response.status_code, response.reason_phrase, response.text)
        return response.json() if response.content else None

    async def get(self, path: str, **query: Any) -> Any:
        return await self.call("GET", path, query=query)

    async def post(self, path: str, body: Any) -> Any:
        return await self.call("POST", path, body)

    async def put(self, path: str, body: Any) -> Any:
        return await self.call("PUT", path, body)

    async def merge(self, path: str, patch: Any) -> Any:
        return await self.call("PATCH", path, patch, content_type=MERGE)

    async def json_patch(self, path: str, ops: list[Any]) -> Any:
        return await self.call("PATCH", path, ops, content_type=JSON_PATCH)

    async def apply(
        self, path: str, body: Any, *, manager: str = "authyard-operator", force: bool = True
    ) -> Any:
        query = {"fieldManager": manager, "force": "true" if force else "false"}
        return await self.call("PATCH", path, body, query=query, content_type=APPLY)

    async def delete(self, path: str, body: Any = None, **query: Any) -> Any:
        return await self.call("DELETE", path, body, query=query)

    async def status_of(self, coro: Any) -> int:
        """The HTTP status of a call expected to fail (or 200 if it succeeds)."""
        try:
            await coro
        except ApiException as error:
            return int(error.status)
        return 200

    async def watch(self, path: str, **query: Any) -> AsyncIterator[dict[str, Any]]:
        """Watch events as dicts; ``watch=True`` is sent as some clients send it (``True``, not ``true``)."""
        params = {"watch": "True", **{key: str(value) for key, value in query.items()}}
        async with self.http.stream("GET", path, params=params, timeout=None) as response:
            async for line in response.aiter_lines():
                if line.strip():
                    yield json.loads(line)


def api_error(error: ApiException) -> dict[str, Any]:
    return json.loads(error.body) if error.body else {}
