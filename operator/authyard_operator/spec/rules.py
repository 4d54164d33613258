"""Cross-field rules of the specs, each written twice side by side: once in CEL for the CRD (so that
``kubectl apply`` rejects the spec) and once in Python for the operator (so that a spec that slipped past —
an older CRD, a cluster without CEL — becomes Ready=False with the same message, never a crash loop).

A few rules have no CEL twin because CEL cannot read them (Go-style durations with a ``d`` unit or a bare
number of seconds are not CEL durations); those are checked by the operator only.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from authyard_operator.spec.authserver import KUBERNETES_ISSUER, TOKEN_EXCHANGE, AuthServerSpec
from authyard_operator.spec.common import seconds_of
from authyard_operator.spec.oauthclient import PRIVATE_JWK_MEMBERS, OAuthClientSpec

S = TypeVar("S", bound=BaseModel)

# metadata.name becomes the Service name (a DNS-1035 label) and prefixes child names such as
# "<name>-pgbouncer", which must stay within 63 characters.
MAX_NAME_LENGTH = 50
NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
NAME_MESSAGE = (
    f"metadata.name must be at most {MAX_NAME_LENGTH} characters, start with a letter and contain only "
    "lowercase letters, digits and '-' (it names the Service and the other children)"
)
NAME_CEL = f"size(self.metadata.name) <= {MAX_NAME_LENGTH} && self.metadata.name.matches('{NAME_PATTERN}')"

LOOPBACK_HTTP = r"^http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]+)?([/?].*)?$"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: the field to change and what to do."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class Rule(Generic[S]):
    field: str  # spec-relative, as users write it: "autoscaling.minReplicas"
    message: str
    holds: Callable[[S], bool]
    cel: str | None = None  # self = spec
    reason: str = "FieldValueInvalid"

    @property
    def field_path(self) -> str:
        """The CRD's fieldPath (JSON path relative to spec) of the field the message points at."""
        return "." + self.field


def _autoscaling_on(spec: AuthServerSpec) -> bool:
    return spec.autoscaling.enabled


def _requests_cover_hpa(spec: AuthServerSpec) -> bool:
    if not spec.autoscaling.enabled or spec.resources is None or spec.capacity is not None:
        return True  # absent resources get the defaults, which have both requests; capacity: see below
    return {"cpu", "memory"} <= set(spec.resources.requests)


def _one_kind_each(spec: AuthServerSpec) -> bool:
    return all(
        (provider.oidc is None) != (provider.ldap is None) for provider in spec.identity_providers.providers
    )


def _unique_provider_names(spec: AuthServerSpec) -> bool:
    names = [provider.name for provider in spec.identity_providers.providers]
    return len(names) == len(set(names))


def _ldap_over_tls(spec: AuthServerSpec) -> bool:
    return all(
        provider.ldap is None or provider.ldap.url.startswith("ldaps://") or provider.ldap.start_tls
        for provider in spec.identity_providers.providers
    )


def _one_ldap_ca(spec: AuthServerSpec) -> bool:
    return all(
        provider.ldap is None
        or provider.ldap.ca_config_map_ref is None
        or provider.ldap.ca_secret_ref is None
        for provider in spec.identity_providers.providers
    )


