"""The OAuthClient custom resource: spec and status models (the CRD schema is generated from these)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from authyard_operator.spec.authserver import GrantType, SigningAlgorithm
from authyard_operator.spec.common import (
    Audience,
    Conditions,
    ConfigMapKeyRef,
    DnsLabel,
    DnsSubdomain,
    Duration,
    RateLimit,
    Scope,
    SpecModel,
)

ClientType = Literal["confidential", "public"]
AuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]
SecretPolicy = Literal["Generate", "RequireExisting"]
# Required: every authorization request carries PKCE (OAuth 2.1). OptionalWithNonce: a confidential client
# that protects its codes with the OpenID Connect nonce may leave PKCE out of OpenID requests
# (RFC 9700 §2.1.1).
PkcePolicy = Literal["Required", "OptionalWithNonce"]

# How the client proves who it is at the token endpoint: a shared secret, a signed JWT (RFC 7523 §2.2,
# OIDC Core §9 private_key_jwt), or its pods' projected Kubernetes service-account token (workload identity).
AuthenticationMethod = Literal["ClientSecret", "PrivateKeyJWT", "ServiceAccount"]
# The JWS algorithms the server accepts in a client assertion (authserver.crypto.client_jwks).
AssertionAlgorithm = Literal["RS256", "PS256", "ES256", "EdDSA"]
DEFAULT_TRUSTED_ISSUER = "kubernetes"  # the AuthServer's own cluster (AuthServer spec.workloadIdentity)
# RFC 7517 §9.2 / RFC 7518 §6: members only private (or symmetric) keys have; never accepted in a spec.
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
# A public JWK: its members as strings (kty, kid, use, alg, crv, n, e, x, y). A key set with array members
# (x5c, key_ops) can be given through jwksConfigMapRef instead.
Jwk = Annotated[dict[str, Annotated[str, Field(max_length=8192)]], Field(min_length=1, max_length=16)]
JwksUri = Annotated[str, Field(pattern=r"^https://[^\s/?#@]+[^\s#]*$", max_length=2048)]

# OAuth 2.1 redirect URIs: absolute (any scheme, so native apps' private schemes work), never a fragment.
RedirectUri = Annotated[str, Field(pattern=r"^[a-zA-Z][a-zA-Z0-9+.-]*:[^\s#]+$", max_length=2048)]
# OpenID Connect Back-Channel Logout 1.0 §2.2: an absolute http(s) URL, a query allowed, never a fragment.
BackchannelLogoutUri = Annotated[str, Field(pattern=r"^https?://[^\s#@/?]+[^\s#]*$", max_length=2048)]


class AuthServerRef(SpecModel):
    """The AuthServer this client registers with."""

    name: DnsLabel = Field(description="Name of the AuthServer.")
    namespace: DnsLabel | None = Field(
        None, description="Namespace of the AuthServer. Absent: the namespace of this OAuthClient."
    )


class ClientSecretSpec(SpecModel):
    """The Secret that carries the client's credentials for applications to mount."""

    name: DnsSubdomain = Field(description="Name of the Secret, in the namespace of this OAuthClient.")
    policy: SecretPolicy = Field(
        "Generate",
        description="Generate: the operator creates the client secret. RequireExisting: the Secret (key "
        "client_secret) is supplied by someone else, e.g. External Secrets; the operator waits for it and "
        "never invents credentials.",
    )
    rotation_grace_period: Duration = Field(
        "1h",
        description="After a client-secret rotation, how long the previous secret keeps working "
        "(Go duration).",
    )


class BackchannelLogoutSpec(SpecModel):
    """OpenID Connect Back-Channel Logout 1.0: where the AuthServer POSTs a logout token when a sign-in
    session this client took part in ends."""

    uri: BackchannelLogoutUri = Field(
        description="The client's back-channel logout URL (backchannel_logout_uri): https, or http only for "
        "loopback hosts; a query is allowed, a fragment is not."
    )
    session_required: bool = Field(
        False,
        description="The client needs the sid claim in logout tokens (backchannel_logout_session_required). "
        "The AuthServer always sends sid.",
    )


class TokenExchangeSpec(SpecModel):
    """The client's token-exchange policy (RFC 8693), for grantTypes with
    urn:ietf:params:oauth:grant-type:token-exchange."""

    audiences: list[Audience] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="The audience and resource values the client may ask an exchanged token for. Empty: "
        "none; the exchanged token keeps the subject token's audience.",
    )
    subject_audiences: list[Audience] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Besides the tokens issued to this client, it may exchange the tokens whose aud holds "
        "one of these: its own identifiers as a resource server.",
    )
    allow_impersonation: bool = Field(
        False,
        description="true: an exchange without actor_token is allowed and its token names no actor. false: "
        "the client sends an actor_token and the token carries act (delegation).",
    )


