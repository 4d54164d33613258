"""The CustomResourceDefinitions, generated from the spec models by
``python -m authyard_operator.codegen.crds``.

The CRD files in ``crds/`` are committed (the Helm chart and ``kubectl apply -f crds/`` use them); a test
fails when they differ from what this module generates, so the models stay the one source of truth.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from authyard_operator.codegen.structural_schema import model_schema
from authyard_operator.constants import GROUP, VERSION
from authyard_operator.spec.authserver import AuthServerSpec, AuthServerStatus
from authyard_operator.spec.oauthclient import OAuthClientSpec, OAuthClientStatus
from authyard_operator.spec.rules import AUTHSERVER_RULES, NAME_CEL, NAME_MESSAGE, OAUTHCLIENT_RULES, Rule

COMMAND = "authyard_operator.codegen.crds"
REPO_ROOT = Path(__file__).resolve().parents[3]
CRD_DIR = REPO_ROOT / "crds"

_READY = '.status.conditions[?(@.type=="Ready")]'
_UNUSED = '.status.conditions[?(@.type=="Unused")]'


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    description: str
    spec: type[BaseModel]
    status: type[BaseModel]
    rules: tuple[Rule[Any], ...]
    spec_required: bool
    name_rule: bool  # the name becomes a Service name and a prefix of child names
    columns: tuple[dict[str, Any], ...]

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"


AUTHSERVER = Kind(
    kind="AuthServer",
    plural="authservers",
    short_names=("authsrv", "as"),
    description="An OAuth 2.1 authorization server run by the Authyard operator: a Deployment with its "
    "database pool, signing keys, autoscaler and monitoring.",
    spec=AuthServerSpec,
    status=AuthServerStatus,
    rules=AUTHSERVER_RULES,
    spec_required=False,
    name_rule=True,
    columns=(
        {"name": "Ready", "type": "string", "jsonPath": f"{_READY}.status"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas"},
        {"name": "Available", "type": "integer", "jsonPath": ".status.readyReplicas", "priority": 1},
        {"name": "Issuer", "type": "string", "jsonPath": ".status.issuer"},
        {"name": "Reason", "type": "string", "jsonPath": f"{_READY}.reason", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ),
)

OAUTHCLIENT = Kind(
    kind="OAuthClient",
    plural="oauthclients",
    short_names=("oac",),
    description="An OAuth client registered with an AuthServer; its credentials land in a Secret that "
    "applications mount.",
    spec=OAuthClientSpec,
    status=OAuthClientStatus,
    rules=OAUTHCLIENT_RULES,
    spec_required=True,
    name_rule=False,
    columns=(
        {"name": "Ready", "type": "string", "jsonPath": f"{_READY}.status"},
        {"name": "ClientID", "type": "string", "jsonPath": ".status.clientId"},
        {"name": "Secret", "type": "string", "jsonPath": ".status.secretName"},
        {"name": "Trusted", "type": "boolean", "jsonPath": ".status.trusted"},
        {"name": "Last Token", "type": "date", "jsonPath": ".status.usage.lastTokenAt"},
        {"name": "Unused", "type": "string", "jsonPath": f"{_UNUSED}.status", "priority": 1},
        {"name": "AuthServer", "type": "string", "jsonPath": ".status.authServer", "priority": 1},
        {"name": "Reason", "type": "string", "jsonPath": f"{_READY}.reason", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ),
)

KINDS = (AUTHSERVER, OAUTHCLIENT)


def _cel(rule: Rule[Any]) -> dict[str, str]:
    assert rule.cel is not None
    return {"rule": rule.cel, "message": rule.message, "fieldPath": rule.field_path, "reason": rule.reason}


def open_api_schema(kind: Kind) -> dict[str, Any]:
    spec = model_schema(kind.spec)
    validations = [_cel(rule) for rule in kind.rules if rule.cel is not None]
    if validations:
        spec["x-kubernetes-validations"] = validations
    if not kind.spec_required:
        spec["default"] = {}
    status = model_schema(kind.status)
    schema: dict[str, Any] = {
        "type": "object",
        "description": kind.description,
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "The versioned schema of this representation of an object.",
            },
            "kind": {"type": "string", "description": "The REST resource this object represents."},
            "metadata": {"type": "object", "description": "Standard object metadata."},
            "spec": spec,
            "status": status,
        },
    }
    if kind.spec_required:
        schema["required"] = ["spec"]
    if kind.name_rule:
        # No fieldPath: metadata has no schema of its own to point into.
        schema["x-kubernetes-validations"] = [{"rule": NAME_CEL, "message": NAME_MESSAGE}]
    return schema


def crd(kind: Kind) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name, "labels": {"app.kubernetes.io/part-of": "authyard"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.kind.lower(),
                "shortNames": list(kind.short_names),
                "categories": ["authyard"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": open_api_schema(kind)},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(kind.columns),
                }
            ],
        },
    }


def render(kind: Kind) -> str:
    header = f"# Generated by `python -m {COMMAND}` from the spec models. Do not edit.\n"
    return header + yaml.safe_dump(crd(kind), sort_keys=False, width=120, allow_unicode=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CRD_DIR, help="directory to write the CRDs to")
    parser.add_argument("--check", action="store_true", help="fail when the files differ; write nothing")
    args = parser.parse_args(argv)
    stale = []
    for kind in KINDS:
        path = args.out / f"{kind.crd_name}.yaml"
        text = render(kind)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        print(f"out of date (run python -m {COMMAND}):", *map(str, stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