IDENTITY_PROVIDER_RULES: tuple[Rule[AuthServerSpec], ...] = (
    Rule(
        field="identityProviders.providers",
        message="each identity provider has exactly one of oidc and ldap",
        holds=_one_kind_each,
        cel="!has(self.identityProviders) || !has(self.identityProviders.providers)"
        " || self.identityProviders.providers.all(p, has(p.oidc) != has(p.ldap))",
    ),
    Rule(
        field="identityProviders.providers",
        message="identity provider names must be unique",
        holds=_unique_provider_names,
        # A list-map keyed by name: the API server itself refuses duplicates.
    ),
    Rule(
        field="identityProviders.providers",
        message="an LDAP directory is reached over TLS: use an ldaps:// url or set startTLS (the password "
        "people type would otherwise cross the network in clear text)",
        holds=_ldap_over_tls,
        cel="!has(self.identityProviders) || !has(self.identityProviders.providers)"
        " || self.identityProviders.providers.all(p, !has(p.ldap) || p.ldap.url.startsWith('ldaps://')"
        " || (has(p.ldap.startTLS) && p.ldap.startTLS))",
    ),
    Rule(
        field="identityProviders.providers",
        message="an LDAP directory's CA comes from caConfigMapRef or caSecretRef, not both",
        holds=_one_ldap_ca,
        cel="!has(self.identityProviders) || !has(self.identityProviders.providers)"
        " || self.identityProviders.providers.all(p, !has(p.ldap) || !has(p.ldap.caConfigMapRef)"
        " || !has(p.ldap.caSecretRef))",
    ),
    Rule(
        field="identityProviders.localAccounts",
        message="people need a way to sign in: keep identityProviders.localAccounts or add a provider",
        holds=lambda s: s.identity_providers.local_accounts or bool(s.identity_providers.providers),
        cel="!has(self.identityProviders) || !has(self.identityProviders.localAccounts)"
        " || self.identityProviders.localAccounts"
        " || (has(self.identityProviders.providers) && size(self.identityProviders.providers) > 0)",
    ),
)


def _capacity_leaves_cpu_to_the_plan(spec: AuthServerSpec) -> bool:
    if spec.capacity is None or spec.resources is None:
        return True
    return "cpu" not in spec.resources.requests and "memory" in spec.resources.requests


