"""A small async Kubernetes client on kubernetes_asyncio's ApiClient: raw paths, plain dicts.

Only what the operator needs: get, server-side apply, status patch, delete, create, update, list.
Each call names its verb, and is refused unless the registry allows that verb on that resource.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException

from authyard_operator.constants import FIELD_MANAGER
from authyard_operator.kube.registry import ResourceType, resource_for
from authyard_operator.retry_after import parse as parse_retry_after

_OBJECT = {code: "object" for code in (200, 201, 202)}

# kubernetes_asyncio logs every response body at DEBUG, the Secrets the operator reads and writes included
# (admin tokens, client secrets, private signing keys). Whatever the operator's log level, that logger never
# goes below INFO: a debug log must not hand out credentials.
logging.getLogger("kubernetes_asyncio.client.rest").setLevel(logging.INFO)


class KubeError(Exception):
    """An API call failed; ``status`` is the HTTP status (0 when the API could not be reached)."""

    def __init__(self, status: int, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after  # seconds the API server asked for (429, 503), if it did

    @property
    def retryable(self) -> bool:
        return self.status in (0, 409, 429) or self.status >= 500


def _error(exception: ApiException) -> KubeError:
    reason, message = str(exception.reason or ""), ""
    try:
        body = json.loads(exception.body or "{}")
        reason, message = body.get("reason", reason), body.get("message", "")
    except (TypeError, ValueError):
        pass
    headers: Any = exception.headers or {}  # aiohttp's headers, untyped in the generated client
    return KubeError(
        int(exception.status or 0), reason, message, parse_retry_after(headers.get("Retry-After"))
    )


class Kube:
    def __init__(self, api: k8s.ApiClient) -> None:
        self.api = api

    @classmethod
    async def connect(cls) -> Kube:
        """In a pod: the service account; elsewhere: KUBECONFIG (as kopf itself does)."""
        configuration = k8s.Configuration()
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except k8s_config.ConfigException:
            await k8s_config.load_kube_config(client_configuration=configuration)
        return cls(k8s.ApiClient(configuration))

    async def close(self) -> None:
        await self.api.close()

    async def _call(
        self,
        resource: ResourceType,
        verb: str,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        if verb not in resource.verbs:
            raise PermissionError(f"the registry does not allow '{verb}' on {resource.plural}")
        try:
            result = await self.api.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                response_types_map=_OBJECT,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
            )
        except ApiException as exception:
            raise _error(exception) from None
        except OSError as exception:  # connection refused, DNS, TLS: the API is unreachable
            raise KubeError(0, "Unreachable", str(exception)) from None
        return result if isinstance(result, dict) else {}

    async def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        resource = resource_for(api_version, kind)
        try:
            return await self._call(resource, "get", "GET", resource.path(namespace, name))
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply under the operator's field manager; ``force`` takes fields back after drift."""
        resource = resource_for(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        return await self._call(
            resource,
            "patch",
            "PATCH",
            resource.path(meta.get("namespace"), meta["name"]),
            body=manifest,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    async def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        resource = resource_for(api_version, kind)
        return await self._call(
            resource,
            "patch",
            "PATCH",
            resource.path(namespace, name, "status"),
            body={"status": status},
            content_type="application/merge-patch+json",
        )

    async def patch(
        self, api_version: str, kind: str, namespace: str | None, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        resource = resource_for(api_version, kind)
        return await self._call(
            resource, "patch", "PATCH", resource.path(namespace, name), body=patch,
            content_type="application/merge-patch+json",
        )  # fmt: skip

    async def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        """True when something was deleted; an object already gone is not an error."""
        resource = resource_for(api_version, kind)
        try:
            await self._call(
                resource, "delete", "DELETE", resource.path(namespace, name),
                body={"propagationPolicy": "Background"},
            )  # fmt: skip
        except KubeError as error:
            if error.status == 404:
                return False
            raise
        return True

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        resource = resource_for(manifest["apiVersion"], manifest["kind"])
        return await self._call(
            resource, "create", "POST", resource.path(manifest["metadata"].get("namespace")), body=manifest
        )

    async def update(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """PUT with the object's resourceVersion: optimistic concurrency (409 when someone else won)."""
        resource = resource_for(manifest["apiVersion"], manifest["kind"])
        meta = manifest["metadata"]
        return await self._call(resource, "update", "PUT", resource.path(meta.get("namespace"), meta["name"]),
                                body=manifest)  # fmt: skip
