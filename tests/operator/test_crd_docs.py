"""The committed CRD reference is what the generator produces from the current schemas."""

from authyard_operator.crddocs import DOC_PATH, render


def test_crd_reference_is_up_to_date() -> None:
    assert DOC_PATH.read_text() == render(), "run: python -m authyard_operator.crddocs"


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
