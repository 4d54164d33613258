"""Every rendered child is a valid Kubernetes object (the official schemas of 1.32, strict: no unknown or
misspelt fields)."""

from __future__ import annotations

import kubernetes_validate
import pytest

from tests.operator.support import SPECS, render


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_every_child_validates_against_kubernetes_schemas(spec_name: str) -> None:
    desired = render(SPECS[spec_name])
    checked = 0
    for child in desired.children:
        if child["apiVersion"] == "monitoring.coreos.com/v1":
            # ServiceMonitor is a custom resource of the Prometheus Operator: kubernetes-validate has no
            # schema for it (its shape is asserted in test_renderers instead).
            continue
        kubernetes_validate.validate(child, "1.32", strict=True)
        checked += 1
    assert checked >= 7


def test_a_broken_manifest_is_caught() -> None:
    """The check above can fail: a misspelt field is an error in strict mode."""
    deployment = next(c for c in render(SPECS["direct"]).children if c["kind"] == "Deployment")
    deployment["spec"]["replica"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.32", strict=True)
