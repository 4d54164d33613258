"""A Kubernetes API emulator for the operator's integration tests, built on kmock's KubernetesEmulator.

kmock 0.8 serves discovery, keeps objects in memory (``emulator.objects[resource, ns, name]`` with their
history), merges dict patches, and models deletion with finalizers. It does not model what an operator's
correctness depends on (see ../shared/TESTING-NOTES.md), so this subclass re-implements the object
endpoints of *declared* resources with the behaviour of a real API server:

* ``metadata.uid``, ``creationTimestamp``, a cluster-wide monotonic ``resourceVersion`` bumped on every
  write, ``metadata.generation`` (1 on create, +1 when anything but ``metadata``/``status`` changes).
  A write that changes nothing is a no-op: no new resourceVersion, no watch event.
* The status subresource: ``/status`` writes change only ``.status``; writes to the object never change
  ``.status`` of resources declared with ``subresources: {'status'}``; ``.status`` is dropped on create.
* Patches: merge-patch (RFC 7386, ``null`` deletes), JSON patch (RFC 6902, a failed ``test`` is a 422 as
  kopf expects), strategic-merge-patch (treated as a merge patch for built-ins: lists are replaced, not
  merged by key; 415 for custom resources, as a real server answers), server-side apply (below), PUT.
* Optimistic concurrency: a ``metadata.resourceVersion`` in a PUT/patch/apply body must match (409).
* Server-side apply (``application/apply-patch+yaml``): creates when absent; otherwise merges the applied
  configuration into the object (mappings merged recursively, lists replaced whole) and tracks field
  ownership in ``metadata.managedFields`` (manager, operation, fieldsV1). Fields this manager applied
  before and no longer applies are removed unless another manager owns them; without ``force=true``
  a change to a field owned by another manager is a 409 conflict. Simplification: every list is atomic
  (real SSA merges ``containers``, ``ports``... by key), fieldsV1 has no ``k:``/``v:`` entries.
* Deletion: finalizers (``deletionTimestamp`` first, removal once they are empty; no new finalizers
  during deletion), propagation policies, preconditions, and the garbage collector: when an object is
  removed, its dependents (``ownerReferences`` to its uid) are deleted, or only lose that reference
  when another owner is alive. Done synchronously inside the request that removed the owner (a real
  cluster does it shortly after, asynchronously). An object whose owners do not exist -- or are in
  another namespace, which Kubernetes forbids -- is collected as soon as it is written.
* Namespace deletion deletes the namespace's objects; the namespace goes once they are gone; nothing
  can be created in a terminating namespace (403).
* LIST/WATCH: label and field selectors, ``limit``/``continue``, a list ``resourceVersion`` that a
  watch can resume from (no duplicate ADDED events), ``sendInitialEvents`` bookmarks,
  ``timeoutSeconds``, 410 Gone after ``compact()``, ``?watch=True``/``1`` normalised to ``true``.
* Custom resources: CRDs (declared with ``declare_crd`` or created through the API) are served with
  their schema: unknown fields pruned, defaults applied, OpenAPI validation (422) with ratcheting
  (an update may keep an invalid value it does not change, as since Kubernetes 1.30). CEL rules
  (``x-kubernetes-validations``) are NOT evaluated; ``add_validator`` plugs a Python stand-in.
* Service-account issuer discovery (KEP-1393), as the API server serves it: ``/.well-known/openid-
  configuration`` names ``service_account_issuer`` and ``/openid/v1/jwks`` serves
  ``service_account_jwks``; with ``service_account_issuer = None`` both answer 404 (a cluster whose
  discovery cannot be read). Faults apply to them as to any path.
* Built-in admission: name and label syntax (422), Secret ``stringData`` folded into base64 ``data``
  and ``data`` checked as base64, ConfigMap ``data`` values must be strings, Namespace phase.

Faults: ``fail_next(method, path_regex, status, times=...)`` answers matching requests with a
Kubernetes ``Status`` error before they touch any state (as a failing API server would), or with
``lost_response=True`` after the write was committed (as a gateway answers 5xx for an upstream it lost).
``drop_next(method, path_regex, at=...)`` closes the socket mid-response after the request took effect:
before any answer, after the headers, or after part of the body (a restart, an idle timeout, a reset).

``history(resource)`` returns every version ever written (what a secrets scan must know about). kmock's
recorded request log keeps only the latest ``request_log_size`` requests (kmock scans it on every request).

All mutating helpers (``create``, ``apply``, ``patch``, ``set_status``, ``delete``,
``mark_deployment_ready``...) are synchronous and must be called from the event loop serving the
emulator (the test's loop); they go through the same code as HTTP requests and wake the watchers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import copy
import datetime
import json
import random
import re
import string
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import jsonpointer
import jsonschema
import kmock
import yaml
from kmock._internal import enums, parsing

Obj = dict[str, Any]
FieldPath = tuple[str, ...]
Key = tuple[kmock.resource, str | None, str]

NAMESPACES = kmock.resource("v1/namespaces")
EVENTS = kmock.resource("v1/events")
SECRETS = kmock.resource("v1/secrets")
CONFIGMAPS = kmock.resource("v1/configmaps")
DEPLOYMENTS = kmock.resource("apps/v1/deployments")
CRDS = kmock.resource("apiextensions.k8s.io/v1/customresourcedefinitions")

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

# (resource, kind, namespaced, subresources, short names): what the operator and kopf touch.
BUILTINS: tuple[tuple[str, str, bool, tuple[str, ...], tuple[str, ...]], ...] = (
    ("v1/namespaces", "Namespace", False, ("status",), ("ns",)),
    ("v1/serviceaccounts", "ServiceAccount", True, (), ("sa",)),
    ("v1/configmaps", "ConfigMap", True, (), ("cm",)),
    ("v1/secrets", "Secret", True, (), ()),
    ("v1/services", "Service", True, ("status",), ("svc",)),
    ("v1/persistentvolumeclaims", "PersistentVolumeClaim", True, ("status",), ("pvc",)),
    ("v1/events", "Event", True, (), ("ev",)),
    ("v1/pods", "Pod", True, ("status",), ("po",)),
    ("apps/v1/deployments", "Deployment", True, ("status",), ("deploy",)),
    ("autoscaling/v2/horizontalpodautoscalers", "HorizontalPodAutoscaler", True, ("status",), ("hpa",)),
    ("policy/v1/poddisruptionbudgets", "PodDisruptionBudget", True, ("status",), ("pdb",)),
    ("coordination.k8s.io/v1/leases", "Lease", True, (), ()),
    ("rbac.authorization.k8s.io/v1/clusterrolebindings", "ClusterRoleBinding", False, (), ()),
    (
        "apiextensions.k8s.io/v1/customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        ("status",),
        ("crd",),
    ),
)

# metadata fields that identify or are maintained by the server: never owned, never patched by clients.
SERVER_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
)

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

ISSUER_DISCOVERY_PATH = "/.well-known/openid-configuration"
ISSUER_JWKS_PATH = "/openid/v1/jwks"
DEFAULT_SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
NAMESPACE_PATH = re.compile(r"/api/v1/namespaces(?:/(?P<name>[^/]+)(?:/(?P<sub>status|finalize))?)?/?")

REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_resource(value: str | kmock.resource) -> kmock.resource:
    return value if isinstance(value, kmock.resource) else kmock.resource(value)


class ApiError(Exception):
    """An error the API server answers with a ``Status`` object."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = dict(details or {})
        self.headers = dict(headers or {})

    def status(self) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }

    def response(self) -> aiohttp.web.Response:
        return aiohttp.web.json_response(self.status(), status=self.code, headers=self.headers)


@dataclass
class RequestPattern:
    """Which requests a test's fault or hold applies to: a method (None: any) and a path regex."""

    method: str | None
    path: re.Pattern[str]

    @staticmethod
    def of(method: str | None, path: str | re.Pattern[str]) -> dict[str, Any]:
        return {
            "method": None if method in (None, "*") else str(method).upper(),
            "path": re.compile(path) if isinstance(path, str) else path,
        }

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method.upper()) and bool(self.path.search(path))


@dataclass
class Fault(RequestPattern):
    """An injected failure: the next ``times`` requests matching method and path get ``status``."""

    status: int
    times: int | None
    reason: str | None = None
    message: str | None = None
    retry_after: int | None = None
    lost_response: bool = False  # the request takes effect; only its answer is the error
    hits: int = 0

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    def error(self) -> ApiError:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        return ApiError(
            self.status,
            self.message or f"injected fault ({self.status})",
            reason=self.reason,
            headers=headers,
        )


@dataclass
class Hold(RequestPattern):
    """Requests matching method and path wait, before they are served, until ``release()``: a handler
    caught mid-flight, deterministically. ``reached`` is set when the first of them arrives."""

    times: int | None = 1  # how many requests it holds (None: every one until released)
    hits: int = 0
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def takes(self, method: str, path: str) -> bool:
        return (
            not self.released.is_set()
            and (self.times is None or self.hits < self.times)
            and self.matches(method, path)
        )

    def release(self) -> None:
        self.released.set()


DROP_POINTS = ("request", "headers", "body")