AUTHSERVER_RULES: tuple[Rule[AuthServerSpec], ...] = (
    Rule(
        field="autoscaling.minReplicas",
        message="autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas",
        holds=lambda s: not s.autoscaling.enabled or s.autoscaling.min_replicas <= s.autoscaling.max_replicas,
        cel="!has(self.autoscaling) || !self.autoscaling.enabled"
        " || self.autoscaling.minReplicas <= self.autoscaling.maxReplicas",
    ),
    Rule(
        field="replicas",
        message="embedded SQLite (no spec.database) runs exactly one replica: set spec.replicas to 1, "
        "or configure spec.database",
        holds=lambda s: not s.embedded or s.replicas == 1,
        cel="has(self.database) || !has(self.replicas) || self.replicas == 1",
    ),
    Rule(
        field="autoscaling.enabled",
        message="embedded SQLite (no spec.database) cannot autoscale: set spec.autoscaling.enabled to "
        "false, or configure spec.database",
        holds=lambda s: not s.embedded or not _autoscaling_on(s),
        cel="has(self.database) || !has(self.autoscaling) || !self.autoscaling.enabled",
    ),
    Rule(
        field="resources.requests",
        message="autoscaling needs cpu and memory requests (its targets are percentages of them): set "
        "spec.resources.requests.cpu and .memory, or leave spec.resources out to get the defaults",
        holds=_requests_cover_hpa,
        cel="!has(self.autoscaling) || !self.autoscaling.enabled || has(self.capacity)"
        " || !has(self.resources) || (has(self.resources.requests) && 'cpu' in self.resources.requests"
        " && 'memory' in self.resources.requests)",
    ),
    Rule(
        field="capacity",
        message="spec.capacity plans several replicas and embedded SQLite (no spec.database) runs one: "
        "configure spec.database, or remove spec.capacity",
        holds=lambda s: s.capacity is None or not s.embedded,
        cel="has(self.database) || !has(self.capacity)",
    ),
    Rule(
        field="resources.requests",
        message="with spec.capacity the plan sets the CPU request and the HPA needs a memory request: remove "
        "spec.resources.requests.cpu and set spec.resources.requests.memory, or leave spec.resources out",
        holds=_capacity_leaves_cpu_to_the_plan,
        cel="!has(self.capacity) || !has(self.resources) || (has(self.resources.requests)"
        " && !('cpu' in self.resources.requests) && 'memory' in self.resources.requests)",
    ),
    # Durations: operator only (see the module docstring).
    Rule(
        field="tokens.accessTokenTTL",
        message="tokens.accessTokenTTL must be between 1m and 24h",
        holds=lambda s: 60 <= seconds_of(s.tokens.access_token_ttl) <= 86400,
    ),
    Rule(
        field="tokens.refreshTokenTTL",
        message="tokens.refreshTokenTTL must be longer than tokens.accessTokenTTL",
        holds=lambda s: seconds_of(s.tokens.refresh_token_ttl) > seconds_of(s.tokens.access_token_ttl),
    ),
    Rule(
        field="sessions.lifetime",
        message="sessions.lifetime must be between 1m and 720h",
        holds=lambda s: 60 <= seconds_of(s.sessions.lifetime) <= 720 * 3600,
    ),
    Rule(
        field="sessions.idleTimeout",
        message="sessions.idleTimeout must be 0s (none) or between 1m and sessions.lifetime",
        holds=lambda s: (
            seconds_of(s.sessions.idle_timeout) == 0
            or 60 <= seconds_of(s.sessions.idle_timeout) <= seconds_of(s.sessions.lifetime)
        ),
    ),
    Rule(
        field="signIn.failureWindow",
        message="signIn.failureWindow must be between 1m and 24h",
        holds=lambda s: 60 <= seconds_of(s.sign_in.failure_window) <= 86400,
    ),
    Rule(
        field="signIn.lockout",
        message="signIn.lockout must be between 1s and signIn.failureWindow",
        holds=lambda s: 1 <= seconds_of(s.sign_in.lockout) <= seconds_of(s.sign_in.failure_window),
    ),
    Rule(
        field="signIn.trustedProxies",
        message="signIn.trustedProxies entries must be IP addresses or CIDR networks",
        holds=lambda s: all(_is_network(entry) for entry in s.sign_in.trusted_proxies),
    ),
    Rule(
        field="signIn.passwordPolicy",
        message="signIn.passwordPolicy.minLength must not exceed maxLength",
        holds=lambda s: s.sign_in.password_policy.min_length <= s.sign_in.password_policy.max_length,
        cel="!has(self.signIn) || !has(self.signIn.passwordPolicy) || "
        "(has(self.signIn.passwordPolicy.minLength) ? self.signIn.passwordPolicy.minLength : 8) <= "
        "(has(self.signIn.passwordPolicy.maxLength) ? self.signIn.passwordPolicy.maxLength : 256)",
    ),
    Rule(
        field="workloadIdentity.trustedIssuers",
        message="workloadIdentity.trustedIssuers cannot be named kubernetes: that name is the AuthServer's "
        "own cluster (workloadIdentity.kubernetes)",
        holds=lambda s: all(i.name != KUBERNETES_ISSUER for i in s.workload_identity.trusted_issuers),
        cel="!has(self.workloadIdentity) || !has(self.workloadIdentity.trustedIssuers)"
        f" || self.workloadIdentity.trustedIssuers.all(i, i.name != '{KUBERNETES_ISSUER}')",
    ),
    Rule(
        field="tokens.keyRotationInterval",
        message="tokens.keyRotationInterval must be at least 1h (verifiers must fetch the next key "
        "before it signs)",
        holds=lambda s: seconds_of(s.tokens.key_rotation_interval) >= 3600,
    ),
    *IDENTITY_PROVIDER_RULES,
)


def _redirects_on_loopback_only_for_http(spec: OAuthClientSpec) -> bool:
    return all(not uri.startswith("http://") or re.match(LOOPBACK_HTTP, uri) for uri in spec.redirect_uris)


def _post_logout_redirects_on_loopback_only_for_http(spec: OAuthClientSpec) -> bool:
    uris = spec.post_logout_redirect_uris
    return all(not uri.startswith("http://") or re.match(LOOPBACK_HTTP, uri) for uri in uris)


# CEL of spec.authentication (self = spec); `method` is defaulted by the API server, but a rule must hold
# for a spec written without it too.
_AUTH = "self.authentication"
_METHOD = f"(has({_AUTH}.method) ? {_AUTH}.method : 'ClientSecret')"
_NO_AUTH = f"!has({_AUTH})"


