"""Shared helpers of the operator's pure tests (no cluster, no network).

Also the API server's behaviour the schema tests need: defaulting and strict field validation."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from authyard_operator.codegen import crds
from authyard_operator.resources.bundle import Desired, Observed, render_children
from authyard_operator.sizing import size_pools
from authyard_operator.spec.authserver import AuthServerSpec

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
CRDS = REPO / "crds"
NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
DB_URL = "postgresql+asyncpg://authyard:s3cr%40t@pg.db.svc:5433/authyard?ssl=require"

CLUSTER_ISSUER = "https://kubernetes.default.svc.cluster.local"  # the cluster's service-account issuer
DB = {"urlSecretRef": {"name": "auth-db", "key": "url"}, "maxConnections": 100}

# Specs covering every mode; used by the renderer and schema-validation tests.
SPECS: dict[str, dict[str, Any]] = {
    "embedded": {},
    "direct": {"replicas": 3, "database": DB},
    "direct-hpa": {
        "issuer": "https://auth.example.com",
        "autoscaling": {
            "enabled": True,
            "minReplicas": 3,
            "maxReplicas": 20,
            "targetRequestsPerSecondPerPod": 50,
        },
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "database": DB,
        "workers": 2,
    },
    "pgbouncer": {
        "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 20},
        "database": {**DB, "pooler": {"type": "pgbouncer", "instances": 2}},
    },
}


def spec_of(raw: dict[str, Any]) -> AuthServerSpec:
    return AuthServerSpec.model_validate(raw)


def render(raw: dict[str, Any], observed: Observed | None = None, name: str = "auth") -> Desired:
    spec = spec_of(raw)
    observed = observed or Observed(
        database_url=DB_URL, service_monitor_available=True, cluster_issuer=CLUSTER_ISSUER
    )
    return render_children(name, "platform", spec, size_pools(spec), observed, NOW)


def by_kind(desired: Desired) -> dict[tuple[str, str], dict[str, Any]]:
    return {(child["kind"], child["metadata"]["name"]): child for child in desired.children}


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


KINDS = {kind.kind: kind for kind in crds.KINDS}


def committed(kind: str) -> dict[str, Any]:
    return load_yaml(CRDS / f"{KINDS[kind].crd_name}.yaml")


def schema_of(kind: str) -> dict[str, Any]:
    return committed(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += walk(node["additionalProperties"], f"{path}{{}}")
    return found


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Defaulting as the API server does it: absent fields with a default get it, recursively."""
    if isinstance(value, dict) and "properties" in schema:
        value = dict(value)
        for name, child in schema["properties"].items():
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                value[name] = apply_defaults(child, value[name])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        value = [apply_defaults(schema["items"], item) for item in value]
    return value


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with unknown fields rejected, as `kubectl apply` (server-side field validation) does."""
    schema = copy.deepcopy(schema)
    for _, node in walk(schema):
        if "properties" in node and node is not schema["properties"].get("metadata"):
            node["additionalProperties"] = False
    return schema
