"""Whether an AuthServer trusts an OAuthClient (registered with skip_consent: no consent page).

Only the AuthServer's spec.consent decides, from the client's namespace, name and labels: nothing in the
OAuthClient's own spec can ask for it. A label selector reaches only OAuthClients in the AuthServer's own
namespace, since labels are written by whoever writes the OAuthClient: across tenant namespaces a selector
would let a tenant trust itself; naming clients one by one is how a platform team trusts one elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping

from authyard_operator.spec.authserver import Consent, LabelSelector


def is_trusted(
    consent: Consent,
    authserver_namespace: str,
    client_namespace: str,
    client_name: str,
    labels: Mapping[str, str],
) -> bool:
    for ref in consent.trusted_clients:
        if (ref.namespace or authserver_namespace, ref.name) == (client_namespace, client_name):
            return True
    selector = consent.trusted_client_selector
    return selector is not None and client_namespace == authserver_namespace and selects(selector, labels)


def selects(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """Kubernetes' label-selector semantics: every matchLabels pair and every requirement hold."""
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    for requirement in selector.match_expressions:
        present = requirement.key in labels
        match requirement.operator:
            case "In":
                holds = present and labels[requirement.key] in requirement.values
            case "NotIn":
                holds = not present or labels[requirement.key] not in requirement.values
            case "Exists":
                holds = present
            case "DoesNotExist":
                holds = not present
        if not holds:
            return False
    return True
