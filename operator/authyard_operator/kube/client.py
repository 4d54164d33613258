"""A small async Kubernetes client on httpx: raw paths, plain dicts.

httpx rather than lightkube or kubernetes_asyncio: the operator already depends on it, needs no models
(objects stay plain dicts), and then every failure mode is one library's exceptions, mapped here once.

Only what the operator needs: get, server-side apply, status patch, merge patch, delete, create, update.
Each call names its verb, and is refused unless the registry allows that verb on that resource. Every
failure is a ``KubeError``: an HTTP error with the API's status and reason, or -- status 0, retryable --
a transport failure (refused, reset, dropped mid-response, timed out, TLS), a body that is not a JSON
object, or credentials that could not be read. Bodies are never logged or put in an error: Secrets pass
through here.
"""

from __future__ import annotations

import logging
from importlib import metadata
from typing import Any

import httpx
import orjson

from authyard_operator.constants import FIELD_MANAGER
from authyard_operator.kube import config as cluster_config
from authyard_operator.kube.config import ClusterConfig, ConfigError
from authyard_operator.kube.credentials import auth_for
from authyard_operator.kube.registry import NON_RESOURCE_URLS, ResourceType, resource_for
from authyard_operator.retry_after import parse as parse_retry_after

# Bounded, so that a request the API never answers fails (and is retried) instead of holding a reconcile.
TIMEOUT = httpx.Timeout(30.0, connect=10.0)

# httpx logs every request at INFO and httpcore traces each at DEBUG (headers included): the operator's
# log holds its own decisions, not its traffic, at every level.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)


class KubeError(Exception):
    """An API call failed; ``status`` is the HTTP status (0 when no valid answer arrived)."""

    def __init__(self, status: int, reason: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after  # seconds the API server asked for (429, 503), if it did

    @property
    def retryable(self) -> bool:
        return self.status in (0, 409, 429) or self.status >= 500


def _transport_error(method: str, path: str, error: Exception) -> KubeError:
    """What went wrong on the wire, in the words of the exception (never a body)."""
    if isinstance(error, httpx.ConnectTimeout | httpx.ConnectError | httpx.UnsupportedProtocol):
        reason = "Unreachable"
    elif isinstance(error, httpx.TimeoutException):
        reason = "Timeout"
    else:
        reason = "ConnectionLost"  # reset, or closed before the whole answer arrived
    detail = str(error) or type(error).__name__
    return KubeError(0, reason, f"{method} {path}: {detail}")


def _http_error(response: httpx.Response) -> KubeError:
    reason, message = response.reason_phrase, ""
    try:
        status = orjson.loads(response.content)
        if isinstance(status, dict):  # a Kubernetes Status object
            reason, message = str(status.get("reason") or reason), str(status.get("message") or "")
    except orjson.JSONDecodeError:
        pass
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return KubeError(response.status_code, reason, message, retry_after)


def _user_agent() -> str:
    try:
        return f"{FIELD_MANAGER}/{metadata.version('authyard')}"
    except metadata.PackageNotFoundError:
        return FIELD_MANAGER


class Kube:
    def __init__(self, config: ClusterConfig, *, timeout: httpx.Timeout | float = TIMEOUT) -> None:
        self.server = config.server
        self._http = httpx.AsyncClient(
            base_url=config.server,
            auth=auth_for(config),
            verify=config.ssl_context(),
            proxy=config.proxy,
            timeout=timeout,
            trust_env=False,  # the cluster's address comes from the configuration alone
            headers={"User-Agent": _user_agent(), "Accept": "application/json"},
        )

    @classmethod
    async def connect(cls) -> Kube:
        """In a pod: the service account; elsewhere: KUBECONFIG (as kopf itself does)."""
        return cls(cluster_config.load())

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        resource: ResourceType | None,
        verb: str,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        if resource is None:
            if path not in NON_RESOURCE_URLS or verb != "get":
                raise PermissionError(f"the registry does not allow '{verb}' on {path}")
        elif verb not in resource.verbs:
            raise PermissionError(f"the registry does not allow '{verb}' on {resource.plural}")
        if self._http.is_closed:  # a handler kopf left running past the operator's shutdown
            raise KubeError(0, "ClientClosed", f"{method} {path}: the operator is stopping")
        content = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": content_type} if content is not None else None
        try:
            response = await self._http.request(method, path, params=query, content=content, headers=headers)
        except (httpx.RequestError, OSError) as error:  # OSError: what a TLS or socket layer lets through
            raise _transport_error(method, path, error) from None
        except ConfigError as error:  # the token file or exec plugin failed: may pass on a later try
            raise KubeError(0, "CredentialsUnavailable", str(error)) from None
        if response.status_code >= 400:
            raise _http_error(response)
        try:
            result = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            result = None
        if not isinstance(result, dict):
            # A truncated answer whose end the transport could not tell (no length, no chunking).
            raise KubeError(0, "InvalidResponse", f"{method} {path}: the answer is not a JSON object")
        return result

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

    async def get_non_resource(self, path: str) -> dict[str, Any]:
        """A JSON document the API server serves outside its resources (one of ``NON_RESOURCE_URLS``)."""
        return await self._call(None, "get", "GET", path)

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
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
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