class InlineJwks(SpecModel):
    """A JWK Set (RFC 7517 §5) of public signing keys."""

    keys: list[Jwk] = Field(
        min_length=1,
        max_length=16,
        description="Public keys: RSA (at least 2048 bits), EC P-256 or OKP Ed25519; private members (d, p, "
        "q, dp, dq, qi, oth, k) are refused.",
    )


class Authentication(SpecModel):
    """How the client authenticates at the token, introspection and revocation endpoints."""

    method: AuthenticationMethod = Field(
        "ClientSecret",
        description="ClientSecret: a generated (or supplied) secret in the credentials Secret. "
        "PrivateKeyJWT: the client signs a JWT with its private key (private_key_jwt); give its public keys "
        "as exactly one of jwks, jwksConfigMapRef or jwksUri. ServiceAccount: the client's pods send their "
        "projected service-account token (audience: the AuthServer's issuer) as the client assertion. "
        "The last two are secretless: no secret is generated, registered or stored.",
    )
    jwks: InlineJwks | None = Field(
        None, description="PrivateKeyJWT: the client's public keys inline, as a JWK Set."
    )
    jwks_config_map_ref: ConfigMapKeyRef | None = Field(
        None,
        description="PrivateKeyJWT: a ConfigMap key (in this OAuthClient's namespace) holding the client's "
        "public JWK Set as JSON; a change to it reaches the AuthServer.",
    )
    jwks_uri: JwksUri | None = Field(
        None,
        description="PrivateKeyJWT: an https URL where the AuthServer fetches the client's public JWK Set.",
    )
    signing_algorithm: AssertionAlgorithm | None = Field(
        None,
        description="PrivateKeyJWT: the only JWS algorithm the client's assertions may use "
        "(token_endpoint_auth_signing_alg). Absent: any the key type allows.",
    )
    service_account_name: DnsSubdomain | None = Field(
        None,
        description="ServiceAccount: the Kubernetes ServiceAccount, in this OAuthClient's namespace, whose "
        "tokens authenticate the client (subject system:serviceaccount:<namespace>:<name>).",
    )
    issuer: DnsLabel | None = Field(
        None,
        description="ServiceAccount: the name of the AuthServer's trusted token issuer that signs the "
        "tokens (spec.workloadIdentity). Absent: kubernetes, the cluster the AuthServer runs in.",
    )

    @property
    def effective_issuer(self) -> str:
        return self.issuer or DEFAULT_TRUSTED_ISSUER


