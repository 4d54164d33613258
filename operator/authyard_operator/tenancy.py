"""The AuthServer's client policy: which namespaces may register, which grants, scopes and audiences, and
which hosts back-channel logout may reach."""

from __future__ import annotations

from urllib.parse import urlsplit

from authyard_operator.spec.authserver import ClientPolicy
from authyard_operator.spec.oauthclient import OAuthClientSpec


def host_allowed(host: str, patterns: list[str]) -> bool:
    """Whether ``host`` is one of ``patterns`` (DNS names compare case-insensitively, RFC 4343)."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        pattern = pattern.lower()
        if (pattern.startswith("*.") and host.endswith(pattern[1:])) or host == pattern:
            return True
    return False


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
        targets = spec.token_exchange.audiences if spec.token_exchange is not None else []
        refused_targets = sorted(set(targets) - set(policy.allowed_audiences))
        if refused_targets:
            problems.append(
                f"token-exchange audiences not allowed by the AuthServer: {', '.join(refused_targets)} "
                "(spec.tokenExchange.audiences; its spec.clientPolicy.allowedAudiences)"
            )
    logout = spec.backchannel_logout
    allowed_hosts = policy.allowed_backchannel_logout_hosts
    if logout is not None and allowed_hosts is not None:
        host = urlsplit(str(logout.uri)).hostname or ""
        if not host_allowed(host, allowed_hosts):
            problems.append(
                f"back-channel logout host not allowed by the AuthServer: {host} "
                "(spec.backchannelLogout.uri; its spec.clientPolicy.allowedBackchannelLogoutHosts)"
            )
    return problems