def _jwks_sources(spec: OAuthClientSpec) -> int:
    auth = spec.authentication
    return sum(source is not None for source in (auth.jwks, auth.jwks_config_map_ref, auth.jwks_uri))


def _inline_keys_public(spec: OAuthClientSpec) -> bool:
    jwks = spec.authentication.jwks
    return jwks is None or not any(member in key for key in jwks.keys for member in PRIVATE_JWK_MEMBERS)


_PRIVATE_MEMBERS_CEL = "[" + ", ".join(f"'{member}'" for member in PRIVATE_JWK_MEMBERS) + "]"

OAUTHCLIENT_AUTHENTICATION_RULES: tuple[Rule[OAuthClientSpec], ...] = (
    Rule(
        field="authentication.method",
        message="public clients have no credentials: authentication.method must be ClientSecret (the "
        "default), or make the client confidential",
        holds=lambda s: s.type != "public" or not s.secretless,
        cel=f"self.type != 'public' || {_NO_AUTH} || {_METHOD} == 'ClientSecret'",
    ),
    Rule(
        field="authentication",
        message="PrivateKeyJWT needs the client's public keys: exactly one of authentication.jwks, "
        "authentication.jwksConfigMapRef or authentication.jwksUri",
        holds=lambda s: s.authentication.method != "PrivateKeyJWT" or _jwks_sources(s) == 1,
        cel=f"{_NO_AUTH} || {_METHOD} != 'PrivateKeyJWT' || (has({_AUTH}.jwks) ? 1 : 0)"
        f" + (has({_AUTH}.jwksConfigMapRef) ? 1 : 0) + (has({_AUTH}.jwksUri) ? 1 : 0) == 1",
    ),
    Rule(
        field="authentication",
        message="authentication.jwks, jwksConfigMapRef, jwksUri and signingAlgorithm are used only with "
        "method PrivateKeyJWT",
        holds=lambda s: (
            s.authentication.method == "PrivateKeyJWT"
            or (_jwks_sources(s) == 0 and s.authentication.signing_algorithm is None)
        ),
        cel=f"{_NO_AUTH} || {_METHOD} == 'PrivateKeyJWT' || (!has({_AUTH}.jwks)"
        f" && !has({_AUTH}.jwksConfigMapRef) && !has({_AUTH}.jwksUri) && !has({_AUTH}.signingAlgorithm))",
        reason="FieldValueForbidden",
    ),
    Rule(
        field="authentication.jwks.keys",
        message="authentication.jwks must hold public keys only: remove the private members (d, p, q, dp, "
        "dq, qi, oth, k)",
        holds=_inline_keys_public,
        cel=f"{_NO_AUTH} || !has({_AUTH}.jwks) || {_AUTH}.jwks.keys.all(key, "
        f"!{_PRIVATE_MEMBERS_CEL}.exists(member, member in key))",
    ),
    Rule(
        field="authentication.serviceAccountName",
        message="method ServiceAccount needs authentication.serviceAccountName (a ServiceAccount in this "
        "OAuthClient's namespace)",
        holds=lambda s: (
            s.authentication.method != "ServiceAccount" or s.authentication.service_account_name is not None
        ),
        cel=f"{_NO_AUTH} || {_METHOD} != 'ServiceAccount' || has({_AUTH}.serviceAccountName)",
        reason="FieldValueRequired",
    ),
    Rule(
        field="authentication",
        message="authentication.serviceAccountName and issuer are used only with method ServiceAccount",
        holds=lambda s: (
            s.authentication.method == "ServiceAccount"
            or (s.authentication.service_account_name is None and s.authentication.issuer is None)
        ),
        cel=f"{_NO_AUTH} || {_METHOD} == 'ServiceAccount'"
        f" || (!has({_AUTH}.serviceAccountName) && !has({_AUTH}.issuer))",
        reason="FieldValueForbidden",
    ),
    Rule(
        field="tokenEndpointAuthMethod",
        message="tokenEndpointAuthMethod pins a secret method: it is used only with authentication.method "
        "ClientSecret",
        holds=lambda s: not s.secretless or s.token_endpoint_auth_method is None,
        cel=f"{_NO_AUTH} || {_METHOD} == 'ClientSecret' || !has(self.tokenEndpointAuthMethod)",
        reason="FieldValueForbidden",
    ),
    Rule(
        field="secret.policy",
        message="a secretless client (PrivateKeyJWT, ServiceAccount) has no secret to supply: "
        "secret.policy must be Generate",
        holds=lambda s: not s.secretless or s.secret is None or s.secret.policy == "Generate",
        cel=f"{_NO_AUTH} || {_METHOD} == 'ClientSecret' || !has(self.secret)"
        " || !has(self.secret.policy) || self.secret.policy == 'Generate'",
    ),
)

