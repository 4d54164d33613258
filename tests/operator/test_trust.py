"""Which OAuthClients an AuthServer trusts (spec.consent): the pure decision, and what it sends."""

from __future__ import annotations

from typing import Any

import pytest
from authyard_operator.reconcile.oauthclient import registration
from authyard_operator.reconcile.trust import is_trusted
from authyard_operator.spec.authserver import AuthServerSpec, Consent
from authyard_operator.spec.oauthclient import OAuthClientSpec
from pydantic import ValidationError

PLATFORM = "platform"


def _consent(**fields: Any) -> Consent:
    return AuthServerSpec.model_validate({"consent": fields}).consent


def test_clients_named_in_the_list_are_trusted_and_no_others() -> None:
    consent = _consent(trustedClients=[{"namespace": "team-a", "name": "portal"}, {"name": "kubectl"}])
    assert is_trusted(consent, PLATFORM, "team-a", "portal", {})
    assert is_trusted(consent, PLATFORM, PLATFORM, "kubectl", {})  # no namespace: the AuthServer's own
    assert not is_trusted(consent, PLATFORM, "team-a", "kubectl", {})
    assert not is_trusted(consent, PLATFORM, "team-b", "portal", {})
    assert not is_trusted(consent, PLATFORM, "team-a", "orders", {})
    assert not is_trusted(Consent(), PLATFORM, "team-a", "portal", {"first-party": "true"})  # the default


def test_the_selector_reaches_only_the_authservers_own_namespace() -> None:
    """Labels are written by whoever writes the OAuthClient: a tenant's labels cannot make it trusted."""
    consent = _consent(trustedClientSelector={"matchLabels": {"authyard.dev/first-party": "true"}})
    labels = {"authyard.dev/first-party": "true", "app": "portal"}
    assert is_trusted(consent, PLATFORM, PLATFORM, "portal", labels)
    assert not is_trusted(consent, PLATFORM, "team-a", "portal", labels)
    assert not is_trusted(consent, PLATFORM, PLATFORM, "portal", {"authyard.dev/first-party": "false"})
    assert not is_trusted(consent, PLATFORM, PLATFORM, "portal", {})


@pytest.mark.parametrize(
    ("expression", "labels", "selected"),
    [
        ({"key": "tier", "operator": "In", "values": ["web", "cli"]}, {"tier": "cli"}, True),
        ({"key": "tier", "operator": "In", "values": ["web", "cli"]}, {"tier": "batch"}, False),
        ({"key": "tier", "operator": "In", "values": ["web"]}, {}, False),
        ({"key": "tier", "operator": "NotIn", "values": ["batch"]}, {"tier": "web"}, True),
        ({"key": "tier", "operator": "NotIn", "values": ["batch"]}, {}, True),
        ({"key": "tier", "operator": "NotIn", "values": ["batch"]}, {"tier": "batch"}, False),
        ({"key": "first-party", "operator": "Exists"}, {"first-party": ""}, True),
        ({"key": "first-party", "operator": "Exists"}, {}, False),
        ({"key": "third-party", "operator": "DoesNotExist"}, {}, True),
        ({"key": "third-party", "operator": "DoesNotExist"}, {"third-party": "x"}, False),
    ],
)
def test_match_expressions_follow_kubernetes_label_selectors(
    expression: dict[str, Any], labels: dict[str, str], selected: bool
) -> None:
    consent = _consent(trustedClientSelector={"matchExpressions": [expression]})
    assert is_trusted(consent, PLATFORM, PLATFORM, "c", labels) is selected


def test_an_empty_selector_trusts_every_client_of_the_authservers_namespace_and_all_parts_must_hold() -> None:
    assert is_trusted(_consent(trustedClientSelector={}), PLATFORM, PLATFORM, "any", {})
    both = _consent(
        trustedClientSelector={
            "matchLabels": {"team": "platform"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}],
        }
    )
    assert is_trusted(both, PLATFORM, PLATFORM, "c", {"team": "platform", "tier": "web"})
    assert not is_trusted(both, PLATFORM, PLATFORM, "c", {"team": "platform", "tier": "cli"})
    assert not is_trusted(both, PLATFORM, PLATFORM, "c", {"tier": "web"})


@pytest.mark.parametrize(
    "expression",
    [{"key": "tier", "operator": "In"}, {"key": "tier", "operator": "Exists", "values": ["x"]}],
)
def test_a_requirement_whose_values_do_not_fit_its_operator_is_refused(expression: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="values"):
        _consent(trustedClientSelector={"matchExpressions": [expression]})


def test_an_oauthclient_cannot_mark_itself_trusted() -> None:
    with pytest.raises(ValidationError):
        OAuthClientSpec.model_validate({"authServerRef": {"name": "auth"}, "skipConsent": True})


def test_the_registration_says_skip_consent_only_for_a_trusted_client() -> None:
    spec = OAuthClientSpec.model_validate(
        {
            "authServerRef": {"name": "auth"},
            "grantTypes": ["authorization_code"],
            "redirectUris": ["https://a/cb"],
        }
    )
    assert registration(spec, "portal", "a", trusted=True)["skip_consent"] is True
    # Absent from the PUT means false: the server un-trusts a client taken off the list.
    assert "skip_consent" not in registration(spec, "portal", "a", trusted=False)
