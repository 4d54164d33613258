"""The AuthServer's client policy: which namespaces may register, which grants, scopes and audiences."""

from __future__ import annotations

from authyard_operator.spec.authserver import ClientPolicy
from authyard_operator.spec.oauthclient import OAuthClientSpec


def policy_violations(
    policy: ClientPolicy, client_namespace: str, authserver_namespace: str, spec: OAuthClientSpec
) -> list[str]:
    """What the AuthServer's spec.clientPolicy does not allow this client; empty when it may register."""
    problems = []
    allowed = policy.allowed_namespaces or [authserver_namespace]
    if "*" not in allowed and client_namespace not in allowed:
        problems.append(
            f"namespace {client_namespace} may not register with this AuthServer "
            f"(its spec.clientPolicy.allowedNamespaces: {', '.join(allowed)})"
        )
    refused_grants = sorted(set(spec.grant_types) - set(policy.allowed_grant_types))
    if refused_grants:
        problems.append(
            f"grant types not allowed by the AuthServer: {', '.join(refused_grants)} (spec.grantTypes; its "
            f"spec.clientPolicy.allowedGrantTypes: {', '.join(policy.allowed_grant_types)})"
        )
    if policy.allowed_scopes is not None:
        refused_scopes = sorted(set(spec.scopes) - set(policy.allowed_scopes))
        if refused_scopes:
            problems.append(
                f"scopes not allowed by the AuthServer: {', '.join(refused_scopes)} (spec.scopes; its "
                "spec.clientPolicy.allowedScopes)"
            )
    if policy.allowed_audiences is not None:
        refused_audiences = sorted(set(spec.audiences) - set(policy.allowed_audiences))
        if refused_audiences:
            problems.append(
                f"audiences not allowed by the AuthServer: {', '.join(refused_audiences)} (spec.audiences; "
                "its spec.clientPolicy.allowedAudiences)"
            )
    return problems
