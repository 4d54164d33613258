"""The committed CRD reference is what the generator produces from the current schemas."""

from authyard_operator.codegen.crd_reference import COMMAND, DOC_PATH, render


def test_crd_reference_is_up_to_date() -> None:
    assert DOC_PATH.read_text() == render(), f"run: python -m {COMMAND}"


def test_reference_documents_every_spec_field_and_example() -> None:
    text = render()
    fields = [
        "`spec.database.maxConnections`",
        "`spec.clientPolicy.allowedNamespaces`",
        "`status.conditions`",
    ]
    fields += ["`spec.secret.rotationGracePeriod`", "`spec.authServerRef.name`"]
    for field in fields:
        assert field in text, field
    assert "examples/authserver-embedded.yaml" in text and "examples/oauthclient-m2m.yaml" in text


def test_every_operator_setting_is_in_the_readme() -> None:
    from pathlib import Path

    from authyard_operator.settings import OperatorSettings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Running the operator", 1)[1].split("\n## ", 1)[0]
    missing = [
        f"AUTHYARD_{name.upper()}"
        for name in OperatorSettings.model_fields
        if f"`AUTHYARD_{name.upper()}`" not in section
    ]
    assert not missing, f"operator settings missing from the README: {missing}"