@dataclass
class Drop(RequestPattern):
    """The connection of a matching request is closed mid-response, after the request took effect (a server
    restart, a load balancer's idle timeout, a reset): ``at`` "request" before any answer, "headers" after
    the status line and headers (with the body's Content-Length), "body" after half the body."""

    at: str = "body"
    times: int | None = 1
    hits: int = 0

    def takes(self, method: str, path: str) -> bool:
        return (self.times is None or self.hits < self.times) and self.matches(method, path)

    async def cut(
        self, raw_request: aiohttp.web.BaseRequest, response: aiohttp.web.Response
    ) -> aiohttp.web.StreamResponse:
        body = response.body if isinstance(response.body, bytes) else (response.text or "").encode()
        cut = aiohttp.web.StreamResponse(status=response.status, reason=response.reason)
        cut.content_type = response.content_type
        cut.content_length = len(body)
        transport = raw_request.transport
        assert transport is not None
        if self.at != "request":
            await cut.prepare(raw_request)  # a StreamResponse sends its status line and headers here
            if self.at == "body":
                await cut.write(body[: len(body) // 2])
        transport.close()  # what was written is flushed, then the socket closes
        return cut  # aiohttp's write_eof meets a closed transport: a premature disconnection, logged at debug


@dataclass
class WatchEvent:
    rv: int
    resource: kmock.resource
    namespace: str | None
    name: str
    type: str
    object: Obj
    previous: Obj | None
    at: float = field(default_factory=time.monotonic)  # when it was written (time.monotonic())


@dataclass
class Selector:
    """Label and field selectors of LIST/WATCH requests."""

    labels: list[Callable[[Mapping[str, str]], bool]] = field(default_factory=list)
    fields: list[Callable[[Obj], bool]] = field(default_factory=list)

    @classmethod
    def parse(cls, label_selector: str | None, field_selector: str | None) -> Selector:
        selector = cls()
        for term in split_selector(label_selector or ""):
            selector.labels.append(parse_label_term(term))
        for term in split_selector(field_selector or ""):
            selector.fields.append(parse_field_term(term))
        return selector

    def __call__(self, obj: Obj) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(check(labels) for check in self.labels) and all(check(obj) for check in self.fields)


def split_selector(text: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += char
    terms.append(current.strip())
    return [term for term in terms if term]


def parse_label_term(term: str) -> Callable[[Mapping[str, str]], bool]:
    if match := re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", term):
        key, op, values = match[1], match[2], {v.strip() for v in match[3].split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: key not in labels or labels[key] not in values
    if match := re.fullmatch(r"(\S+?)\s*(==|!=|=)\s*(\S*)", term):
        key, op, value = match[1], match[2], match[3]
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if term.startswith("!"):
        key = term[1:].strip()
        return lambda labels: key not in labels
    if re.fullmatch(r"[\w./-]+", term):
        return lambda labels: term in labels
    raise ApiError(400, f"unable to parse requirement: {term!r}")


def parse_field_term(term: str) -> Callable[[Obj], bool]:
    match = re.fullmatch(r"([\w.]+)\s*(==|!=|=)\s*(.*)", term)
    if not match:
        raise ApiError(400, f"invalid field selector: {term!r}")
    path, op, value = match[1].split("."), match[2], match[3]

    def lookup(obj: Obj) -> str:
        node: Any = obj
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        return "" if node is None else str(node)

    if op == "!=":
        return lambda obj: lookup(obj) != value
    return lambda obj: lookup(obj) == value


# --- structural helpers -------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: mappings merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def leaf_paths(node: Any, prefix: FieldPath = ()) -> dict[FieldPath, Any]:
    """Every leaf (scalar, list, empty mapping) of a document by its path; lists are atomic."""
    if isinstance(node, dict) and node:
        found: dict[FieldPath, Any] = {}
        for key, value in node.items():
            found.update(leaf_paths(value, (*prefix, str(key))))
        return found
    return {prefix: node} if prefix else {}


def fields_v1(paths: Iterable[FieldPath]) -> Obj:
    root: Obj = {}
    for path in sorted(paths):
        node = root
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return root


def paths_of_fields_v1(node: Mapping[str, Any], prefix: FieldPath = ()) -> set[FieldPath]:
    children = {key: value for key, value in node.items() if key.startswith("f:")}
    if not children:
        # a leaf, or a node whose children are keyed items of a list (k:/v:): owned as a whole
        return {prefix} if prefix else set()
    found: set[FieldPath] = set()
    for key, value in children.items():
        found |= paths_of_fields_v1(value if isinstance(value, dict) else {}, (*prefix, key[2:]))
    return found


def delete_path(doc: Obj, path: FieldPath) -> None:
    parents: list[tuple[Obj, str]] = []
    node: Any = doc
    for part in path[:-1]:
        if not isinstance(node, dict) or part not in node:
            return
        parents.append((node, part))
        node = node[part]
    if isinstance(node, dict):
        node.pop(path[-1], None)
    for parent, part in reversed(parents):  # prune the mappings the removal left empty
        if parent[part] == {}:
            del parent[part]


def apply_merge(target: Obj, config: Mapping[str, Any]) -> None:
    """Merge an applied configuration: mappings recursively, lists and scalars replaced, null removes."""
    for key, value in config.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            apply_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def schema_defaults(schema: Mapping[str, Any], value: Any) -> Any:
    """Structural-schema defaulting as the API server does it for custom resources."""
    if isinstance(value, dict):
        for name, child in (schema.get("properties") or {}).items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                value[name] = schema_defaults(child, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in value:
                value[name] = schema_defaults(extra, value[name])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [schema_defaults(schema["items"], item) for item in value]
    return value


def schema_prune(schema: Mapping[str, Any], value: Any) -> Any:
    """Drop fields the structural schema does not know, as the API server does for custom resources."""
    if isinstance(value, dict) and not schema.get("x-kubernetes-preserve-unknown-fields"):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        if properties is not None and not extra:
            for name in [name for name in value if name not in properties]:
                del value[name]
        for name in list(value):
            child = (properties or {}).get(name, extra if isinstance(extra, dict) else None)
            if isinstance(child, dict):
                value[name] = schema_prune(child, value[name])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [schema_prune(schema["items"], item) for item in value]
    return value


def jsonschema_of(schema: Any) -> Any:
    """OpenAPI v3.0 (structural) schema -> JSON schema draft 4: ``nullable`` becomes a null type."""
    if isinstance(schema, list):
        return [jsonschema_of(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted = {key: jsonschema_of(value) for key, value in schema.items()}
    if converted.get("nullable") and isinstance(converted.get("type"), str):
        converted["type"] = [converted["type"], "null"]
    if converted.get("x-kubernetes-int-or-string"):
        converted.pop("type", None)
        converted.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    return converted


def header(request: kmock.Request, name: str) -> str:
    for key, value in request.headers.items():
        if key.lower() == name.lower():
            return str(value)
    return ""


def owner_uids(obj: Obj) -> list[str]:
    return [ref.get("uid", "") for ref in obj.get("metadata", {}).get("ownerReferences") or []]


@attrs.define(kw_only=True)
class AuthyardEmulator(kmock.KubernetesEmulator):
    """kmock's KubernetesEmulator with the API-server behaviour listed in the module docstring."""

    # Reject creation in namespaces that do not exist (a real API server does; off for convenience).
    strict_namespaces: bool = False
    # Validate custom resources against their CRD's OpenAPI schema (422), as a real API server does.
    validate_custom_resources: bool = True
    # How many of the latest requests kmock keeps for inspection (None: all). kmock matches every request
    # against its reactions by scanning the whole recorded log, so an unbounded log makes each request
    # slower than the last: thousands of objects (operator scale tests) would grind to a halt.
    request_log_size: int | None = 50
    # The ``iss`` of the cluster's service-account tokens and its keys (service-account issuer discovery).
    service_account_issuer: str | None = DEFAULT_SERVICE_ACCOUNT_ISSUER
    service_account_jwks: Obj = attrs.field(factory=lambda: {"keys": []})
    # GETs of the discovery document it answered (faults included): how often an operator asked.
    issuer_discovery_reads: int = attrs.field(default=0, init=False)

    _rv: int = attrs.field(default=1000, init=False)
    _log: list[WatchEvent] = attrs.field(factory=list, init=False)
    _log_base: int = attrs.field(default=0, init=False)  # absolute index of _log[0] after compaction
    _compacted_rv: int = attrs.field(default=0, init=False)
    _wake: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)
    _closing: bool = attrs.field(default=False, init=False)
    _watches: dict[kmock.resource, int] = attrs.field(factory=dict, init=False)
    _outcomes: dict[Any, tuple[int, Obj]] = attrs.field(factory=dict, init=False)
    _faults: list[Fault] = attrs.field(factory=list, init=False)
    _holds: list[Hold] = attrs.field(factory=list, init=False)
    _drops: list[Drop] = attrs.field(factory=list, init=False)
    _schemas: dict[kmock.resource, Obj] = attrs.field(factory=dict, init=False)
    _schema_validators: dict[kmock.resource, Any] = attrs.field(factory=dict, init=False)
    _custom: set[kmock.resource] = attrs.field(factory=set, init=False)
    _validators: dict[kmock.resource, list[Callable[[Obj, Obj | None], str | None]]] = attrs.field(
        factory=dict, init=False
    )
    _uids: dict[str, Key] = attrs.field(factory=dict, init=False)
    _dependents_of: dict[str, set[Key]] = attrs.field(factory=dict, init=False)  # owner uid -> dependents

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        # kmock guesses no action for PUT and collection DELETE; serve them as the other writes are.
        self.fallback[enums.method.PUT] << self._serve_outcome
        self.fallback[enums.method.DELETE] << self._serve_outcome

    # --- declarations ---------------------------------------------------------------------------------

    def declare_builtins(self, *, namespaces: Iterable[str] = ("default", "kube-system")) -> None:
        """Declare the built-in resources the operator and kopf use, and the usual namespaces."""
        for res, kind, namespaced, subresources, shortnames in BUILTINS:
            self.resources[res] = kmock.ResourceInfo(
                kind=kind,
                singular=kind.lower(),
                namespaced=namespaced,
                verbs=set(VERBS),
                subresources=set(subresources),
                shortnames=set(shortnames),
            )
        for name in namespaces:
            self.create_namespace(name)

    def declare_crd(self, crd: Mapping[str, Any] | str | Path) -> Obj:
        """Install a CustomResourceDefinition (a dict or a YAML file): stored and served, as in a cluster."""
        if isinstance(crd, str | Path):
            crd = yaml.safe_load(Path(crd).read_text())
        if CRDS not in self.resources:
            self.resources[CRDS] = kmock.ResourceInfo(
                kind="CustomResourceDefinition", namespaced=False, verbs=set(VERBS), subresources={"status"}
            )
        body = dict(copy.deepcopy(crd))
        body.setdefault("apiVersion", "apiextensions.k8s.io/v1")
        body.setdefault("kind", "CustomResourceDefinition")
        return self.apply(CRDS, body, manager="kubectl", force=True)

    def add_validator(
        self, resource: str | kmock.resource, check: Callable[[Obj, Obj | None], str | None]
    ) -> None:
        """A stand-in for a CEL rule: ``check(new, old)`` returns an error message (-> 422) or None."""
        self._validators.setdefault(as_resource(resource), []).append(check)

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> Obj:
        existing = self.get(NAMESPACES, None, name)
        if existing is not None:
            return existing
        metadata: Obj = {"name": name, "labels": {"kubernetes.io/metadata.name": name, **(labels or {})}}
        return self.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})

    # --- faults -----------------------------------------------------------------------------------------

    def fail_next(
        self,
        method: str | None,
        path: str | re.Pattern[str],
        status: int = 500,
        *,
        times: int | None = 1,
        reason: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
        lost_response: bool = False,
    ) -> Fault:
        """Answer the next ``times`` (None: all) requests matching ``method`` (None/'*': any) and the
        ``path`` regex (``re.search`` on the URL path) with ``status`` and a Kubernetes Status body.
        The request changes nothing -- unless ``lost_response``: then it takes effect as usual and only
        its answer is lost (a timeout or a dropped connection after the write was committed).
        Returns the fault; ``fault.hits`` counts the failed requests."""
        fault = Fault(
            **RequestPattern.of(method, path),
            status=status,
            times=times,
            reason=reason,
            message=message,
            retry_after=retry_after if retry_after is not None else (1 if status == 429 else None),
            lost_response=lost_response,
        )
        self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self._faults.clear()
        self._drops.clear()

    def hold_next(self, method: str | None, path: str | re.Pattern[str], *, times: int | None = 1) -> Hold:
        """Hold the next ``times`` (None: all) requests matching ``method`` (None: any) and the ``path``
        regex until the test calls ``hold.release()`` (bounded: after 30 s each is served anyway)."""
        hold = Hold(**RequestPattern.of(method, path), times=times)
        self._holds.append(hold)
        return hold

    def drop_next(
        self, method: str | None, path: str | re.Pattern[str], *, at: str = "body", times: int | None = 1
    ) -> Drop:
        """Close the connection of the next ``times`` (None: all) requests matching ``method`` (None: any)
        and the ``path`` regex mid-response, at ``at`` (see ``Drop``); the requests take effect first.
        Watch streams are never dropped. ``drop.hits`` counts the dropped requests."""
        if at not in DROP_POINTS:
            raise ValueError(f"at must be one of {DROP_POINTS}")
        drop = Drop(**RequestPattern.of(method, path), at=at, times=times)
        self._drops.append(drop)
        return drop

    def _take_drop(self, raw_request: aiohttp.web.BaseRequest) -> Drop | None:
        if str(raw_request.query.get("watch", "")).lower() in ("true", "1"):
            return None
        for drop in self._drops:
            if drop.takes(raw_request.method, raw_request.path):
                drop.hits += 1
                return drop
        return None

    async def _wait_if_held(self, method: str, path: str) -> None:
        for hold in self._holds:
            if hold.takes(method, path):
                hold.hits += 1
                hold.reached.set()
                try:
                    await asyncio.wait_for(hold.released.wait(), timeout=30)
                except TimeoutError:
                    pass
                return

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self._faults:
            if not fault.exhausted and fault.matches(method, path):
                fault.hits += 1
                return fault
        return None

    # --- reading ----------------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, resource: str | kmock.resource, namespace: str | None, name: str) -> Obj | None:
        """A deep copy of the stored object, or None."""
        obj = self._current((as_resource(resource), namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(
        self,
        resource: str | kmock.resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        res = as_resource(resource)
        selector = Selector.parse(label_selector, field_selector)
        return [copy.deepcopy(obj) for _, obj in self._select(res, namespace, None, selector)]

    def events(
        self, namespace: str | None = None, *, name: str | None = None, reason: str | None = None
    ) -> list[Obj]:
        """Events (v1), optionally about the object ``name`` and with a ``reason``."""
        return [
            event
            for event in self.list(EVENTS, namespace)
            if (name is None or event.get("involvedObject", {}).get("name") == name)
            and (reason is None or event.get("reason") == reason)
        ]

    def history(self, resource: str | kmock.resource, namespace: str | None = None) -> list[Obj]:
        """Every version ever written of the resource's objects (optionally in one namespace), oldest
        first, deleted objects included: what a secrets scan must know about. Versions written before the
        last ``compact()`` are forgotten, as etcd forgets them."""
        res = as_resource(resource)
        return [
            copy.deepcopy(event.object)
            for event in self._log
            if event.resource == res and (namespace is None or event.namespace == namespace)
        ]

    def writes(self, start: int = 0) -> list[WatchEvent]:
        """Every write since the last ``compact()`` from the ``start``-th on, oldest first, each with the
        time it was made: what a benchmark times without asking the API. The events hold the stored
        objects themselves: read them, never change them."""
        return self._log[start:]

    def active_watches(self, resource: str | kmock.resource | None = None) -> int:
        if resource is None:
            return sum(self._watches.values())
        return self._watches.get(as_resource(resource), 0)

    # --- writing (as a client would, through the same code as HTTP) -------------------------------------

    def create(
        self,
        resource: str | kmock.resource,
        body: Mapping[str, Any],
        *,
        namespace: str | None = None,
        manager: str = "kubectl",
    ) -> Obj:
        res = as_resource(resource)
        namespace = namespace or body.get("metadata", {}).get("namespace")
        return copy.deepcopy(self._create(res, namespace, dict(body), manager=manager))

    def apply(
        self,
        resource: str | kmock.resource,
        body: Mapping[str, Any],
        *,
        manager: str = "kubectl",
        force: bool = False,
    ) -> Obj:
        """Server-side apply, like ``kubectl apply --server-side``."""
        res = as_resource(resource)
        meta = body.get("metadata", {})
        obj, _ = self._apply(
            res, meta.get("namespace"), meta["name"], dict(body), manager=manager, force=force
        )
        return copy.deepcopy(obj)

    def patch(
        self,
        resource: str | kmock.resource,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        *,
        manager: str = "kubectl-edit",
        subresource: str | None = None,
    ) -> Obj:
        """A merge patch, like ``kubectl patch --type=merge`` or ``kubectl edit``."""
        key = (as_resource(resource), namespace, name)
        obj = self._update(key, lambda cur: merge_patch(cur, patch), manager=manager, subresource=subresource)
        return copy.deepcopy(obj)

    def set_status(
        self,
        resource: str | kmock.resource,
        namespace: str | None,
        name: str,
        status: Mapping[str, Any],
        *,
        manager: str = "kube-controller-manager",
    ) -> Obj:
        """Merge ``status`` into the object's status as its controller would (through ``/status``)."""
        res = as_resource(resource)
        sub = "status" if "status" in self._info(res).subresources else None
        return self.patch(res, namespace, name, {"status": dict(status)}, manager=manager, subresource=sub)

    def mark_deployment_ready(
        self, namespace: str, name: str, *, replicas: int | None = None, ready: int | None = None
    ) -> Obj:
        """Set a Deployment's status as the deployment controller would once its pods are ready
        (nothing runs pods here). ``replicas`` defaults to spec.replicas (1 when absent, e.g. under an
        HPA); ``ready`` (default: all) below ``replicas`` gives a partially available rollout."""
        obj = self._current((DEPLOYMENTS, namespace, name))
        if obj is None:
            raise KeyError(f"deployment {namespace}/{name} does not exist")
        total = replicas if replicas is not None else obj.get("spec", {}).get("replicas", 1)
        ready = total if ready is None else ready
        available = ready >= total
        status = {
            "observedGeneration": obj["metadata"].get("generation", 1),
            "replicas": total,
            "updatedReplicas": total,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": total - ready or None,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if available else "False",
                    "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
                    "message": "Deployment has minimum availability."
                    if available
                    else "Deployment does not have minimum availability.",
                    "lastUpdateTime": now(),
                    "lastTransitionTime": now(),
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable" if available else "ReplicaSetUpdated",
                    "message": f'ReplicaSet "{name}" has successfully progressed.',
                    "lastUpdateTime": now(),
                    "lastTransitionTime": now(),
                },
            ],
        }
        return self.set_status(DEPLOYMENTS, namespace, name, status)

    def delete(
        self,
        resource: str | kmock.resource,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = None,
    ) -> Obj:
        return copy.deepcopy(self._delete((as_resource(resource), namespace, name), propagation=propagation))

    def compact(self) -> None:
        """Forget the watch history (as etcd compaction does): resuming from an older resourceVersion now
        gets 410 Gone, and every open watch ends with a 410 ERROR event."""
        self._log_base += len(self._log)
        self._log.clear()
        self._compacted_rv = self._rv
        self._notify()

    def close_watches(self) -> None:
        """End every open watch stream (used at teardown so the HTTP server can stop promptly)."""
        self._closing = True
        self._notify()

    # --- the HTTP side ----------------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if self.request_log_size is not None and len(self._requests) > 2 * self.request_log_size:
            self._trim_request_log(self.request_log_size)
        # Some clients send ?watch=True; a real API server parses the bool leniently.
        watch = raw_request.query.get("watch")
        if watch is not None and watch != "true" and watch.lower() in ("true", "1"):
            raw_request = raw_request.clone(rel_url=raw_request.rel_url.update_query(watch="true"))
        await self._wait_if_held(raw_request.method, raw_request.path)
        drop = self._take_drop(raw_request)
        response = await self._respond(raw_request)
        if drop is not None and isinstance(response, aiohttp.web.Response) and not response.prepared:
            return await drop.cut(raw_request, response)
        return response

    async def _respond(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if raw_request.path in (ISSUER_DISCOVERY_PATH, ISSUER_JWKS_PATH):
            return self._serve_issuer_discovery(raw_request)
        if not NAMESPACE_PATH.fullmatch(raw_request.path):
            return await super().__call__(raw_request)
        # kmock's URL parser reads /api/v1/namespaces[/name] as a namespace prefix (and fails on the
        # bare collection): parse these paths here, then serve as kmock's RawHandler.__call__ does.
        await raw_request.read()
        try:
            request = await self._parse_namespace_request(raw_request)
            self._requests.append(request)
            return await self._handle(request)
        except Exception as error:
            if not self._errors:
                raise
            self._errors[-1].append(error)
            return await self._render_error(error)

    def _serve_issuer_discovery(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.Response:
        """The API server's OpenID Connect discovery of its service-account issuer and the issuer's JWKS."""
        if raw_request.path == ISSUER_DISCOVERY_PATH:
            self.issuer_discovery_reads += 1
        fault = self._take_fault(raw_request.method, raw_request.path)
        if fault is not None:
            return fault.error().response()
        if raw_request.method != "GET":
            return ApiError(405, f"the server does not allow this method on {raw_request.path}").response()
        if self.service_account_issuer is None:
            return ApiError(404, "the server could not find the requested resource").response()
        if raw_request.path == ISSUER_JWKS_PATH:
            return aiohttp.web.json_response(self.service_account_jwks)
        # What kube-apiserver serves: the jwks_uri is on the API server's external address.
        base = str(self.url).rstrip("/")
        return aiohttp.web.json_response({
            "issuer": self.service_account_issuer,
            "jwks_uri": f"{base}{ISSUER_JWKS_PATH}",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })  # fmt: skip

    def _trim_request_log(self, size: int) -> None:
        """Forget all but the latest ``size`` requests -- except watches: kmock feeds an open watch stream
        only while its request is in the log. Done in batches (at twice the size): amortised O(1)."""
        older = self._requests[:-size]
        watches = [request for request in older if str(request.params.get("watch", "")).lower() == "true"]
        self._requests[:] = watches + self._requests[-size:]

    async def _parse_namespace_request(self, raw_request: aiohttp.web.BaseRequest) -> kmock.Request:
        match = NAMESPACE_PATH.fullmatch(raw_request.path)
        assert match is not None
        body = await raw_request.read()
        text = await raw_request.text()
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
        name, sub = match["name"], match["sub"]
        query = dict(raw_request.query)
        parsed = parsing.ParsedPath(group="", version="v1", plural="namespaces", name=name, subresource=sub)
        method = enums.method(raw_request.method)
        return kmock.Request(
            id=len(self._requests),
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=query,
            headers=dict(raw_request.headers),
            cookies=dict(raw_request.cookies),
            data=data,
            body=body,
            text=text,
            action=parsing.guess_k8s(parsed, method, query),
            resource=NAMESPACES,
            namespace=None,
            name=name,
            subresource=sub,
        )

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        fault = self._take_fault(request.method.value, request.url.path)
        res = request.resource
        declared = res is not None and res.plural is not None and res in self.resources
        if fault is not None and not (fault.lost_response and declared):
            return fault.error().response()
        if not declared:
            # discovery, non-Kubernetes paths, undeclared resources: kmock's own behaviour.
            return await self._react(request)
        try:
            outcome = self._execute(request)
        except ApiError as error:
            return error.response()
        if fault is not None:  # lost_response: the request took effect, the client hears of a failure
            return fault.error().response()
        if outcome is None:  # reads: served by the fallbacks below (or by the test's own reactions)
            return await self._react(request)
        # Writes have happened; the response comes from a test's reaction if one matches (as in kmock),
        # else from _serve_outcome.
        self._outcomes[request] = outcome
        try:
            return await self._react(request)
        finally:
            self._outcomes.pop(request, None)

    async def _react(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        """kmock's ``RawHandler._handle``: the first reaction (by priority) that sees the request serves
        it. kmock asks each reaction whether it sees the request by filtering every request in the log
        (O(log) per reaction, most of the emulator's CPU at thousands of objects); ``_sees`` decides the
        same for the one request at hand."""
        priorities = [tuple(-p for p in payload.priorities) for payload in self._payloads]
        width = max((len(priority) for priority in priorities), default=0)
        padded = [priority + (0,) * (width - len(priority)) for priority in priorities]
        for index in sorted(range(len(padded)), key=lambda i: padded[i]):
            payload = self._payloads[index]
            if self._sees(payload._source, request) and not payload._disabled.is_set():
                try:
                    return await payload(request)
                except kmock.ReactionMismatchError:  # either mismatch or depletion
                    payload._disabled.set()
                except NotImplementedError:  # matched, but non-actionable (nothing to respond with)
                    pass
        raise NotImplementedError("Undefined server behaviour: no reaction matching the request is defined.")

    def _sees(self, view: kmock.View, request: kmock.Request) -> bool:
        """Whether ``request`` is among the requests ``view`` yields. A chain of plain filters and
        priorities over this emulator yields exactly the logged requests its every criterion accepts;
        any other view (slices, groups, exclusions: they depend on the other requests) is asked as kmock
        asks it."""
        if type(view) is kmock.Filter:
            return bool(view.criteria(request)) and self._sees(view._source, request)
        if type(view) is kmock.Priority:
            return self._sees(view._source, request)
        if view is self:
            return any(logged is request for logged in reversed(self._requests))
        return request in view

    def _execute(self, request: kmock.Request) -> tuple[int, Obj] | None:
        res = request.resource
        assert res is not None
        info = self._info(res)
        namespace = request.namespace if info.namespaced else None
        if request.namespace is not None and not info.namespaced:
            raise ApiError(404, "the server could not find the requested resource")
        name, sub = request.name, request.subresource
        if sub is not None and (sub != "status" or "status" not in info.subresources):
            raise ApiError(404, "the server could not find the requested resource")
        method = request.method.value.upper()
        params = request.params
        manager = params.get("fieldManager") or self._user_agent_manager(request)
        dry_run = params.get("dryRun") == "All"

        if method == "GET":
            if request.action == enums.action.WATCH or name is None:
                Selector.parse(params.get("labelSelector"), params.get("fieldSelector"))  # 400 if invalid
                return None
            if self._current((res, namespace, name)) is None:
                raise self._not_found(res, name)
            return None
        if method == "POST":
            if name is not None:
                raise ApiError(405, "the server does not allow this method on the requested resource")
            return 201, self._create(res, namespace, self._body(request), manager=manager, dry_run=dry_run)
        if method == "DELETE" and name is None:
            selector = Selector.parse(params.get("labelSelector"), params.get("fieldSelector"))
            for (_, obj_ns, obj_name), _ in list(self._select(res, namespace, None, selector)):
                self._delete((res, obj_ns, obj_name), propagation=params.get("propagationPolicy"))
            return 200, {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Success"}
        if name is None:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        key = (res, namespace, name)
        if method == "DELETE":
            options = request.data if isinstance(request.data, dict) else {}
            propagation = params.get("propagationPolicy") or options.get("propagationPolicy")
            return 200, self._delete(
                key, propagation=propagation, preconditions=options.get("preconditions"), dry_run=dry_run
            )
        if method == "PUT":
            return 200, self._replace(
                key, self._body(request), manager=manager, subresource=sub, dry_run=dry_run
            )
        if method == "PATCH":
            content_type = header(request, "Content-Type").split(";")[0].strip().lower()
            return self._patch(request, key, content_type, manager=manager, dry_run=dry_run)
        raise ApiError(405, "the server does not allow this method on the requested resource")

    def _patch(
        self, request: kmock.Request, key: Key, content_type: str, *, manager: str, dry_run: bool
    ) -> tuple[int, Obj]:
        sub = request.subresource
        if content_type == "application/apply-patch+yaml":
            if "fieldManager" not in request.params:
                raise ApiError(422, "PATCH requests with apply content type require fieldManager")
            force = request.params.get("force", "false").lower() in ("true", "1")
            body = self._body(request, yaml_ok=True)
            obj, created = self._apply(
                key[0], key[1], key[2], body, manager=manager, force=force, subresource=sub, dry_run=dry_run
            )
            return (201 if created else 200), obj
        body = self._body(request, list_ok=content_type == "application/json-patch+json")
        if content_type == "application/json-patch+json":
            if not isinstance(body, list):
                raise ApiError(400, "a JSON patch must be a list of operations")

            def mutate(cur: Obj) -> Obj:
                try:
                    return jsonpatch.apply_patch(cur, body, in_place=False)
                except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as error:
                    message = f"the server rejected our request due to an error in our request: {error}"
                    raise ApiError(422, message) from error

        elif content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if content_type.startswith("application/strategic") and key[0] in self._custom:
                raise ApiError(
                    415,
                    "the body of the request was in an unknown format - accepted media types include: "
                    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                )

            def mutate(cur: Obj) -> Obj:
                return merge_patch(cur, body)

        else:
            raise ApiError(415, f"the body of the request was in an unknown format: {content_type!r}")
        return 200, self._update(key, mutate, manager=manager, subresource=sub, dry_run=dry_run)

    @staticmethod
    def _user_agent_manager(request: kmock.Request) -> str:
        # A real server derives the default field manager from the user agent's product name.
        agent = header(request, "User-Agent") or "unknown"
        return agent.split("/")[0].split(" ")[0][:128] or "unknown"

    @staticmethod
    def _body(request: kmock.Request, *, yaml_ok: bool = False, list_ok: bool = False) -> Any:
        data = request.data
        if data is None and request.text.strip():
            if not yaml_ok:
                raise ApiError(400, "the request body is not valid JSON")
            try:
                data = yaml.safe_load(request.text)
            except yaml.YAMLError as error:
                raise ApiError(400, f"the request body is not valid YAML: {error}") from error
        if isinstance(data, dict) or (list_ok and isinstance(data, list)):
            return data
        raise ApiError(400, "the request body must be a JSON object")

    # fallbacks: kmock registers these bound methods for LIST/WATCH/FETCH/CREATE/UPDATE/DELETE.

    async def _serve_outcome(self, request: kmock.Request) -> kmock.Response:
        outcome = self._outcomes.get(request)
        if outcome is None:
            raise kmock.KubernetesResourceNotFoundError()
        status, body = outcome
        return kmock.Response(status=status, payload=body)

    _serve_create = _serve_outcome
    _serve_update = _serve_outcome
    _serve_delete = _serve_outcome

    async def _serve_fetch(self, request: kmock.Request) -> Obj:
        res = request.resource
        if res is None or res not in self.resources:
            raise kmock.KubernetesResourceNotFoundError()
        obj = self._current((res, request.namespace, request.name or ""))
        if obj is None:
            raise kmock.KubernetesObjectNotFoundError()
        return obj

    async def _serve_list(self, request: kmock.Request) -> Obj:
        res = request.resource
        if res is None or res not in self.resources:
            raise kmock.KubernetesResourceNotFoundError()
        params = request.params
        selector = Selector.parse(params.get("labelSelector"), params.get("fieldSelector"))
        items = self._select(res, request.namespace, None, selector)
        metadata: Obj = {"resourceVersion": str(self._rv)}
        if params.get("continue"):
            after = tuple(json.loads(base64.b64decode(params["continue"])))
            items = [item for item in items if self._sort_key(item[0]) > after]
        limit = int(params.get("limit") or 0)
        if limit and len(items) > limit:
            items = items[:limit]
            token = json.dumps(list(self._sort_key(items[-1][0]))).encode()
            metadata["continue"] = base64.b64encode(token).decode()
        return {
            "apiVersion": self._api_version(res),
            "kind": f"{self._info(res).kind or res.plural}List",
            "metadata": metadata,
            "items": [obj for _, obj in items],
        }

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        res = request.resource
        if res is None or res not in self.resources:
            raise kmock.KubernetesResourceNotFoundError()
        yield b""  # send the headers now: a watch may stay silent for long
        params = request.params
        selector = Selector.parse(params.get("labelSelector"), params.get("fieldSelector"))
        namespace, name = request.namespace, request.name
        since = params.get("resourceVersion") or ""
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None

        initial: list[Obj] = []
        if since in ("", "0"):
            initial = [
                {"type": "ADDED", "object": obj} for _, obj in self._select(res, namespace, name, selector)
            ]
            position = self._log_base + len(self._log)
            if params.get("sendInitialEvents") == "true":
                initial.append(self._initial_events_end(res))
        else:
            try:
                since_rv = int(since)
            except ValueError:
                yield self._gone(f"invalid resource version: {since!r}")
                return
            if since_rv < self._compacted_rv:
                yield self._gone(f"too old resource version: {since_rv} ({self._compacted_rv})")
                return
            position = self._log_base + bisect.bisect_right(self._log, since_rv, key=lambda event: event.rv)

        self._watches[res] = self._watches.get(res, 0) + 1
        try:
            for event in initial:
                yield event
            while not self._closing:
                if position < self._log_base:
                    yield self._gone("the watch history was compacted")
                    return
                while position - self._log_base < len(self._log):
                    event = self._log[position - self._log_base]
                    position += 1
                    rendered = self._render_event(event, res, namespace, name, selector)
                    if rendered is not None:
                        yield rendered
                wake = self._wake
                try:
                    remaining = None if deadline is None else max(0.0, deadline - loop.time())
                    await asyncio.wait_for(wake.wait(), remaining)
                except TimeoutError:
                    return
        finally:
            self._watches[res] -= 1

    def _render_event(
        self,
        event: WatchEvent,
        res: kmock.resource,
        namespace: str | None,
        name: str | None,
        selector: Selector,
    ) -> Obj | None:
        if event.resource != res or (namespace is not None and event.namespace != namespace):
            return None
        if name is not None and event.name != name:
            return None
        if event.type != "MODIFIED":
            return {"type": event.type, "object": event.object} if selector(event.object) else None
        # A watch with a selector sees objects entering and leaving the selection as ADDED/DELETED.
        now_in, was_in = selector(event.object), event.previous is not None and selector(event.previous)
        if now_in:
            return {"type": "MODIFIED" if was_in else "ADDED", "object": event.object}
        return {"type": "DELETED", "object": event.object} if was_in else None

    def _initial_events_end(self, res: kmock.resource) -> Obj:
        return {
            "type": "BOOKMARK",
            "object": {
                "apiVersion": self._api_version(res),
                "kind": self._info(res).kind,
                "metadata": {
                    "resourceVersion": str(self._rv),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            },
        }

    @staticmethod
    def _gone(message: str) -> Obj:
        return {"type": "ERROR", "object": ApiError(410, message, reason="Expired").status()}

    # --- the state machine --------------------------------------------------------------------------

    def _info(self, res: kmock.resource) -> kmock.ResourceInfo:
        if res not in self.resources:
            raise ApiError(404, f"the server could not find the requested resource ({res.plural})")
        return self.resources[res]

    @staticmethod
    def _api_version(res: kmock.resource) -> str:
        return f"{res.group}/{res.version}" if res.group else str(res.version)

    def _not_found(self, res: kmock.resource, name: str) -> ApiError:
        qualified = f"{res.plural}.{res.group}" if res.group else str(res.plural)
        return ApiError(
            404,
            f'{qualified} "{name}" not found',
            details={"name": name, "group": res.group, "kind": res.plural},
        )

    def _current(self, key: Key) -> Obj | None:
        if key in self.objects:
            obj = self.objects[key]
            if not obj.deleted:
                return obj.last.raw
        return None

    @staticmethod
    def _sort_key(key: Key) -> tuple[str, str]:
        return key[1] or "", key[2]

    def _select(
        self, res: kmock.resource, namespace: str | None, name: str | None, selector: Selector | None = None
    ) -> list[tuple[Key, Obj]]:
        found = []
        wanted = (res.group, res.version, res.plural)
        for key, stored in self.objects.items():
            if (key[0].group, key[0].version, key[0].plural) != wanted:
                continue
            if (namespace is not None and key[1] != namespace) or (name is not None and key[2] != name):
                continue
            if stored.deleted:
                continue
            obj = stored.last.raw
            if selector is None or selector(obj):
                found.append((key, obj))
        return sorted(found, key=lambda item: self._sort_key(item[0]))

    def _notify(self) -> None:
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    def _record(self, event_type: str, key: Key, obj: Obj, previous: Obj | None) -> None:
        self._log.append(WatchEvent(self._rv, key[0], key[1], key[2], event_type, obj, previous))
        self._notify()

    def _store(self, key: Key, obj: Obj, previous: Obj | None, event_type: str) -> Obj:
        # Every change gets the next cluster-wide resourceVersion, as etcd's revision does.
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        if key in self.objects:
            self.objects[key].history.append(obj)
        else:
            self.objects[key] = obj
        self._uids[obj["metadata"]["uid"]] = key
        self._index_owners(key, previous, obj)
        self._record(event_type, key, obj, previous)
        return obj

    def _index_owners(self, key: Key, previous: Obj | None, obj: Obj | None) -> None:
        for uid in owner_uids(previous or {}):
            self._dependents_of.get(uid, set()).discard(key)
        for uid in owner_uids(obj or {}):
            self._dependents_of.setdefault(uid, set()).add(key)

    def _remove(self, key: Key, previous: Obj) -> Obj:
        self._rv += 1
        final = copy.deepcopy(previous)
        final["metadata"]["resourceVersion"] = str(self._rv)
        self.objects[key].delete()
        self._uids.pop(final["metadata"].get("uid", ""), None)
        self._index_owners(key, previous, None)
        self._record("DELETED", key, final, previous)
        if key[0] == CRDS:
            self._undeclare_crd(final)
        self._collect_dependents(key, final)
        if key[1] is not None:
            self._finish_namespace(key[1])
        return final

    # create

    def _create(
        self,
        res: kmock.resource,
        namespace: str | None,
        body: Obj,
        *,
        manager: str,
        operation: str = "Update",
        dry_run: bool = False,
    ) -> Obj:
        info = self._info(res)
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "metadata must be an object")
        if info.namespaced:
            body_ns = meta.get("namespace")
            namespace = namespace or body_ns
            if not namespace:
                raise ApiError(400, "the namespace of the object is required")
            if body_ns not in (None, namespace):
                raise ApiError(
                    400,
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            meta["namespace"] = namespace
            self._check_namespace(namespace)
        else:
            namespace = None
            meta.pop("namespace", None)
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise ApiError(422, "metadata.name: Required value: name or generateName is required")
            alphabet = string.ascii_lowercase + string.digits
            while True:
                candidate = prefix + "".join(random.choices(alphabet, k=5))
                if self._current((res, namespace, candidate)) is None:
                    break
            meta["name"] = candidate
        name = meta["name"]
        self._check_name(res, name)
        key = (res, namespace, name)
        if self._current(key) is not None:
            qualified = f"{res.plural}.{res.group}" if res.group else str(res.plural)
            raise ApiError(
                409,
                f'{qualified} "{name}" already exists',
                reason="AlreadyExists",
                details={"name": name, "group": res.group, "kind": res.plural},
            )
        if "status" in info.subresources:
            obj.pop("status", None)  # status is written through /status only
        for field_name in (
            "uid",
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
        ):
            meta.pop(field_name, None)
        obj["apiVersion"] = self._api_version(res)
        obj["kind"] = info.kind or obj.get("kind")
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        meta["generation"] = 1
        self._admit(res, obj, None)
        if res == NAMESPACES:
            obj["status"] = {"phase": "Active"}
        if res == CRDS:
            self._crd_status(obj)
        paths = self._owned_paths(res, obj, None)
        if operation == "Apply":  # an applier owns what it applied, not what the server defaulted
            paths &= set(self._scoped_paths(res, body, None))
        meta["managedFields"] = [self._field_entry(res, manager, operation, None, paths)] if paths else []
        if dry_run:
            return obj
        stored = self._store(key, obj, None, "ADDED")
        if res == CRDS:
            self._declare_from_crd(stored)
        self._check_owners(key)
        return self._current(key) or stored

    # update (patch, put, apply)

    def _update(
        self,
        key: Key,
        mutate: Callable[[Obj], Any],
        *,
        manager: str,
        subresource: str | None = None,
        dry_run: bool = False,
        fields: Callable[[Obj, Obj], list[Obj]] | None = None,
    ) -> Obj:
        res, _, name = key
        info = self._info(res)
        if subresource is not None and (subresource != "status" or "status" not in info.subresources):
            raise ApiError(404, "the server could not find the requested resource")
        old = self._current(key)
        if old is None:
            raise self._not_found(res, name)
        candidate = mutate(copy.deepcopy(old))
        if not isinstance(candidate, dict):
            raise ApiError(422, "the patched object is not an object")
        wanted_rv = (candidate.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and wanted_rv != old["metadata"].get("resourceVersion"):
            raise self._conflict(res, name)

        if subresource == "status":
            # A write to /status changes only .status (metadata and spec stay as they are).
            new = copy.deepcopy(old)
            if "status" in candidate:
                new["status"] = candidate["status"]
            else:
                new.pop("status", None)
        else:
            new = candidate
            meta = new.get("metadata")
            if not isinstance(meta, dict):
                new["metadata"] = meta = {}
            for field_name in SERVER_METADATA:  # identity and server-maintained fields are not writable
                if field_name in old["metadata"]:
                    meta[field_name] = copy.deepcopy(old["metadata"][field_name])
                else:
                    meta.pop(field_name, None)
            new["apiVersion"], new["kind"] = old.get("apiVersion"), old.get("kind")
            if "status" in info.subresources:  # a write to the object never changes its status
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
        self._admit(res, new, old)

        if old["metadata"].get("deletionTimestamp"):
            added = set(new["metadata"].get("finalizers") or []) - set(
                old["metadata"].get("finalizers") or []
            )
            if added:
                raise ApiError(
                    422,
                    "metadata.finalizers: Forbidden: no new finalizers can be added "
                    f"if the object is being deleted, found new finalizers {sorted(added)}",
                )
        # metadata.generation: +1 on every change of anything but metadata (and status if a subresource).
        if self._generation_part(res, new) != self._generation_part(res, old):
            new["metadata"]["generation"] = old["metadata"].get("generation", 0) + 1
        if fields is not None:
            new["metadata"]["managedFields"] = fields(old, new)
        else:
            new["metadata"]["managedFields"] = self._fields_after_update(res, old, new, manager, subresource)
        if not new["metadata"]["managedFields"]:
            new["metadata"].pop("managedFields")
        if new == old or dry_run:
            return new  # a no-op write: no new resourceVersion, no event
        stored = self._store(key, new, old, "MODIFIED")
        if res == CRDS:
            self._declare_from_crd(stored)
        if stored["metadata"].get("deletionTimestamp") and not stored["metadata"].get("finalizers"):
            return self._remove(key, stored)
        if owner_uids(stored) != owner_uids(old):
            self._check_owners(key)
        return self._current(key) or stored

    def _replace(self, key: Key, body: Obj, *, manager: str, subresource: str | None, dry_run: bool) -> Obj:
        res, _, name = key
        meta = body.get("metadata") or {}
        if meta.get("name") not in (None, name):
            raise ApiError(400, "the name of the object does not match the name on the URL")
        if not meta.get("resourceVersion") and res in self._custom:
            raise ApiError(
                422, "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
            )
        return self._update(
            key, lambda _: copy.deepcopy(body), manager=manager, subresource=subresource, dry_run=dry_run
        )

    def _apply(
        self,
        res: kmock.resource,
        namespace: str | None,
        name: str,
        body: Obj,
        *,
        manager: str,
        force: bool,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> tuple[Obj, bool]:
        info = self._info(res)
        config = copy.deepcopy(body)
        api_version, kind = config.get("apiVersion"), config.get("kind")
        if not api_version or not kind:
            raise ApiError(400, "apiVersion and kind are required in an applied configuration")
        if api_version != self._api_version(res) or (info.kind and kind != info.kind):
            raise ApiError(400, f"the applied {api_version}/{kind} does not match the resource {res.plural}")
        meta = config.setdefault("metadata", {})
        if meta.get("name") not in (None, name):
            raise ApiError(400, "the name of the object does not match the name on the URL")
        meta["name"] = name
        if info.namespaced:
            if meta.get("namespace") not in (None, namespace):
                raise ApiError(400, "the namespace of the object does not match the namespace on the URL")
            meta["namespace"] = namespace
        key = (res, namespace if info.namespaced else None, name)
        if self._current(key) is None:
            if subresource is not None:
                raise self._not_found(res, name)
            return self._create(
                res, namespace, config, manager=manager, operation="Apply", dry_run=dry_run
            ), True

        scope_sub = subresource
        applied = set(self._scoped_paths(res, config, scope_sub))

        def mutate(current: Obj) -> Obj:
            owners = self._owners(current)
            mine = owners.get((manager, "Apply", scope_sub), set())
            others = set().union(
                *(paths for owner, paths in owners.items() if owner != (manager, "Apply", scope_sub))
            )
            if not force:
                values = leaf_paths(current)
                config_values = leaf_paths(config)
                conflicts = sorted(
                    path
                    for path in applied
                    if path in values and values[path] != config_values.get(path)
                    for owner, paths in owners.items()
                    if owner[0] != manager and path in paths
                )
                if conflicts:
                    listed = "; ".join(f".{'.'.join(path)}" for path in conflicts)
                    raise ApiError(
                        409,
                        f"Apply failed with {len(conflicts)} conflicts: "
                        f"conflicts with other managers: {listed}",
                    )
            # Fields this manager applied before and no longer applies go, unless someone else owns them.
            for path in sorted(mine - applied - others, key=len, reverse=True):
                delete_path(current, path)
            apply_merge(current, config)
            return current

        def fields(old: Obj, new: Obj) -> list[Obj]:
            owners = self._owners(old)
            present = set(self._scoped_paths(res, new, scope_sub))
            mine_now = applied & present
            result: dict[tuple[str, str, str | None], set[FieldPath]] = {}
            for owner, paths in owners.items():
                if owner == (manager, "Apply", scope_sub):
                    continue
                if owner[2] != scope_sub:  # ownership of the other endpoint (object vs /status) stays
                    result[owner] = paths
                    continue
                kept = (paths - mine_now if force else paths) & present
                if kept:
                    result[owner] = kept
            result[(manager, "Apply", scope_sub)] = mine_now
            return self._render_fields(res, old, result)

        obj = self._update(
            key, mutate, manager=manager, subresource=subresource, dry_run=dry_run, fields=fields
        )
        return obj, False

    def _conflict(self, res: kmock.resource, name: str) -> ApiError:
        qualified = f"{res.plural}.{res.group}" if res.group else str(res.plural)
        return ApiError(
            409,
            f'Operation cannot be fulfilled on {qualified} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again",
            details={"name": name, "group": res.group, "kind": res.plural},
        )

    # delete and garbage collection

    def _delete(
        self,
        key: Key,
        *,
        propagation: str | None = None,
        preconditions: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> Obj:
        res, _, name = key
        self._info(res)
        old = self._current(key)
        if old is None:
            raise self._not_found(res, name)
        for field_name in ("uid", "resourceVersion"):
            expected = (preconditions or {}).get(field_name)
            if expected and expected != old["metadata"].get(field_name):
                raise ApiError(
                    409,
                    f"Precondition failed: {field_name} in precondition: {expected}, "
                    f"in object: {old['metadata'].get(field_name)}",
                )
        if dry_run:
            return old
        policy = propagation or "Background"
        uid = old["metadata"]["uid"]
        if policy == "Orphan":
            for dep_key, _ in self._dependents(uid):
                self._drop_owner_refs(dep_key, {uid})
        elif policy == "Foreground":  # simplification: dependents are deleted first, synchronously
            for dep_key, _ in self._dependents(uid):
                if self._current(dep_key) is not None:
                    self._delete(dep_key, propagation="Foreground")
            old = self._current(key) or old
        if res == NAMESPACES:
            return self._delete_namespace(key, old)
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return old
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["metadata"]["generation"] = old["metadata"].get("generation", 0) + 1
            return self._store(key, new, old, "MODIFIED")
        return self._remove(key, old)

    def _delete_namespace(self, key: Key, old: Obj) -> Obj:
        # The namespace controller deletes everything in it; the namespace goes once it is empty.
        if not old["metadata"].get("deletionTimestamp"):
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = now()
            new["status"] = {"phase": "Terminating"}
            self._store(key, new, old, "MODIFIED")
        namespace = key[2]
        for obj_key in list(self.objects):
            if obj_key[1] == namespace and obj_key[0] != NAMESPACES and self._current(obj_key) is not None:
                self._delete(obj_key)
        self._finish_namespace(namespace)
        return self._current(key) or old

    def _finish_namespace(self, namespace: str) -> None:
        ns_key = (NAMESPACES, None, namespace)
        ns_obj = self._current(ns_key)
        if ns_obj is None or not ns_obj["metadata"].get("deletionTimestamp"):
            return
        if any(key[1] == namespace and self._current(key) is not None for key in self.objects):
            return
        self._remove(ns_key, ns_obj)

    def _check_namespace(self, namespace: str) -> None:
        if NAMESPACES not in self.resources:
            return
        ns_obj = self._current((NAMESPACES, None, namespace))
        if ns_obj is None and self.strict_namespaces:
            raise ApiError(404, f'namespaces "{namespace}" not found')
        if ns_obj is not None and ns_obj["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                f"unable to create new content in namespace {namespace} because it is being terminated",
                details={"name": namespace, "kind": "namespaces"},
            )

    def _find_uid(self, uid: str) -> tuple[Key, Obj] | None:
        # Only objects written through the emulator (HTTP or its helpers) are indexed; objects put
        # into kmock's ``objects`` directly are invisible as owners.
        key = self._uids.get(uid)
        if key is not None:
            obj = self._current(key)
            if obj is not None and obj["metadata"].get("uid") == uid:
                return key, obj
        return None

    def _owner_valid(self, dependent: Key, ref: Mapping[str, Any]) -> bool:
        found = self._find_uid(ref.get("uid", ""))
        if found is None:
            return False
        owner_key, _ = found
        # Owners must be cluster-scoped or in the dependent's namespace; the GC treats others as absent.
        return owner_key[1] is None or owner_key[1] == dependent[1]

    def _dependents(self, uid: str) -> list[tuple[Key, Obj]]:
        return [
            (key, obj)
            for key in sorted(self._dependents_of.get(uid, ()), key=self._sort_key)
            if (obj := self._current(key)) is not None and uid in owner_uids(obj)
        ]

    def _collect_dependents(self, owner_key: Key, owner: Obj) -> None:
        # The garbage collector: dependents of a removed owner are deleted when no other owner remains.
        uid = owner["metadata"].get("uid")
        if not uid:
            return
        for dep_key, _ in self._dependents(uid):
            self._check_owners(dep_key)

    def _check_owners(self, key: Key) -> None:
        obj = self._current(key)
        if obj is None:
            return
        refs = obj["metadata"].get("ownerReferences") or []
        if not refs:
            return
        invalid = {ref.get("uid", "") for ref in refs if not self._owner_valid(key, ref)}
        if not invalid:
            return
        for ref in refs:
            found = self._find_uid(ref.get("uid", ""))
            if found is not None and ref.get("uid") in invalid:
                self._warn_invalid_owner(key, obj, ref)
        if len(invalid) == len({ref.get("uid", "") for ref in refs}):
            if not obj["metadata"].get("deletionTimestamp"):
                self._delete(key)
        else:
            self._drop_owner_refs(key, invalid)

    def _drop_owner_refs(self, key: Key, uids: set[str]) -> None:
        def mutate(cur: Obj) -> Obj:
            refs = [ref for ref in cur["metadata"].get("ownerReferences") or [] if ref.get("uid") not in uids]
            if refs:
                cur["metadata"]["ownerReferences"] = refs
            else:
                cur["metadata"].pop("ownerReferences", None)
            return cur

        self._update(key, mutate, manager="kube-controller-manager")

    def _warn_invalid_owner(self, key: Key, obj: Obj, ref: Mapping[str, Any]) -> None:
        if EVENTS not in self.resources or key[1] is None or key[0] == EVENTS:
            return
        self._create(
            EVENTS,
            key[1],
            {
                "metadata": {"generateName": f"{key[2]}.", "namespace": key[1]},
                "involvedObject": {
                    "apiVersion": obj.get("apiVersion"),
                    "kind": obj.get("kind"),
                    "name": key[2],
                    "namespace": key[1],
                    "uid": obj["metadata"].get("uid"),
                },
                "type": "Warning",
                "reason": "OwnerRefInvalidNamespace",
                "message": f"ownerRef {json.dumps(dict(ref))} does not resolve to a parent "
                f"in namespace {key[1]}",
                "source": {"component": "garbagecollector"},
            },
            manager="kube-controller-manager",
        )

    # admission: defaulting, pruning, validation

    def _admit(self, res: kmock.resource, obj: Obj, old: Obj | None) -> None:
        meta = obj["metadata"]
        self._check_labels(meta)
        if res == SECRETS:
            string_data = obj.pop("stringData", None) or {}
            data = obj.setdefault("data", {}) if string_data or "data" in obj else None
            for data_key, value in string_data.items():
                data[data_key] = base64.b64encode(str(value).encode()).decode()
            for data_key, value in (obj.get("data") or {}).items():
                try:
                    base64.b64decode(value, validate=True)
                except (binascii.Error, TypeError, ValueError) as error:
                    raise ApiError(400, f"Secret.data[{data_key}]: illegal base64 data") from error
            obj.setdefault("type", "Opaque")
        if res == CONFIGMAPS:
            for data_key, value in (obj.get("data") or {}).items():
                if not isinstance(value, str):
                    raise ApiError(
                        400,
                        f"ConfigMap.data[{data_key}]: cannot unmarshal {type(value).__name__} into a string",
                    )
        schema = self._schemas.get(res)
        if schema is not None:
            body = {key: value for key, value in obj.items() if key != "metadata"}
            body = schema_prune(schema, body)
            body = schema_defaults(schema, body)
            rest = {key: value for key, value in body.items() if key not in ("apiVersion", "kind")}
            obj.clear()
            obj.update(
                {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "metadata": meta, **rest}
            )
            if self.validate_custom_resources:
                self._validate_schema(res, obj, schema, old)
        for check in self._validators.get(res, []):
            message = check(obj, old)
            if message:
                raise self._invalid(res, obj, [(message, "")])

    def _validate_schema(self, res: kmock.resource, obj: Obj, schema: Obj, old: Obj | None = None) -> None:
        """OpenAPI validation, with ratcheting (Kubernetes >= 1.30): an update is not refused for an
        invalid value it did not change -- e.g. the status of an object created under an older CRD."""
        validator = self._schema_validators.get(res)
        if validator is None:
            converted = jsonschema_of(schema)
            properties = dict(converted.get("properties") or {})
            properties["metadata"] = {"type": "object"}
            converted["properties"] = properties
            validator = self._schema_validators[res] = jsonschema.Draft4Validator(converted)
        errors = sorted(validator.iter_errors(obj), key=lambda error: list(error.absolute_path))
        if errors and old is not None:
            tolerated = {(tuple(error.absolute_path), error.message) for error in validator.iter_errors(old)}
            errors = [
                error for error in errors if (tuple(error.absolute_path), error.message) not in tolerated
            ]
        if errors:
            causes = []
            for error in errors:
                path = ".".join(str(part) for part in error.absolute_path)
                value = json.dumps(error.instance)
                causes.append((f"{path}: Invalid value: {value[:100]}: {error.message}", path))
            raise self._invalid(res, obj, causes)

    def _invalid(self, res: kmock.resource, obj: Obj, causes: list[tuple[str, str]]) -> ApiError:
        kind = self.resources[res].kind or res.plural
        qualified = f"{kind}.{res.group}" if res.group else str(kind)
        name = obj.get("metadata", {}).get("name")
        messages = [message for message, _ in causes]
        return ApiError(
            422,
            f'{qualified} "{name}" is invalid: {", ".join(messages)}',
            details={
                "name": name,
                "group": res.group,
                "kind": kind,
                "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for m, f in causes],
            },
        )

    def _check_name(self, res: kmock.resource, name: str) -> None:
        if res == NAMESPACES:
            ok, rule = len(name) <= 63 and DNS1123_LABEL.match(name), "a lowercase RFC 1123 label"
        elif res == kmock.resource("v1/services"):
            ok, rule = len(name) <= 63 and DNS1035_LABEL.match(name), "a DNS-1035 label"
        else:
            ok, rule = len(name) <= 253 and DNS1123_SUBDOMAIN.match(name), "a lowercase RFC 1123 subdomain"
        if not ok:
            raise ApiError(422, f'metadata.name: Invalid value: "{name}": must be {rule}')

    @staticmethod
    def _check_labels(meta: Obj) -> None:
        def valid_key(key: str) -> bool:
            prefix, _, label = key.rpartition("/")
            if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
                return False
            return len(label) <= 63 and bool(LABEL_NAME.match(label))

        for key, value in (meta.get("labels") or {}).items():
            if not valid_key(str(key)):
                raise ApiError(422, f'metadata.labels: Invalid value: "{key}": invalid label key')
            if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.match(value):
                raise ApiError(422, f'metadata.labels: Invalid value: "{value}": invalid label value')
        for key, value in (meta.get("annotations") or {}).items():
            if not valid_key(str(key)):
                raise ApiError(422, f'metadata.annotations: Invalid value: "{key}": invalid annotation key')
            if not isinstance(value, str):
                raise ApiError(400, f"metadata.annotations[{key}]: the value must be a string")

    def _generation_part(self, res: kmock.resource, obj: Obj) -> Obj:
        skip = {"metadata", "status"} if "status" in self.resources[res].subresources else {"metadata"}
        return {key: value for key, value in obj.items() if key not in skip}

    # field ownership (metadata.managedFields)

    def _scoped_paths(self, res: kmock.resource, obj: Obj, subresource: str | None) -> dict[FieldPath, Any]:
        status_sub = "status" in self.resources[res].subresources
        paths = {}
        for path, value in leaf_paths(obj).items():
            if path[0] in ("apiVersion", "kind") or (
                path[0] == "metadata" and len(path) > 1 and path[1] in SERVER_METADATA
            ):
                continue
            in_status = path[0] == "status"
            if subresource == "status" and not in_status:
                continue
            if subresource is None and status_sub and in_status:
                continue
            paths[path] = value
        return paths

    def _owned_paths(self, res: kmock.resource, obj: Obj, subresource: str | None) -> set[FieldPath]:
        return set(self._scoped_paths(res, obj, subresource))

    @staticmethod
    def _owners(obj: Obj) -> dict[tuple[str, str, str | None], set[FieldPath]]:
        owners: dict[tuple[str, str, str | None], set[FieldPath]] = {}
        for entry in obj.get("metadata", {}).get("managedFields") or []:
            owner = (
                entry.get("manager", ""),
                entry.get("operation", "Update"),
                entry.get("subresource") or None,
            )
            owners.setdefault(owner, set()).update(paths_of_fields_v1(entry.get("fieldsV1") or {}))
        return owners

    def _field_entry(
        self,
        res: kmock.resource,
        manager: str,
        operation: str,
        subresource: str | None,
        paths: set[FieldPath],
    ) -> Obj:
        entry = {
            "manager": manager,
            "operation": operation,
            "apiVersion": self._api_version(res),
            "time": now(),
            "fieldsType": "FieldsV1",
            "fieldsV1": fields_v1(paths),
        }
        if subresource:
            entry["subresource"] = subresource
        return entry

    def _render_fields(
        self, res: kmock.resource, old: Obj, owners: dict[tuple[str, str, str | None], set[FieldPath]]
    ) -> list[Obj]:
        previous = {
            (
                entry.get("manager", ""),
                entry.get("operation", "Update"),
                entry.get("subresource") or None,
            ): entry
            for entry in old.get("metadata", {}).get("managedFields") or []
        }
        entries = []
        order = {owner: index for index, owner in enumerate(previous)}  # keep the entries' order stable
        for owner, paths in sorted(owners.items(), key=lambda item: order.get(item[0], len(order))):
            if not paths:
                continue
            before = previous.get(owner)
            rendered = fields_v1(paths)
            if before is not None and before.get("fieldsV1") == rendered:
                entries.append(before)  # unchanged ownership keeps its time: a no-op stays a no-op
            else:
                entries.append(self._field_entry(res, owner[0], owner[1], owner[2], paths))
        return entries

    def _fields_after_update(
        self, res: kmock.resource, old: Obj, new: Obj, manager: str, subresource: str | None
    ) -> list[Obj]:
        # An Update takes ownership of the fields it changed, away from their previous owners.
        before = self._scoped_paths(res, old, subresource)
        after = self._scoped_paths(res, new, subresource)
        changed = {path for path, value in after.items() if path not in before or before[path] != value}
        removed = set(before) - set(after)
        owners = self._owners(old)
        if not changed and not removed:
            return list(old.get("metadata", {}).get("managedFields") or [])
        result: dict[tuple[str, str, str | None], set[FieldPath]] = {}
        for owner, paths in owners.items():
            result[owner] = paths - changed - removed
        mine = (manager, "Update", subresource)
        result[mine] = (result.get(mine, set()) | changed) - removed
        return self._render_fields(res, old, result)

    # custom resource definitions

    @staticmethod
    def _crd_status(crd: Obj) -> None:
        spec = crd.get("spec", {})
        crd["status"] = {
            "acceptedNames": spec.get("names", {}),
            "storedVersions": [v["name"] for v in spec.get("versions", []) if v.get("storage")],
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "lastTransitionTime": now(),
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "lastTransitionTime": now(),
                },
            ],
        }

    def _declare_from_crd(self, crd: Obj) -> None:
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        for version in spec.get("versions", []):
            if not version.get("served", True):
                continue
            res = kmock.resource(spec["group"], version["name"], names["plural"])
            subresources = set((version.get("subresources") or {}).keys()) & {"status"}
            self.resources[res] = kmock.ResourceInfo(
                kind=names.get("kind"),
                singular=names.get("singular") or names.get("kind", "").lower(),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                verbs=set(VERBS),
                subresources=subresources,
                shortnames=set(names.get("shortNames") or []),
                categories=set(names.get("categories") or []),
            )
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            if schema:
                self._schemas[res] = schema
                self._schema_validators.pop(res, None)
            self._custom.add(res)

    def _undeclare_crd(self, crd: Obj) -> None:
        spec = crd.get("spec", {})
        for version in spec.get("versions", []):
            res = kmock.resource(spec["group"], version["name"], spec["names"]["plural"])
            for key, obj in self._select(res, None, None):
                self._rv += 1
                self.objects[key].delete()
                self._record("DELETED", key, obj, obj)
            self._schemas.pop(res, None)
            self._schema_validators.pop(res, None)
            self._custom.discard(res)
            if res in self.resources:
                del self.resources[res]
