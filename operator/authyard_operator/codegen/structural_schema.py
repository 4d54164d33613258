"""pydantic model -> Kubernetes *structural* OpenAPI v3 schema.

pydantic emits JSON Schema 2020-12; a CRD needs the structural subset of OpenAPI v3: every node typed,
no ``$ref`` (everything inlined), no ``additionalProperties`` next to ``properties``, no ``null`` unions (an
absent field is how Kubernetes says "not set"), and int-or-string spelled ``x-kubernetes-int-or-string``.
Defaults come from the models, including those built by ``default_factory`` (an object whose fields all have
defaults defaults to ``{}``, and the API server fills in the rest).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

# Keywords OpenAPI v3.0 spells differently or Kubernetes rejects; we never emit them.
_UNSUPPORTED = {"exclusiveMinimum", "exclusiveMaximum", "oneOf", "allOf", "not", "$id", "const"}


class _CrdJsonSchema(GenerateJsonSchema):
    def default_schema(self, schema: core_schema.WithDefaultSchema) -> dict[str, Any]:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            value = factory()  # type: ignore[call-arg]  # a factory that takes no data: checked above
            schema = {**schema, "default": {} if isinstance(value, BaseModel) else value}
            schema.pop("default_factory")
        return super().default_schema(schema)


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of ``model`` (camelCase, inlined, with defaults)."""
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=_CrdJsonSchema)
    return _structural(raw, raw.get("$defs", {}))


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = dict(node)
    node.pop("$defs", None)
    node.pop("title", None)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**_structural(target, defs), **node}  # the field's own description wins over the class's
    if "anyOf" in node:
        node = _collapse_any_of(node, defs)
    if node.get("default", ...) is None:
        del node["default"]
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]  # unknown fields are pruned by the API server instead
    if "properties" in node:
        node["properties"] = {name: _structural(child, defs) for name, child in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        node["items"] = _structural(node["items"], defs)
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = _structural(node["additionalProperties"], defs)
    if "enum" in node and "type" not in node:
        node["type"] = "string"
    leftovers = _UNSUPPORTED & node.keys()
    if leftovers:
        raise ValueError(f"schema keywords {sorted(leftovers)} have no structural OpenAPI spelling: {node}")
    if "type" not in node and not node.get("x-kubernetes-int-or-string"):
        raise ValueError(f"a structural schema needs a type on every node: {node}")
    return _ordered(node)


def _ordered(node: dict[str, Any]) -> dict[str, Any]:
    """type and description first, the rest alphabetically, so the generated files read (and diff) well."""
    head = [key for key in ("type", "description") if key in node]
    return {key: node[key] for key in head + sorted(node.keys() - set(head))}


def _collapse_any_of(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    branches = [branch for branch in node.pop("anyOf") if branch != {"type": "null"}]
    if len(branches) == 1:  # Optional[X]: X, optional by not being required
        return {**_structural(branches[0], defs), **node}
    types = {branch.get("type") for branch in branches}
    if types == {"integer", "string"}:  # a resource quantity
        string_branch = next(branch for branch in branches if branch["type"] == "string")
        result = {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            **node,
        }
        if "pattern" in string_branch:
            result["pattern"] = string_branch["pattern"]
        return result
    raise ValueError(f"unions other than Optional[X] and int-or-string are not structural: {branches}")