OAUTHCLIENT_RULES: tuple[Rule[OAuthClientSpec], ...] = (
    Rule(
        field="secret",
        message="public clients have no secret: remove spec.secret, or make the client confidential",
        holds=lambda s: s.type != "public" or s.secret is None,
        cel="self.type != 'public' || !has(self.secret)",
        reason="FieldValueForbidden",
    ),
    Rule(
        field="tokenEndpointAuthMethod",
        message="public clients authenticate with tokenEndpointAuthMethod none",
        holds=lambda s: s.type != "public" or s.token_endpoint_auth_method in (None, "none"),
        cel="self.type != 'public' || !has(self.tokenEndpointAuthMethod)"
        " || self.tokenEndpointAuthMethod == 'none'",
    ),
    Rule(
        field="pkce",
        message="public clients always use PKCE: remove spec.pkce or set it to Required",
        holds=lambda s: s.type != "public" or s.pkce == "Required",
        cel="self.type != 'public' || !has(self.pkce) || self.pkce == 'Required'",
    ),
    Rule(
        field="tokenEndpointAuthMethod",
        message="confidential clients authenticate with client_secret_basic or client_secret_post, not none",
        holds=lambda s: s.type != "confidential" or s.token_endpoint_auth_method != "none",  # noqa: S105
        cel="self.type != 'confidential' || !has(self.tokenEndpointAuthMethod)"
        " || self.tokenEndpointAuthMethod != 'none'",
    ),
    Rule(
        field="grantTypes",
        message="public clients cannot use client_credentials (it needs a secret)",
        holds=lambda s: s.type != "public" or "client_credentials" not in s.grant_types,
        cel="self.type != 'public' || !('client_credentials' in self.grantTypes)",
    ),
    Rule(
        field="redirectUris",
        message="authorization_code requires at least one entry in redirectUris",
        holds=lambda s: "authorization_code" not in s.grant_types or bool(s.redirect_uris),
        cel="!('authorization_code' in self.grantTypes)"
        " || (has(self.redirectUris) && size(self.redirectUris) > 0)",
        reason="FieldValueRequired",
    ),
    Rule(
        field="redirectUris",
        message="redirectUris are used only by authorization_code: add it to grantTypes or remove them",
        holds=lambda s: not s.redirect_uris or "authorization_code" in s.grant_types,
        cel="!has(self.redirectUris) || size(self.redirectUris) == 0"
        " || 'authorization_code' in self.grantTypes",
    ),
    Rule(
        field="grantTypes",
        message="refresh_token requires authorization_code in grantTypes",
        holds=lambda s: "refresh_token" not in s.grant_types or "authorization_code" in s.grant_types,
        cel="!('refresh_token' in self.grantTypes) || 'authorization_code' in self.grantTypes",
    ),
    Rule(
        field="redirectUris",
        message="http redirect URIs are allowed only for loopback hosts (localhost, 127.0.0.1, [::1]); "
        "use https",
        holds=_redirects_on_loopback_only_for_http,
        cel=f"!has(self.redirectUris) || self.redirectUris.all(u, !u.startsWith('http://') || "
        f"u.matches(r'{LOOPBACK_HTTP}'))",
    ),
    Rule(
        field="backchannelLogout.uri",
        message="an http backchannelLogout.uri is allowed only for loopback hosts (localhost, 127.0.0.1, "
        "[::1]); use https",
        holds=lambda s: (
            s.backchannel_logout is None
            or not s.backchannel_logout.uri.startswith("http://")
            or bool(re.match(LOOPBACK_HTTP, s.backchannel_logout.uri))
        ),
        cel=f"!has(self.backchannelLogout) || !self.backchannelLogout.uri.startsWith('http://') || "
        f"self.backchannelLogout.uri.matches(r'{LOOPBACK_HTTP}')",
    ),
    Rule(
        field="postLogoutRedirectUris",
        message="http post-logout redirect URIs are allowed only for loopback hosts (localhost, 127.0.0.1, "
        "[::1]); use https",
        holds=_post_logout_redirects_on_loopback_only_for_http,
        cel=f"!has(self.postLogoutRedirectUris) || self.postLogoutRedirectUris.all(u, "
        f"!u.startsWith('http://') || u.matches(r'{LOOPBACK_HTTP}'))",
    ),
    Rule(
        field="grantTypes",
        message="public clients cannot use token exchange (they cannot authenticate)",
        holds=lambda s: s.type != "public" or TOKEN_EXCHANGE not in s.grant_types,
        cel=f"self.type != 'public' || !('{TOKEN_EXCHANGE}' in self.grantTypes)",
    ),
    Rule(
        field="tokenExchange",
        message=f"tokenExchange is used only by token exchange: add {TOKEN_EXCHANGE} to grantTypes or "
        "remove it",
        holds=lambda s: s.token_exchange is None or TOKEN_EXCHANGE in s.grant_types,
        cel=f"!has(self.tokenExchange) || '{TOKEN_EXCHANGE}' in self.grantTypes",
    ),
    Rule(
        field="rateLimit.requestsPerSecond",
        message="rateLimit.requestsPerSecond must be above 0 (remove rateLimit for the AuthServer's default)",
        holds=lambda s: s.rate_limit is None or s.rate_limit.requests_per_second > 0,
        cel="!has(self.rateLimit) || double(self.rateLimit.requestsPerSecond) > 0.0",
    ),
    Rule(
        field="accessTokenTTL",
        message="accessTokenTTL must be between 1m and 24h",
        holds=lambda s: s.access_token_ttl is None or 60 <= seconds_of(s.access_token_ttl) <= 86400,
    ),
    *OAUTHCLIENT_AUTHENTICATION_RULES,
)


