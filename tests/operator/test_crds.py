"""The CRDs: generated from the models, structural, complete, and what the examples are checked against."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from authyard_operator.codegen import crds
from authyard_operator.spec import AuthServerSpec, OAuthClientSpec
from authyard_operator.spec.rules import parse_spec

from tests.operator.support import CRDS, EXAMPLES, KINDS, apply_defaults, committed, schema_of, strict, walk

MODELS = {"AuthServer": AuthServerSpec, "OAuthClient": OAuthClientSpec}


@pytest.mark.parametrize("kind", crds.KINDS, ids=lambda kind: kind.kind)
def test_committed_crds_are_what_the_models_generate(kind: crds.Kind) -> None:
    path = CRDS / f"{kind.crd_name}.yaml"
    assert path.read_text() == crds.render(kind), f"run: python -m {crds.COMMAND}"


def test_the_generator_check_mode_agrees() -> None:
    assert crds.main(["--check"]) == 0


def test_the_generator_writes_both_files(tmp_path: Any) -> None:
    assert crds.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "authservers.authyard.dev.yaml",
        "oauthclients.authyard.dev.yaml",
    ]
    assert crds.main(["--out", str(tmp_path / "missing"), "--check"]) == 1


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_crd_is_a_valid_kubernetes_object(kind: str) -> None:
    kubernetes_validate.validate(committed(kind), "1.32", strict=True)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_crd_metadata(kind: str) -> None:
    crd = committed(kind)
    assert crd["spec"]["group"] == "authyard.dev" and crd["spec"]["scope"] == "Namespaced"
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    assert crd["spec"]["names"]["categories"] == ["authyard"]
    assert crd["spec"]["names"]["shortNames"]


def test_printer_columns() -> None:
    columns = {
        k: [c["name"] for c in committed(k)["spec"]["versions"][0]["additionalPrinterColumns"]] for k in KINDS
    }
    assert {"Ready", "Replicas", "Issuer", "Age"} <= set(columns["AuthServer"])
    assert {"Ready", "ClientID", "Secret", "Age"} <= set(columns["OAuthClient"])
    assert committed("AuthServer")["spec"]["names"]["shortNames"] == ["authsrv", "as"]
    assert committed("OAuthClient")["spec"]["names"]["shortNames"] == ["oac"]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_schema_is_structural_and_documented(kind: str) -> None:
    for path, node in walk(schema_of(kind)):
        assert ("$ref" not in node and "anyOf" not in node) or node.get("x-kubernetes-int-or-string"), path
        assert "type" in node or node.get("x-kubernetes-int-or-string"), f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        assert "nullable" not in node and "title" not in node, path
        is_field = path.count(".") >= 1 and not path.endswith(("[]", "}"))
        if is_field:
            assert node.get("description"), f"{path} has no description (kubectl explain)"
    text = (CRDS / f"{KINDS[kind].crd_name}.yaml").read_text()
    assert "x-kubernetes-preserve-unknown-fields" not in text  # nothing here needs it


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_strings_and_lists_are_bounded_for_cel_cost(kind: str) -> None:
    spec = schema_of(kind)["properties"]["spec"]
    for path, node in walk(spec):
        if node.get("type") == "array":
            assert "maxItems" in node, path
        if node.get("type") == "string" and "enum" not in node:
            assert "maxLength" in node, path


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_defaults_are_valid_values(kind: str) -> None:
    for _, node in walk(schema_of(kind)):
        if "default" in node:
            jsonschema.validate(node["default"], node)


def test_crd_defaults_equal_model_defaults() -> None:
    """Defaulting by the API server and by the models give the same object."""
    spec_schema = schema_of("AuthServer")["properties"]["spec"]
    defaulted = apply_defaults(spec_schema, spec_schema["default"])
    assert AuthServerSpec.model_validate(defaulted) == AuthServerSpec.model_validate({})
    assert defaulted["tokens"] == {
        "accessTokenTTL": "15m",
        "refreshTokenTTL": "720h",
        "signingAlgorithm": "ES256",
        "idTokenSigningAlgorithm": "ES256",
        "keyRotationInterval": "720h",
    }
    assert defaulted["replicas"] == 1 and defaulted["autoscaling"]["enabled"] is False
    with_db = apply_defaults(
        spec_schema, {"database": {"urlSecretRef": {"name": "db", "key": "url"}, "maxConnections": 9}}
    )
    assert with_db["database"]["pooler"] == {"type": "none", "instances": 2}
    client_schema = schema_of("OAuthClient")["properties"]["spec"]
    client = apply_defaults(client_schema, {"authServerRef": {"name": "auth"}})
    assert client["type"] == "confidential" and client["grantTypes"] == ["client_credentials"]
    assert OAuthClientSpec.model_validate(client) == OAuthClientSpec.model_validate(
        {"authServerRef": {"name": "auth"}}
    )


EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))


def test_the_four_examples_exist() -> None:
    assert {path.name for path in EXAMPLE_FILES} >= {
        "authserver-embedded.yaml",
        "authserver-postgres-pgbouncer.yaml",
        "oauthclient-m2m.yaml",
        "oauthclient-spa.yaml",
    }


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: path.name)
def test_examples_validate_against_the_crd(path: Any) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        kind = document["kind"]
        assert document["apiVersion"] == "authyard.dev/v1alpha1"
        jsonschema.validate(document, strict(schema_of(kind)))
        spec_schema = schema_of(kind)["properties"]["spec"]
        spec, problems = parse_spec(
            MODELS[kind], apply_defaults(spec_schema, document["spec"]), document["metadata"]["name"]
        )
        assert problems == [] and spec is not None


def test_the_running_operator_never_imports_the_generators() -> None:
    """The generators are development tools: the operator's entry point loads every handler without them."""
    probe = (
        "import sys, authyard_operator.cli; "
        "print(sorted(m for m in sys.modules if m.startswith('authyard_operator.codegen')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert loaded.strip() == "[]"
