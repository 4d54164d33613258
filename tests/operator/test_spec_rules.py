"""Invalid specs are rejected with a message that says what to fix: by the CRD schema (structural), by its
CEL rules, and by the operator's own ``validate_semantics`` (the same rules, run on every reconcile)."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from authyard_operator.spec import AuthServerSpec, OAuthClientSpec, parse_spec, validate_semantics
from authyard_operator.spec.rules import AUTHSERVER_RULES, NAME_CEL, OAUTHCLIENT_RULES, validate_name

from tests.operator.support import DB, apply_defaults, schema_of, strict

MODELS = {"AuthServer": AuthServerSpec, "OAuthClient": OAuthClientSpec}
CLIENT = {"authServerRef": {"name": "auth"}}
JWKS_URI = {"jwksUri": "https://keys.example.com/jwks.json"}
EC_KEY = {"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
          "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0", "kid": "k1"}  # fmt: skip
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
SPA = {**CLIENT, "type": "public", "grantTypes": ["authorization_code"], "redirectUris": ["https://app/cb"]}
OIDC_UPSTREAM = {
    "issuer": "https://login.example.com",
    "clientId": "authyard",
    "clientSecretRef": {"name": "upstream", "key": "secret"},
}
LDAP_UPSTREAM = {
    "url": "ldaps://ldap.example.com",
    "bindDN": "cn=reader,dc=example,dc=com",
    "bindPasswordRef": {"name": "ldap", "key": "password"},
    "userSearch": {"baseDN": "ou=people,dc=example,dc=com"},
}


def _upstreams(*providers: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {"identityProviders": {"providers": list(providers), **options}}


# (kind, spec, field the problem points at, words of the message, who rejects it)
# who: "schema" = the CRD's OpenAPI schema (and pydantic); "cel" = a CEL rule in the CRD and
# validate_semantics; "operator" = validate_semantics only (CEL cannot express it).
INVALID: list[tuple[str, dict[str, Any], str, str, str]] = [
    ("AuthServer", {"replicas": 0}, "spec.replicas", "greater than or equal to 1", "schema"),
    ("AuthServer", {"replicas": "two"}, "spec.replicas", "integer", "schema"),
    ("AuthServer", {"issuer": "ftp://auth"}, "spec.issuer", "pattern", "schema"),
    ("AuthServer", {"issuer": "https://auth.example.com/"}, "spec.issuer", "pattern", "schema"),
    (
        "AuthServer",
        {"tokens": {"signingAlgorithm": "HS256"}},
        "spec.tokens.signingAlgorithm",
        "ES256",
        "schema",
    ),
    (
        "AuthServer",
        {"tokens": {"accessTokenTTL": "15 minutes"}},
        "spec.tokens.accessTokenTTL",
        "pattern",
        "schema",
    ),
    ("AuthServer", {"autoscaling": {"maxReplicas": 101}}, "spec.autoscaling.maxReplicas", "100", "schema"),
    ("AuthServer", {"database": {"maxConnections": 10}}, "spec.database.urlSecretRef", "required", "schema"),
    (
        "AuthServer",
        {"database": {**DB, "pooler": {"type": "pgpool"}}},
        "spec.database.pooler.type",
        "pgbouncer",
        "schema",
    ),
    (
        "AuthServer",
        {"database": {**DB, "writeConnections": 0}},
        "spec.database.writeConnections",
        "greater than or equal to 1",
        "schema",
    ),
    (
        "AuthServer",
        {"database": {**DB, "writeConnections": 17}},
        "spec.database.writeConnections",
        "less than or equal to 16",
        "schema",
    ),
    ("AuthServer", {"replicaz": 2}, "spec.replicaz", "not permitted", "schema"),
    (
        "AuthServer",
        {"resources": {"requests": {"cpu": "lots"}}},
        "spec.resources.requests.cpu",
        "quantity",
        "schema",
    ),
    (
        "AuthServer",
        {"database": DB, "autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}},
        "spec.autoscaling.minReplicas",
        "minReplicas must be less than or equal to autoscaling.maxReplicas",
        "cel",
    ),
    ("AuthServer", {"replicas": 3}, "spec.replicas", "embedded SQLite", "cel"),
    ("AuthServer", {"autoscaling": {"enabled": True}}, "spec.autoscaling.enabled", "cannot autoscale", "cel"),
    (
        "AuthServer",
        {"database": DB, "autoscaling": {"enabled": True}, "resources": {"limits": {"memory": "1Gi"}}},
        "spec.resources.requests",
        "cpu and memory requests",
        "cel",
    ),
    (
        "AuthServer",
        {"database": DB, "capacity": {"peakTokensPerSecond": 0}},
        "spec.capacity.peakTokensPerSecond",
        "greater than or equal to 1",
        "schema",
    ),
    (
        "AuthServer",
        {"database": DB, "capacity": {}},
        "spec.capacity.peakTokensPerSecond",
        "required",
        "schema",
    ),
    (
        "AuthServer",
        {"database": DB, "capacity": {"peakTokensPerSecond": 100, "perPodTokensPerSecond": 0}},
        "spec.capacity.perPodTokensPerSecond",
        "greater than or equal to 1",
        "schema",
    ),
    (
        "AuthServer",
        {"database": DB, "capacity": {"peakTokensPerSecond": 100, "headroom": 0.8}},
        "spec.capacity.headroom",
        "greater than or equal to 1",
        "schema",
    ),
    (
        "AuthServer",
        {"database": DB, "capacity": {"peakTokensPerSecond": 100, "maxCores": 0}},
        "spec.capacity.maxCores",
        "greater than or equal to 1",
        "schema",
    ),
    (
        "AuthServer",
        {"database": DB, "capacity": {"peakTokensPerSecond": 100, "minReplicasForAvailability": 0}},
        "spec.capacity.minReplicasForAvailability",
        "greater than or equal to 1",
        "schema",
    ),
    (
        "AuthServer",
        {"capacity": {"peakTokensPerSecond": 100}},
        "spec.capacity",
        "embedded SQLite (no spec.database) runs one",
        "cel",
    ),
    (
        "AuthServer",
        {
            "database": DB,
            "capacity": {"peakTokensPerSecond": 100},
            "resources": {"requests": {"cpu": "2", "memory": "1Gi"}},
        },
        "spec.resources.requests",
        "the plan sets the CPU request",
        "cel",
    ),
    (
        "AuthServer",
        {
            "database": DB,
            "capacity": {"peakTokensPerSecond": 100},
            "resources": {"limits": {"memory": "1Gi"}},
        },
        "spec.resources.requests",
        "the plan sets the CPU request",
        "cel",
    ),
    (
        "AuthServer",
        {"tokens": {"accessTokenTTL": "30s"}},
        "spec.tokens.accessTokenTTL",
        "between 1m and 24h",
        "operator",
    ),
    (
        "AuthServer",
        {"tokens": {"accessTokenTTL": "2h", "refreshTokenTTL": "1h"}},
        "spec.tokens.refreshTokenTTL",
        "longer than tokens.accessTokenTTL",
        "operator",
    ),
    (
        "AuthServer",
        {"tokens": {"keyRotationInterval": "10m"}},
        "spec.tokens.keyRotationInterval",
        "at least 1h",
        "operator",
    ),
    (
        "AuthServer",
        {"signIn": {"trustedProxies": ["10.0.0.300/8"]}},
        "spec.signIn.trustedProxies",
        "IP addresses or CIDR networks",
        "operator",
    ),
    (
        "AuthServer",
        {"signIn": {"trustedProxies": ["ingress.example.com"]}},
        "spec.signIn.trustedProxies[0]",
        "pattern",
        "schema",
    ),
    (
        "AuthServer",
        {"signIn": {"failureWindow": "15m", "lockout": "1h"}},
        "spec.signIn.lockout",
        "between 1s and signIn.failureWindow",
        "operator",
    ),
    (
        "AuthServer",
        {"signIn": {"passwordPolicy": {"minLength": 40, "maxLength": 32}}},
        "spec.signIn.passwordPolicy",
        "minLength must not exceed maxLength",
        "cel",
    ),
    ("OAuthClient", {}, "spec.authServerRef", "required", "schema"),
    ("OAuthClient", {**CLIENT, "type": "secretive"}, "spec.type", "confidential", "schema"),
    (
        "OAuthClient",
        {**CLIENT, "grantTypes": ["password"]},
        "spec.grantTypes[0]",
        "client_credentials",
        "schema",
    ),
    ("OAuthClient", {**CLIENT, "grantTypes": []}, "spec.grantTypes", "at least 1", "schema"),
    (
        "OAuthClient",
        {**SPA, "redirectUris": ["https://app/cb#frag"]},
        "spec.redirectUris[0]",
        "pattern",
        "schema",
    ),
    ("OAuthClient", {**CLIENT, "scopes": ["a b"]}, "spec.scopes[0]", "pattern", "schema"),
    (
        "OAuthClient",
        {**CLIENT, "secret": {"name": "x", "policy": "Maybe"}},
        "spec.secret.policy",
        "Generate",
        "schema",
    ),
    ("OAuthClient", {**CLIENT, "accessTokenTTL": "5 min"}, "spec.accessTokenTTL", "pattern", "schema"),
    (
        "OAuthClient",
        {**SPA, "secret": {"name": "spa-secret"}},
        "spec.secret",
        "public clients have no secret",
        "cel",
    ),
    (
        "OAuthClient",
        {**SPA, "tokenEndpointAuthMethod": "client_secret_basic"},
        "spec.tokenEndpointAuthMethod",
        "public clients authenticate with tokenEndpointAuthMethod none",
        "cel",
    ),
    (
        "OAuthClient",
        {**CLIENT, "tokenEndpointAuthMethod": "none"},
        "spec.tokenEndpointAuthMethod",
        "confidential clients authenticate with client_secret_basic",
        "cel",
    ),
    (
        "OAuthClient",
        {**CLIENT, "type": "public", "grantTypes": ["client_credentials"]},
        "spec.grantTypes",
        "public clients cannot use client_credentials",
        "cel",
    ),
    (
        "OAuthClient",
        {**CLIENT, "grantTypes": ["authorization_code"]},
        "spec.redirectUris",
        "authorization_code requires at least one entry in redirectUris",
        "cel",
    ),
    (
        "OAuthClient",
        {**CLIENT, "redirectUris": ["https://app/cb"]},
        "spec.redirectUris",
        "used only by authorization_code",
        "cel",
    ),
    (
        "OAuthClient",
        {**CLIENT, "grantTypes": ["client_credentials", "refresh_token"]},
        "spec.grantTypes",
        "refresh_token requires authorization_code",
        "cel",
    ),
    (
        "OAuthClient",
        {**SPA, "redirectUris": ["http://app.example.com/cb"]},
        "spec.redirectUris",
        "only for loopback hosts",
        "cel",
    ),
    (
        "OAuthClient",
        {**CLIENT, "backchannelLogout": {"uri": "http://app.example.com/logout"}},
        "spec.backchannelLogout.uri",
        "only for loopback hosts",
        "cel",
    ),
    (
        "OAuthClient",
        {**CLIENT, "backchannelLogout": {"uri": "https://app.example.com/logout#frag"}},
        "spec.backchannelLogout.uri",
        "pattern",
        "schema",
    ),
    (
        "OAuthClient",
        {**CLIENT, "backchannelLogout": {"uri": "/logout"}},
        "spec.backchannelLogout.uri",
        "pattern",
        "schema",
    ),
    (
        "OAuthClient",
        {**CLIENT, "backchannelLogout": {"sessionRequired": True}},
        "spec.backchannelLogout.uri",
        "required",
        "schema",
    ),
    (
        "OAuthClient",
        {**SPA, "grantTypes": ["authorization_code", TOKEN_EXCHANGE]},
        "spec.grantTypes",
        "public clients cannot use token exchange",
        "cel",
    ),
    (
        "OAuthClient",
        {**CLIENT, "tokenExchange": {"audiences": ["https://b.example.com"]}},
        "spec.tokenExchange",
        "tokenExchange is used only by token exchange",
        "cel",
    ),
    (
        "OAuthClient",
        {**CLIENT, "grantTypes": [TOKEN_EXCHANGE], "tokenExchange": {"audiences": ["two words"]}},
        "spec.tokenExchange.audiences[0]",
        "pattern",
        "schema",
    ),
    (
        "OAuthClient",
        {**CLIENT, "grantTypes": [TOKEN_EXCHANGE], "tokenExchange": {"allowImpersonation": "sometimes"}},
        "spec.tokenExchange.allowImpersonation",
        "boolean",
        "schema",
    ),
    (
        "OAuthClient",
        {**CLIENT, "grantTypes": [TOKEN_EXCHANGE], "tokenExchange": {"impersonate": True}},
        "spec.tokenExchange.impersonate",
        "xtra",
        "schema",
    ),
    (
        "OAuthClient",
        {**CLIENT, "rateLimit": {"requestsPerSecond": 0, "burst": 5}},
        "spec.rateLimit.requestsPerSecond",
        "must be above 0",
        "cel",
    ),
    (
        "OAuthClient",
        {**CLIENT, "rateLimit": {"requestsPerSecond": 5, "burst": 0}},
        "spec.rateLimit.burst",
        "greater than or equal to 1",
        "schema",
    ),
    (
        "OAuthClient",
        {**CLIENT, "rateLimit": {"requestsPerSecond": 5}},
        "spec.rateLimit.burst",
        "required",
        "schema",
    ),
    (
        "AuthServer",
        {"rateLimits": {"perClient": {"requestsPerSecond": -1}}},
        "spec.rateLimits.perClient.requestsPerSecond",
        "greater than or equal to 0",
        "schema",
    ),
    (
        "AuthServer",
        {"rateLimits": {"perAddress": {"burst": 0}}},
        "spec.rateLimits.perAddress.burst",
        "greater than or equal to 1",
        "schema",
    ),
    (
        "OAuthClient",
        {**CLIENT, "accessTokenTTL": "48h"},
        "spec.accessTokenTTL",
        "between 1m and 24h",
        "operator",
    ),
    (
        "AuthServer",
        _upstreams({"name": "corp", "displayName": "Corp", "oidc": OIDC_UPSTREAM, "ldap": LDAP_UPSTREAM}),
        "spec.identityProviders.providers",
        "exactly one of oidc and ldap",
        "cel",
    ),
    (
        "AuthServer",
        _upstreams({"name": "corp", "displayName": "Corp"}),
        "spec.identityProviders.providers",
        "exactly one of oidc and ldap",
        "cel",
    ),
    (
        "AuthServer",
        _upstreams(
            {"name": "corp", "displayName": "Corp", "oidc": OIDC_UPSTREAM},
            {"name": "corp", "displayName": "Corp again", "ldap": LDAP_UPSTREAM},
        ),
        "spec.identityProviders.providers",
        "names must be unique",
        "operator",  # a list-map keyed by name: the API server refuses the duplicate key itself
    ),
    (
        "AuthServer",
        _upstreams(
            {
                "name": "corp",
                "displayName": "Corp",
                "ldap": {**LDAP_UPSTREAM, "url": "ldap://ldap.example.com"},
            }
        ),
        "spec.identityProviders.providers",
        "over TLS",
        "cel",
    ),
    (
        "AuthServer",
        _upstreams(
            {
                "name": "corp",
                "displayName": "Corp",
                "ldap": {
                    **LDAP_UPSTREAM,
                    "caConfigMapRef": {"name": "ca", "key": "ca.crt"},
                    "caSecretRef": {"name": "ca", "key": "ca.crt"},
                },
            }
        ),
        "spec.identityProviders.providers",
        "not both",
        "cel",
    ),
    (
        "AuthServer",
        _upstreams(localAccounts=False),
        "spec.identityProviders.localAccounts",
        "a way to sign in",
        "cel",
    ),
    (
        "AuthServer",
        _upstreams(
            {"name": "corp", "displayName": "Corp", "oidc": {**OIDC_UPSTREAM, "issuer": "http://idp"}}
        ),
        "spec.identityProviders.providers[0].oidc.issuer",
        "pattern",
        "schema",
    ),
    (
        "AuthServer",
        _upstreams({"name": "Corp!", "displayName": "Corp", "oidc": OIDC_UPSTREAM}),
        "spec.identityProviders.providers[0].name",
        "pattern",
        "schema",
    ),
    (
        "AuthServer",
        _upstreams(
            {
                "name": "corp",
                "displayName": "Corp",
                "ldap": {**LDAP_UPSTREAM, "userSearch": {"baseDN": "dc=x", "filter": "uid=*"}},
            }
        ),
        "spec.identityProviders.providers[0].ldap.userSearch.filter",
        "pattern",
        "schema",
    ),
    # spec.authentication: schema first, then every CEL rule.
    (
        "OAuthClient",
        {**CLIENT, "authentication": {"method": "Kerberos"}},
        "spec.authentication.method",
        "ClientSecret",
        "schema",
    ),
    (
        "OAuthClient",
        {**CLIENT, "authentication": {"method": "PrivateKeyJWT", "jwksUri": "http://keys.example.com/jwks"}},
        "spec.authentication.jwksUri",
        "pattern",
        "schema",
    ),
    (
        "OAuthClient",
        {**CLIENT, "authentication": {"method": "ServiceAccount", "serviceAccountName": "Orders_SA"}},
        "spec.authentication.serviceAccountName",
        "pattern",
        "schema",
    ),
    (
        "OAuthClient",
        {
            **CLIENT,
            "authentication": {"method": "ServiceAccount", "serviceAccountName": "o", "issuer": "A.B"},
        },
        "spec.authentication.issuer",
        "pattern",
        "schema",
    ),
    (
        "OAuthClient",
        {**CLIENT, "authentication": {"method": "PrivateKeyJWT", "jwks": {"keys": []}}},
        "spec.authentication.jwks.keys",
        "at least 1",
        "schema",
    ),
    (
        "OAuthClient",
        {**CLIENT, "authentication": {"method": "PrivateKeyJWT", "jwks": {"keys": [{"kty": "EC", "n": 1}]}}},
        "spec.authentication.jwks.keys[0].n",
        "string",
        "schema",
    ),
    (
        "OAuthClient",
        {**CLIENT, "authentication": {"method": "PrivateKeyJWT", "signingAlgorithm": "HS256", **JWKS_URI}},
        "spec.authentication.signingAlgorithm",
        "RS256",
        "schema",
    ),
    (
        "OAuthClient",
        {**CLIENT, "authentication": {"method": "PrivateKeyJWT", "jwksConfigMapRef": {"name": "keys"}}},
        "spec.authentication.jwksConfigMapRef.key",
        "required",
        "schema",
    ),
    (
        "OAuthClient",
        {**SPA, "authentication": {"method": "PrivateKeyJWT", **JWKS_URI}},
        "spec.authentication.method",
        "public clients have no credentials",
        "cel",
    ),
    (
        "OAuthClient",
        {**CLIENT, "authentication": {"method": "PrivateKeyJWT"}},
        "spec.authentication",
        "exactly one of authentication.jwks",
        "cel",
    ),
    (
        "OAuthClient",
        {**CLIENT, "authentication": {"method": "PrivateKeyJWT", **JWKS_URI, "jwks": {"keys": [EC_KEY]}}},
        "spec.authentication",
        "exactly one of authentication.jwks",
        "cel",
    ),
    (
        "OAuthClient",
        {**CLIENT, "authentication": {"method": "ServiceAccount", "serviceAccountName": "o", **JWKS_URI}},
        "spec.authentication",
        "used only with method PrivateKeyJWT",
        "cel",
    ),
    (
        "OAuthClient",
        {**CLIENT, "authentication": {"signingAlgorithm": "ES256"}},
        "spec.authentication",
        "used only with method PrivateKeyJWT",
        "cel",
    ),
    (
        "OAuthClient",
        {
            **CLIENT,
            "authentication": {"method": "PrivateKeyJWT", "jwks": {"keys": [{**EC_KEY, "d": "c2VjcmV0"}]}},
        },
        "spec.authentication.jwks.keys",
        "public keys only",
        "cel",
    ),
    (
        "OAuthClient",
        {**CLIENT, "authentication": {"method": "ServiceAccount"}},
        "spec.authentication.serviceAccountName",
        "needs authentication.serviceAccountName",
        "cel",
    ),
    (
        "OAuthClient",
        {**CLIENT, "authentication": {"method": "PrivateKeyJWT", **JWKS_URI, "serviceAccountName": "o"}},
        "spec.authentication",
        "used only with method ServiceAccount",
        "cel",
    ),
    (
        "OAuthClient",
        {**CLIENT, "authentication": {"issuer": "kubernetes"}},
        "spec.authentication",
        "used only with method ServiceAccount",
        "cel",
    ),
    (
        "OAuthClient",
        {
            **CLIENT,
            "tokenEndpointAuthMethod": "client_secret_post",
            "authentication": {"method": "ServiceAccount", "serviceAccountName": "o"},
        },
        "spec.tokenEndpointAuthMethod",
        "used only with authentication.method ClientSecret",
        "cel",
    ),
    (
        "OAuthClient",
        {
            **CLIENT,
            "secret": {"name": "creds", "policy": "RequireExisting"},
            "authentication": {"method": "PrivateKeyJWT", **JWKS_URI},
        },
        "spec.secret.policy",
        "secret.policy must be Generate",
        "cel",
    ),
    # AuthServer spec.workloadIdentity
    (
        "AuthServer",
        {
            "workloadIdentity": {
                "trustedIssuers": [{"name": "kubernetes", "issuer": "https://k8s.example.com"}]
            }
        },
        "spec.workloadIdentity.trustedIssuers",
        "cannot be named kubernetes",
        "cel",
    ),
    (
        "AuthServer",
        {"workloadIdentity": {"trustedIssuers": [{"name": "other", "issuer": "http://k8s.example.com"}]}},
        "spec.workloadIdentity.trustedIssuers[0].issuer",
        "pattern",
        "schema",
    ),
    (
        "AuthServer",
        {
            "workloadIdentity": {
                "trustedIssuers": [
                    {
                        "name": "other",
                        "issuer": "https://k8s.example.com",
                        "jwksUri": "http://k8s.example.com/keys",
                    }
                ]
            }
        },
        "spec.workloadIdentity.trustedIssuers[0].jwksUri",
        "pattern",
        "schema",
    ),
    (
        "AuthServer",
        {"workloadIdentity": {"trustedIssuers": [{"issuer": "https://k8s.example.com"}]}},
        "spec.workloadIdentity.trustedIssuers[0].name",
        "required",
        "schema",
    ),
]


def _id(case: tuple[str, dict[str, Any], str, str, str]) -> str:
    return f"{case[0]}:{case[2]}:{case[4]}"


@pytest.mark.parametrize(
    ("kind", "spec", "field", "words", "who"), INVALID, ids=[_id(case) for case in INVALID]
)
def test_invalid_spec_is_rejected_with_a_readable_message(
    kind: str, spec: dict[str, Any], field: str, words: str, who: str
) -> None:
    parsed, problems = parse_spec(MODELS[kind], spec, "auth")
    assert parsed is None
    assert any(problem.field == field and words in problem.message for problem in problems), problems
    crd_schema = schema_of(kind)
    document = {
        "apiVersion": "authyard.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "auth"},
        "spec": spec,
    }
    defaulted = {**document, "spec": apply_defaults(crd_schema["properties"]["spec"], spec)}
    if who == "schema":
        with pytest.raises(jsonschema.ValidationError) as rejected:
            jsonschema.validate(defaulted, strict(crd_schema))
        assert rejected.value.message  # jsonschema's own wording, as kubectl would show the API server's
        return
    jsonschema.validate(defaulted, strict(crd_schema))  # structurally fine: a cross-field rule catches it
    cel_messages = [
        rule["message"] for rule in crd_schema["properties"]["spec"].get("x-kubernetes-validations", [])
    ]
    if who == "cel":
        assert any(words in message for message in cel_messages), "the CRD has no CEL rule for this"
    else:
        assert not any(words in message for message in cel_messages)


@pytest.mark.parametrize(
    "spec",
    [
        {},
        {"replicas": 1, "tokens": {"accessTokenTTL": "1h30m", "refreshTokenTTL": "30d"}},
        {"database": DB, "replicas": 4},
        {"database": DB, "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 3}},
        {
            "database": DB,
            "autoscaling": {"enabled": True},
            "resources": {"requests": {"cpu": 1, "memory": "1Gi"}},
        },
        {"autoscaling": {"enabled": False, "minReplicas": 9, "maxReplicas": 2}},  # ignored while disabled
        _upstreams(
            {"name": "corp", "displayName": "Corp", "oidc": OIDC_UPSTREAM},
            {
                "name": "directory",
                "displayName": "Directory",
                "ldap": {**LDAP_UPSTREAM, "url": "ldap://ldap.example.com:389", "startTLS": True},
            },
            localAccounts=False,
        ),
        {"database": DB, "capacity": {"peakTokensPerSecond": 100}},
        {
            "database": DB,
            "capacity": {"peakTokensPerSecond": 5000, "headroom": 1, "maxCores": 4},
            "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 6},
            "resources": {"requests": {"memory": "1Gi"}},
        },
        {"workloadIdentity": {"kubernetes": {"enabled": False}}},
        {
            "workloadIdentity": {
                "trustedIssuers": [
                    {
                        "name": "prod-cluster",
                        "issuer": "https://oidc.prod.example.com/cluster",
                        "audiences": ["https://auth.example.com"],
                        "jwksUri": "https://oidc.prod.example.com/cluster/keys",
                        "caConfigMapRef": {"name": "prod-ca", "key": "ca.crt"},
                    }
                ]
            }
        },
    ],
)
def test_valid_authserver_specs_have_no_problems(spec: dict[str, Any]) -> None:
    assert validate_semantics(AuthServerSpec.model_validate(spec)) == []
    _schema_accepts("AuthServer", spec)


@pytest.mark.parametrize(
    "spec",
    [
        CLIENT,
        {**CLIENT, "authentication": {"method": "ClientSecret"}},
        {**CLIENT, "authentication": {"method": "PrivateKeyJWT", **JWKS_URI, "signingAlgorithm": "ES256"}},
        {**CLIENT, "authentication": {"method": "PrivateKeyJWT", "jwks": {"keys": [EC_KEY]}}},
        {
            **CLIENT,
            "secret": {"name": "orders-connection"},
            "authentication": {
                "method": "PrivateKeyJWT",
                "jwksConfigMapRef": {"name": "k", "key": "jwks.json"},
            },
        },
        {**CLIENT, "authentication": {"method": "ServiceAccount", "serviceAccountName": "orders"}},
        {
            **CLIENT,
            "authentication": {"method": "ServiceAccount", "serviceAccountName": "orders", "issuer": "prod"},
        },
        {**SPA, "grantTypes": ["authorization_code", "refresh_token"]},
        {
            **SPA,
            "redirectUris": [
                "http://localhost:5173/cb",
                "http://127.0.0.1/cb",
                "http://[::1]:8080/",
                "app://cb",
            ],
        },
        {
            **CLIENT,
            "tokenEndpointAuthMethod": "client_secret_post",
            "secret": {"name": "x", "policy": "RequireExisting"},
        },
        {**CLIENT, "grantTypes": ["client_credentials", TOKEN_EXCHANGE]},
        {
            **CLIENT,
            "grantTypes": [TOKEN_EXCHANGE],
            "tokenExchange": {"audiences": ["https://b.example.com", "billing"], "allowImpersonation": True},
        },
    ],
)
def test_valid_client_specs_have_no_problems(spec: dict[str, Any]) -> None:
    assert validate_semantics(OAuthClientSpec.model_validate(spec)) == []
    _schema_accepts("OAuthClient", spec)


def _schema_accepts(kind: str, spec: dict[str, Any]) -> None:
    crd_schema = schema_of(kind)
    defaulted = apply_defaults(crd_schema["properties"]["spec"], spec)
    document = {"apiVersion": "authyard.dev/v1alpha1", "kind": kind, "metadata": {"name": "auth"}}
    jsonschema.validate({**document, "spec": defaulted}, strict(crd_schema))


def test_effective_client_defaults() -> None:
    confidential = OAuthClientSpec.model_validate(CLIENT)
    assert confidential.effective_auth_method is None  # either secret method
    assert confidential.effective_secret("orders").name == "orders-oauth-client"
    public = OAuthClientSpec.model_validate(SPA)
    assert public.effective_auth_method == "none" and public.effective_secret("spa") is None


@pytest.mark.parametrize("name", ["auth", "a", "auth-2", "a" * 50])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == []


@pytest.mark.parametrize("name", ["2auth", "Auth", "auth-", "a" * 51, "auth.example"])
def test_invalid_names(name: str) -> None:
    (problem,) = validate_name(name)
    assert problem.field == "metadata.name" and "at most 50 characters" in problem.message
    assert NAME_CEL in str(schema_of("AuthServer")["x-kubernetes-validations"])


def _fields_in(schema: dict[str, Any], path: list[str]) -> bool:
    node = schema
    for part in path:
        if part not in node.get("properties", {}):
            return False
        node = node["properties"][part]
    return True


@pytest.mark.parametrize(
    ("kind", "rules"), [("AuthServer", AUTHSERVER_RULES), ("OAuthClient", OAUTHCLIENT_RULES)]
)
def test_cel_rules_only_name_fields_that_exist(kind: str, rules: tuple[Any, ...]) -> None:
    """CEL cannot run here; at least every `self.a.b` it reads and every fieldPath must exist in the schema,
    and the parentheses must balance."""
    spec_schema = schema_of(kind)["properties"]["spec"]
    for rule in rules:
        assert _fields_in(spec_schema, rule.field.split(".")), rule.field
        if rule.cel is None:
            continue
        assert rule.cel.count("(") == rule.cel.count(")"), rule.cel
        for reference, call in re.findall(r"self((?:\.[A-Za-z]+)+)(\(?)", rule.cel):
            path = reference.strip(".").split(".")[: -1 if call else None]  # self.list.all(...): a method
            assert _fields_in(spec_schema, path), f"{reference} in {rule.cel}"


def test_every_cel_rule_is_in_the_crd() -> None:
    for kind, rules in (("AuthServer", AUTHSERVER_RULES), ("OAuthClient", OAUTHCLIENT_RULES)):
        in_crd = schema_of(kind)["properties"]["spec"]["x-kubernetes-validations"]
        expected = [
            {"rule": r.cel, "message": r.message, "fieldPath": r.field_path, "reason": r.reason}
            for r in rules
            if r.cel
        ]
        assert in_crd == expected


def test_structural_problems_point_at_spec_fields() -> None:
    _, problems = parse_spec(OAuthClientSpec, {**CLIENT, "scopes": ["ok", "not ok"]})
    assert str(problems[0]).startswith("spec.scopes[1]: String should match pattern")


def test_client_names_are_not_bound_by_the_authserver_name_rule() -> None:
    spec, problems = parse_spec(OAuthClientSpec, CLIENT, "a-rather-long-client-name-" + "x" * 40)
    assert spec is not None and problems == []
    assert "x-kubernetes-validations" not in schema_of("OAuthClient")
    _, problems = parse_spec(AuthServerSpec, {}, "2bad")
    assert [problem.field for problem in problems] == ["metadata.name"]