class OAuthClientSpec(SpecModel):
    """The desired state of an OAuth client registered with an AuthServer."""

    auth_server_ref: AuthServerRef = Field(description="The AuthServer to register with.")
    type: ClientType = Field(
        "confidential",
        description="confidential: holds a secret (server-side apps, machine-to-machine). public: cannot "
        "keep a secret (single-page and native apps); uses PKCE and no secret.",
    )
    grant_types: list[GrantType] = Field(
        default_factory=lambda: list[GrantType](["client_credentials"]),
        min_length=1,
        max_length=4,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Grant types: client_credentials, authorization_code (with PKCE), refresh_token, "
        "urn:ietf:params:oauth:grant-type:token-exchange (RFC 8693; confidential clients, policy in "
        "tokenExchange).",
    )
    redirect_uris: list[RedirectUri] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Exact redirect URIs for authorization_code. http is allowed only for loopback hosts.",
    )
    post_logout_redirect_uris: list[RedirectUri] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Where the end-session endpoint may send users back after sign-out (OpenID Connect "
        "RP-Initiated Logout 1.0), matched exactly. http is allowed only for loopback hosts.",
    )
    scopes: list[Scope] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Scopes the client may request.",
    )
    audiences: list[Audience] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Audiences (aud) of the client's access tokens. Empty: the server's default audience.",
    )
    token_endpoint_auth_method: AuthMethod | None = Field(
        None,
        description="Pins how the client authenticates at the token, introspection and revocation "
        "endpoints. Absent: a confidential client may use client_secret_basic or client_secret_post; a "
        "public client uses none.",
    )
    pkce: PkcePolicy = Field(
        "Required",
        description="Required: every authorization request carries PKCE. OptionalWithNonce (confidential "
        "clients only): the client protects its codes with the OpenID Connect nonce, checked in the ID "
        "token, and may leave PKCE out of requests with the openid scope; one that sends a code_challenge "
        "is still held to it.",
    )
    access_token_ttl: Duration | None = Field(
        None,
        alias="accessTokenTTL",
        description="Lifetime of this client's access tokens (Go duration). Absent: the AuthServer's.",
    )
    id_token_signing_alg: SigningAlgorithm | None = Field(
        None,
        description="JWS algorithm of this client's ID tokens (OpenID Connect Dynamic Client Registration "
        "id_token_signed_response_alg). Absent: the AuthServer's spec.tokens.idTokenSigningAlgorithm.",
    )
    backchannel_logout: BackchannelLogoutSpec | None = Field(
        None,
        description="Back-channel logout (OpenID Connect Back-Channel Logout 1.0). Absent: the client is "
        "sent no logout tokens.",
    )
    token_exchange: TokenExchangeSpec | None = Field(
        None,
        description="Token-exchange policy (RFC 8693); needs the token-exchange grant type. Absent: no "
        "audiences to ask for, no subject audiences, no impersonation.",
    )
    rate_limit: RateLimit | None = Field(
        None,
        description="This client's token-endpoint budget for the whole AuthServer (requestsPerSecond above "
        "0). Absent: the AuthServer's spec.rateLimits.perClient.",
    )
    authentication: Authentication = Field(
        default_factory=Authentication,
        description="How the client authenticates (confidential clients only): ClientSecret (the "
        "default), PrivateKeyJWT or ServiceAccount.",
    )
    secret: ClientSecretSpec | None = Field(
        None,
        description="Where the credentials go (confidential clients only). Absent: a generated Secret "
        "named <name>-oauth-client. A secretless client (PrivateKeyJWT, ServiceAccount) gets only its "
        "connection data there.",
    )
    unused_after_days: int | None = Field(
        None,
        ge=1,
        le=3650,
        description="The Unused condition turns True when the client got no token for this many days. "
        "Absent: the AuthServer's spec.clientUsage.unusedAfterDays.",
    )

    @property
    def secretless(self) -> bool:
        """No secret anywhere: the client authenticates with a signed JWT or a service-account token."""
        return self.authentication.method != "ClientSecret"

    @property
    def effective_auth_method(self) -> AuthMethod | None:
        """The pinned method; None: a confidential client's choice of secret method."""
        if self.token_endpoint_auth_method is not None:
            return self.token_endpoint_auth_method
        return "none" if self.type == "public" else None

    def effective_secret(self, client_name: str) -> ClientSecretSpec | None:
        if self.type == "public":
            return None
        return self.secret or ClientSecretSpec(name=f"{client_name}-oauth-client")


class LastErrorStatus(SpecModel):
    """The last error the token endpoint answered this client."""

    code: str = Field(max_length=64, description="The OAuth error code (RFC 6749 §5.2), e.g. invalid_client.")
    at: str = Field(json_schema_extra={"format": "date-time"}, description="When.")


class ClientUsageStatus(SpecModel):
    """What the AuthServer counted for this client at its token endpoint (all replicas and workers)."""

    last_token_at: str | None = Field(
        None, json_schema_extra={"format": "date-time"}, description="When the client last got a token."
    )
    tokens_last_hour: int | None = Field(None, description="Tokens issued in the last hour (estimated).")
    tokens_last_day: int | None = Field(None, description="Tokens issued in the last 24 hours (estimated).")
    last_error: LastErrorStatus | None = Field(None, description="The last token endpoint error, if any.")


class OAuthClientStatus(SpecModel):
    """The observed state, written by the operator."""

    observed_generation: int | None = Field(None, description="The metadata.generation last reconciled.")
    conditions: Conditions = Field(default_factory=list, description="Ready, with reason and message.")
    client_id: str | None = Field(None, description="The client_id the AuthServer assigned.")
    secret_name: str | None = Field(None, description="The Secret holding the credentials.")
    auth_server: str | None = Field(None, description="The AuthServer registered with, as namespace/name.")
    last_rotation: str | None = Field(
        None, json_schema_extra={"format": "date-time"}, description="When the client secret last rotated."
    )
    trusted: bool | None = Field(
        None,
        description="Whether the AuthServer's spec.consent trusts this client: its users see no consent "
        "page (registered with skip_consent).",
    )
    usage: ClientUsageStatus | None = Field(
        None,
        description="Token usage read from the AuthServer's admin API every AUTHYARD_USAGE_INTERVAL "
        "(lags by up to that and the server's flush interval).",
    )
