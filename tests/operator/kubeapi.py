"""A thin raw-path client over ``kubernetes_asyncio.client.ApiClient.call_api`` (as the operator uses it).

For tests that talk to the emulated API like a client would: every call is a real HTTP request."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


class KubeApi:
    def __init__(self, api: ApiClient) -> None:
        self.api = api

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
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        response = await self.api.call_api(
            path,
            method,
            query_params=list((query or {}).items()),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
        )
        async with response:
            text = await response.text()
            if response.status >= 400:
                error = ApiException(status=response.status, reason=response.reason)
                error.body = text
                raise error
            return json.loads(text) if text else None

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
        """Watch events as dicts; ``watch=True`` is sent as kubernetes_asyncio sends it (``True``)."""
        response = await self.api.call_api(
            path,
            "GET",
            query_params=[("watch", True), *query.items()],
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
        )
        async with response:
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)


def api_error(error: ApiException) -> dict[str, Any]:
    return json.loads(error.body) if error.body else {}