def _is_network(entry: str) -> bool:
    # The server refuses to start on an entry it cannot parse (AUTHSERVER_TRUSTED_PROXIES): catch it here.
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return True


def validate_name(name: str) -> list[Problem]:
    if len(name) <= MAX_NAME_LENGTH and re.match(NAME_PATTERN, name):
        return []
    return [Problem("metadata.name", NAME_MESSAGE)]


def validate_semantics(spec: AuthServerSpec | OAuthClientSpec) -> list[Problem]:
    """Every cross-field rule the spec breaks (an empty list: the spec is fine)."""
    rules: tuple[Rule[Any], ...] = AUTHSERVER_RULES if isinstance(spec, AuthServerSpec) else OAUTHCLIENT_RULES
    return [Problem(f"spec.{rule.field}", rule.message) for rule in rules if not rule.holds(spec)]


def structural_problems(error: ValidationError) -> list[Problem]:
    """pydantic's errors, pointed at spec fields as users spell them."""
    problems = []
    for item in error.errors(include_url=False):
        location = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in item["loc"])
        problems.append(Problem(f"spec{location}", item["msg"]))
    return problems


def parse_spec(model: type[S], raw: Any, name: str | None = None) -> tuple[S | None, list[Problem]]:
    """Parse a spec as read from the API: the model, or None and every problem found. ``name`` is the
    object's metadata.name, checked for AuthServers (whose children are named after it)."""
    problems = validate_name(name) if name is not None and model is AuthServerSpec else []
    try:
        spec = model.model_validate(raw or {})
    except ValidationError as error:
        return None, problems + structural_problems(error)
    if isinstance(spec, AuthServerSpec | OAuthClientSpec):
        problems += validate_semantics(spec)
    return (spec if not problems else None), problems
