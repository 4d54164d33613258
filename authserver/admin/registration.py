"""What a client registration may say: the rules the admin API (and so the operator) is held to, and
how a client is shown back (never its secret's hash)."""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from authserver.crypto.client_jwks import InvalidJwks, algorithms_for, check_public_jwks
from authserver.crypto.client_secrets import MIN_SUPPLIED_SECRET_LENGTH
from authserver.loopback import may_be_loopback
from authserver.protocol.client_registration import register_client
from authserver.protocol.errors import InvalidRequest
from authserver.protocol.models import (
    Client,
    ClientType,
    GrantType,
    RateLimit,
    RegisteredClient,
    RegistrationChange,
    TokenEndpointAuthMethod,
    TokenExchangePolicy,
)
from authserver.protocol.store import ClientRegistry
from authyard_values.durations import parse_duration

ScopeToken = Annotated[str, StringConstraints(pattern=r"^[\x21\x23-\x5b\x5d-\x7e]+$", max_length=128)]
GrantTypeName = Literal[
    "client_credentials",
    "authorization_code",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:token-exchange",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",
]
# An RFC 8693 audience is a URI or a logical name: any text without whitespace.
TargetName = Annotated[str, StringConstraints(pattern=r"^\S+$", max_length=2048)]
IdTokenAlgorithm = Literal["ES256", "RS256", "EdDSA"]
# private_key_jwt assertions (crypto.client_jwks.ASSERTION_ALGORITHMS): never none, never HMAC.
AssertionAlgorithm = Literal["RS256", "PS256", "ES256", "EdDSA"]
_LOOPBACK_HOSTS = {"127.0.0.1", "[::1]", "::1", "localhost"}


def check_redirect_uri(uri: str) -> str:
    """Absolute, no fragment, no userinfo; https, or http only on loopback (RFC 8252 §7.3), or a
    private-use scheme for native apps (RFC 8252 §7.1)."""
    parts = urlsplit(uri)
    if not parts.scheme or parts.fragment or "#" in uri:
        raise ValueError(f"redirect URI {uri!r} must be absolute and have no fragment")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"redirect URI {uri!r} must not contain user information")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
        raise ValueError(f"redirect URI {uri!r}: plain http is allowed only for loopback addresses")
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise ValueError(f"redirect URI {uri!r} has no host")
    if parts.scheme in ("javascript", "data", "file", "vbscript"):
        raise ValueError(f"redirect URI {uri!r} uses a forbidden scheme")
    return uri


def _check_server_uri(name: str, uri: str) -> str:
    """A URI the server itself calls: absolute, no fragment, may have a port, path and query; https, or plain
    http only on loopback (as redirect URIs). No user information: the server would send it as credentials
    to whoever the URI names."""
    parts = urlsplit(uri)
    if not parts.scheme or parts.fragment or "#" in uri:
        raise ValueError(f"{name} {uri!r} must be absolute and have no fragment")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{name} {uri!r} must be an https URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{name} {uri!r} must not contain user information")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
        raise ValueError(f"{name} {uri!r}: plain http is allowed only for loopback addresses")
    return uri


def check_backchannel_logout_uri(uri: str) -> str:
    """OpenID Connect Back-Channel Logout 1.0 §2.2: where logout tokens are POSTed."""
    return _check_server_uri("backchannel_logout_uri", uri)


def check_jwks_uri(uri: str) -> str:
    """Where a private_key_jwt client's public keys are fetched (RFC 7591 §2 jwks_uri)."""
    return _check_server_uri("jwks_uri", uri)


def _check_impersonation_proof(redirect_uris: list[str]) -> None:
    """A public client may skip consent only if no other app can receive its codes. Its identity is not
    authenticated: any app can send its client_id, and gets the code if it can listen at a redirect URI.
    Loopback URIs match any port (RFC 8252 §7.3) and private-use schemes can be claimed by any installed
    app (§7.1), so such a client must not be served without the user's interaction (RFC 8252 §8.6,
    RFC 6749 §10.2); an https URI on a real host is received only by its owner (§7.2)."""
    for uri in redirect_uris:
        parts = urlsplit(uri)
        if parts.scheme != "https" or may_be_loopback(parts.hostname):
            raise ValueError(
                f"skip_consent: a public client's redirect URIs must all be https on a non-loopback host "
                f"(another app could receive at {uri!r} and be served without consent); register the "
                "client as confidential to trust it"
            )


class TokenExchangeRegistration(BaseModel):
    """A client's token-exchange policy (RFC 8693): which targets it may ask for, whose tokens it may
    exchange, and whether it may impersonate."""

    model_config = ConfigDict(extra="forbid")

    audiences: list[TargetName] = Field(
        default_factory=list,
        max_length=64,
        description="The audience and resource values (RFC 8693 §2.1, RFC 8707) this client may ask an "
        "exchanged token for. Empty: it may ask for none; the token keeps the subject token's audience.",
    )
    subject_audiences: list[TargetName] = Field(
        default_factory=list,
        max_length=64,
        description="Besides the tokens issued to this client, it may exchange those whose aud holds one of "
        "these (its own identifiers as a resource server, e.g. the URI users' tokens are sent to it for).",
    )
    allow_impersonation: bool = Field(
        False,
        description="true: an exchange without actor_token is allowed and its token names no actor "
        "(RFC 8693 §1.1 impersonation). false: an actor_token is required and the token carries act "
        "(§4.1 delegation).",
    )

    def policy(self) -> TokenExchangePolicy:
        return TokenExchangePolicy(
            audiences=tuple(dict.fromkeys(self.audiences)),
            subject_audiences=tuple(dict.fromkeys(self.subject_audiences)),
            allow_impersonation=self.allow_impersonation,
        )


WorkloadSubject = Annotated[
    str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class WorkloadIdentity(BaseModel):
    """Which workload a workload_identity client is: the trusted issuer (by its configured name) and the
    exact ``sub`` of the tokens it gives that workload."""

    model_config = ConfigDict(extra="forbid")

    issuer: str = Field(
        pattern=r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$",
        description="The name of a trusted issuer (AUTHSERVER_TRUSTED_ISSUERS_FILE), e.g. kubernetes.",
    )
    subject: Annotated[
        str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")
    ] = Field(
        description="The exact sub of the workload's tokens; for a Kubernetes service account "
        "system:serviceaccount:<namespace>:<name>."
    )


class RateLimitRegistration(BaseModel):
    """A client's own token-endpoint budget for the whole server (every worker of every replica)."""

    model_config = ConfigDict(extra="forbid")

    requests_per_second: float = Field(gt=0, le=1_000_000, description="Sustained token requests per second.")
    burst: int = Field(ge=1, le=1_000_000, description="Token requests admitted at once after a quiet spell.")


class ClientRegistration(BaseModel):
    """The desired state of a client; PUT it to /admin/clients/{client_id} as often as you like."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=255, description="Shown on the consent page.")
    type: Literal["confidential", "public"] = Field(
        "confidential", description="Public clients have no secret."
    )
    grant_types: list[GrantTypeName] = Field(min_length=1, description="Grants this client may use.")
    scopes: list[ScopeToken] = Field(default_factory=list, description="Scopes this client may request.")
    audiences: list[Annotated[str, StringConstraints(max_length=2048)]] = Field(
        default_factory=list, description="Resource URIs (RFC 8707); the first is the default audience."
    )
    redirect_uris: list[Annotated[str, StringConstraints(max_length=2048)]] = Field(
        default_factory=list, description="Exact redirect URIs for authorization_code."
    )
    post_logout_redirect_uris: list[Annotated[str, StringConstraints(max_length=2048)]] = Field(
        default_factory=list,
        description="Where the end-session endpoint may send the user after sign-out (OpenID Connect "
        "RP-Initiated Logout 1.0 §3.1), matched exactly; the same rules as redirect_uris.",
    )
    token_endpoint_auth_method: (
        Literal["client_secret_basic", "client_secret_post", "private_key_jwt", "workload_identity", "none"]
        | None
    ) = Field(
        None,
        description="Pins how the client authenticates (RFC 6749 §2.3). Absent: a confidential client may "
        "use client_secret_basic or client_secret_post; a public client uses none. private_key_jwt (RFC 7523 "
        "§2.2): the client signs a JWT with its private key; it has no secret and needs jwks or jwks_uri. "
        "workload_identity: the client sends a trusted issuer's JWT for its workload (a Kubernetes "
        "service-account token); it has no secret and needs workload_identity.",
    )
    workload_identity: WorkloadIdentity | None = Field(
        None, description="workload_identity: the trusted issuer and the workload's subject."
    )
    jwks: dict[str, Any] | None = Field(
        None,
        description="private_key_jwt: the client's public keys, a JWK Set (RSA of 2048 bits or more, EC "
        "P-256, OKP Ed25519; no private members). Exclusive with jwks_uri.",
    )
    jwks_uri: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        None,
        description="private_key_jwt: where the server fetches the client's public JWK Set (https, http only "
        "on loopback; no redirects followed). Exclusive with jwks.",
    )
    token_endpoint_auth_signing_alg: AssertionAlgorithm | None = Field(
        None,
        description="private_key_jwt: the one JWS algorithm the client's assertions must use. Absent: any "
        "of RS256, PS256, ES256, EdDSA that the key allows.",
    )
    token_exchange: TokenExchangeRegistration | None = Field(
        None,
        description="The token-exchange policy (RFC 8693), for a client with the grant type "
        "urn:ietf:params:oauth:grant-type:token-exchange. Absent: no audiences to ask for, no subject "
        "audiences, no impersonation.",
    )
    require_pkce: bool = Field(
        True,
        description="False lets a confidential client leave PKCE out of an authorization request that "
        "carries an OpenID Connect nonce (RFC 9700 §2.1.1). Public clients always use PKCE.",
    )
    access_token_ttl: str | None = Field(None, description="Overrides the server default, e.g. 5m.")
    refresh_token_ttl: str | None = Field(None, description="Overrides the server default, e.g. 720h.")
    id_token_signed_response_alg: IdTokenAlgorithm | None = Field(
        None,
        description="JWS algorithm of this client's ID tokens (OpenID Connect Dynamic Client Registration "
        "§2); one of the server's id_token_signing_alg_values_supported. Absent: the server's default "
        "(AUTHSERVER_ID_TOKEN_SIGNING_ALGORITHM, ES256 unless set).",
    )
    skip_consent: bool = Field(
        False,
        description="A first-party client the operator trusts (Ory Hydra's skip_consent): the user goes "
        "from sign-in straight back to it with a code, no consent page and nothing remembered; "
        "prompt=consent still shows the page. A public client qualifies only when every redirect URI is "
        "https on a non-loopback host, which no other app can receive at (RFC 8252 §8.6).",
    )
    backchannel_logout_uri: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        None,
        description="Where the server POSTs a logout token when a sign-in session this client took part in "
        "ends (OpenID Connect Back-Channel Logout 1.0 §2.2): https (http only on loopback), absolute, a "
        "query allowed, no fragment. Absent: no back-channel logout.",
    )
    backchannel_logout_session_required: bool = Field(
        False,
        description="The RP needs the sid claim in logout tokens (§2.2). This server always sends sid, so "
        "it changes nothing sent; it needs backchannel_logout_uri.",
    )
    rate_limit: RateLimitRegistration | None = Field(
        None,
        description="This client's token-endpoint rate limit for the whole server, in place of the "
        "server's per-client default (AUTHSERVER_TOKEN_RATE_PER_CLIENT / _BURST_PER_CLIENT).",
    )
    client_secret: str | None = Field(
        None,
        min_length=MIN_SUPPLIED_SECRET_LENGTH,
        max_length=256,
        description="Set this secret (the caller keeps it; only its hash is stored). Omit to have one "
        "generated on creation. Re-sending the current secret changes nothing.",
    )

    secret_grace_period: str | None = Field(
        None,
        description="When client_secret differs from the current secret: keep the current one working for "
        "this long (a client-secret rotation). Absent: the new secret replaces the current one at once.",
    )

    @field_validator("redirect_uris", "post_logout_redirect_uris")
    @classmethod
    def _redirect_uris_are_safe(cls, uris: list[str]) -> list[str]:
        return [check_redirect_uri(uri) for uri in uris]

    @field_validator("backchannel_logout_uri")
    @classmethod
    def _backchannel_logout_uri_is_safe(cls, uri: str | None) -> str | None:
        return check_backchannel_logout_uri(uri) if uri is not None else None

    @field_validator("jwks_uri")
    @classmethod
    def _jwks_uri_is_safe(cls, uri: str | None) -> str | None:
        return check_jwks_uri(uri) if uri is not None else None

    @field_validator("jwks")
    @classmethod
    def _jwks_holds_public_keys(cls, jwks: dict[str, Any] | None) -> dict[str, Any] | None:
        if jwks is None:
            return None
        try:
            return {"keys": list(check_public_jwks(jwks))}
        except InvalidJwks as error:
            raise ValueError(f"jwks: {error}") from None

    @field_validator("audiences")
    @classmethod
    def _audiences_are_uris(cls, audiences: list[str]) -> list[str]:
        for audience in audiences:
            if not urlsplit(audience).scheme or "#" in audience:
                raise ValueError(f"audience {audience!r} must be an absolute URI without a fragment")
        return audiences

    @field_validator("secret_grace_period")
    @classmethod
    def _grace_is_a_duration(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) > timedelta(days=30):
            raise ValueError("secret_grace_period must be at most 720h")
        return value

    @field_validator("access_token_ttl", "refresh_token_ttl")
    @classmethod
    def _ttl_is_duration(cls, value: str | None) -> str | None:
        if value is not None:
            ttl = parse_duration(value)
            if not timedelta(seconds=10) <= ttl <= timedelta(days=365):
                raise ValueError("token lifetimes must be between 10s and 8760h")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ClientRegistration:
        method = self.token_endpoint_auth_method
        if self.type == "public":
            if method not in (None, "none"):
                raise ValueError("public clients use token_endpoint_auth_method 'none'")
            if self.client_secret is not None:
                raise ValueError("public clients have no secret")
            if "client_credentials" in self.grant_types:
                raise ValueError("public clients cannot use client_credentials")
            if GrantType.JWT_BEARER.value in self.grant_types:
                raise ValueError("public clients cannot use the JWT bearer grant")
            if not self.require_pkce:
                raise ValueError("public clients always use PKCE (OAuth 2.1 §7.5.1)")
            if self.skip_consent:
                _check_impersonation_proof(self.redirect_uris)
        elif method == "none":
            raise ValueError(
                "confidential clients must authenticate: use client_secret_basic, client_secret_post, "
                "private_key_jwt or workload_identity"
            )
        self._check_key_registration()
        self._check_workload_registration()
        if "authorization_code" in self.grant_types and not self.redirect_uris:
            raise ValueError("authorization_code needs at least one redirect URI")
        if "refresh_token" in self.grant_types and "authorization_code" not in self.grant_types:
            raise ValueError("refresh_token is only issued with authorization_code")
        if self.backchannel_logout_session_required and self.backchannel_logout_uri is None:
            raise ValueError("backchannel_logout_session_required needs a backchannel_logout_uri")
        exchanges = GrantType.TOKEN_EXCHANGE.value in self.grant_types
        if exchanges and self.type == "public":
            raise ValueError("public clients cannot use token exchange: they cannot authenticate")
        if self.token_exchange is not None and not exchanges:
            raise ValueError(f"token_exchange needs the grant type {GrantType.TOKEN_EXCHANGE.value}")
        return self

    def _check_key_registration(self) -> None:
        has_keys = self.jwks is not None or self.jwks_uri is not None
        if self.token_endpoint_auth_method != TokenEndpointAuthMethod.PRIVATE_KEY_JWT.value:
            if has_keys or self.token_endpoint_auth_signing_alg is not None:
                raise ValueError(
                    "jwks, jwks_uri and token_endpoint_auth_signing_alg need token_endpoint_auth_method "
                    "private_key_jwt"
                )
            return
        if self.jwks is not None and self.jwks_uri is not None:
            raise ValueError("give jwks or jwks_uri, not both")
        if not has_keys:
            raise ValueError("private_key_jwt needs the client's public keys: jwks or jwks_uri")
        if self.client_secret is not None or self.secret_grace_period is not None:
            raise ValueError("a private_key_jwt client has no secret")
        wanted = self.token_endpoint_auth_signing_alg
        if wanted is not None and self.jwks is not None:
            if not any(wanted in algorithms_for(key) for key in self.jwks["keys"]):
                raise ValueError(f"no key in jwks can verify {wanted}")

    def _check_workload_registration(self) -> None:
        if self.token_endpoint_auth_method != TokenEndpointAuthMethod.WORKLOAD_IDENTITY.value:
            if self.workload_identity is not None:
                raise ValueError("workload_identity needs token_endpoint_auth_method workload_identity")
            return
        if self.workload_identity is None:
            raise ValueError("workload_identity clients need workload_identity: {issuer, subject}")
        if self.client_secret is not None or self.secret_grace_period is not None:
            raise ValueError("a workload_identity client has no secret")

    @property
    def auth_method(self) -> TokenEndpointAuthMethod | None:
        """The pinned method; None: a confidential client's choice of secret method."""
        if self.type == "public":
            return TokenEndpointAuthMethod.NONE
        method = self.token_endpoint_auth_method
        return TokenEndpointAuthMethod(method) if method else None

    def ttl_seconds(self, value: str | None) -> int | None:
        return int(parse_duration(value).total_seconds()) if value else None

    def desired_client(self, client_id: str) -> Client:
        """The client this registration asks for, without its secret (repeated list entries once)."""
        return Client(
            client_id=client_id,
            name=self.name,
            client_type=ClientType(self.type),
            grant_types=tuple(dict.fromkeys(self.grant_types)),
            scopes=tuple(dict.fromkeys(self.scopes)),
            audiences=tuple(dict.fromkeys(self.audiences)),
            redirect_uris=tuple(dict.fromkeys(self.redirect_uris)),
            post_logout_redirect_uris=tuple(dict.fromkeys(self.post_logout_redirect_uris)),
            token_endpoint_auth_method=self.auth_method,
            access_token_ttl_seconds=self.ttl_seconds(self.access_token_ttl),
            refresh_token_ttl_seconds=self.ttl_seconds(self.refresh_token_ttl),
            require_pkce=self.require_pkce,
            id_token_signed_response_alg=self.id_token_signed_response_alg,
            skip_consent=self.skip_consent,
            backchannel_logout_uri=self.backchannel_logout_uri,
            backchannel_logout_session_required=self.backchannel_logout_session_required,
            jwks=json.dumps(self.jwks, separators=(",", ":"), sort_keys=True)
            if self.jwks is not None
            else None,
            jwks_uri=self.jwks_uri,
            token_endpoint_auth_signing_alg=self.token_endpoint_auth_signing_alg,
            token_exchange=self.token_exchange.policy() if self.token_exchange is not None else None,
            workload_issuer=self.workload_identity.issuer if self.workload_identity else None,
            workload_subject=self.workload_identity.subject if self.workload_identity else None,
            rate_limit=RateLimit(self.rate_limit.requests_per_second, self.rate_limit.burst)
            if self.rate_limit is not None
            else None,
        )

    @property
    def grace(self) -> timedelta | None:
        return parse_duration(self.secret_grace_period) if self.secret_grace_period is not None else None


async def register(
    registry: ClientRegistry,
    client_id: str,
    registration: ClientRegistration,
    id_token_algorithms: Collection[str] | None = None,
    trusted_issuers: Collection[str] | None = None,
) -> RegistrationChange:
    """Apply ``registration`` to client ``client_id`` (the admin API's, the CLI's and the demo's way in).

    ``id_token_algorithms``: what the key set can sign ID tokens with; a client asking for another
    algorithm is refused rather than given ID tokens its relying party would reject. ``trusted_issuers``:
    the names of the configured trusted issuers; a workload of another one could never authenticate.
    Raises ``WorkloadTaken`` when another client is registered for the same workload.
    """
    workload = registration.workload_identity
    if workload is not None and trusted_issuers is not None and workload.issuer not in trusted_issuers:
        configured = ", ".join(sorted(trusted_issuers)) or "none (AUTHSERVER_TRUSTED_ISSUERS_FILE)"
        raise InvalidRequest(
            f"workload_identity.issuer {workload.issuer} is not a trusted issuer; configured: {configured}"
        )
    wanted = registration.id_token_signed_response_alg
    if wanted is not None and id_token_algorithms is not None and wanted not in id_token_algorithms:
        raise InvalidRequest(
            f"id_token_signed_response_alg {wanted} is not offered by this server's signing keys; "
            f"use one of {', '.join(sorted(id_token_algorithms))}"
        )
    desired = registration.desired_client(client_id)
    return await register_client(registry, desired, registration.client_secret, registration.grace)


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_period: str = Field("1h", description="How long the previous secret keeps working, e.g. 1h.")
    client_secret: str | None = Field(
        None,
        min_length=MIN_SUPPLIED_SECRET_LENGTH,
        max_length=256,
        description="The new secret; omit to have one generated. Re-sending the current one changes nothing.",
    )

    @field_validator("grace_period")
    @classmethod
    def _grace_is_duration(cls, value: str) -> str:
        if parse_duration(value) > timedelta(days=30):
            raise ValueError("grace_period must be at most 720h")
        return value

    @property
    def grace(self) -> timedelta:
        return parse_duration(self.grace_period)


class ClientView(BaseModel):
    """A client as the admin API shows it: never a secret, except once when the server generated one."""

    client_id: str
    name: str
    type: str
    grant_types: list[str]
    scopes: list[str]
    audiences: list[str]
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str] = Field(default_factory=list)
    token_endpoint_auth_method: str | None = Field(description="null: either secret method")
    require_pkce: bool
    access_token_ttl_seconds: int | None
    refresh_token_ttl_seconds: int | None
    id_token_signed_response_alg: str | None = Field(
        None, description="Absent (null): the server's default ID-token algorithm."
    )
    skip_consent: bool = False
    backchannel_logout_uri: str | None = Field(None, description="null: no back-channel logout.")
    backchannel_logout_session_required: bool = False
    jwks: dict[str, Any] | None = Field(None, description="private_key_jwt: the registered public keys.")
    jwks_uri: str | None = None
    token_endpoint_auth_signing_alg: str | None = None
    token_exchange: TokenExchangeRegistration | None = Field(
        None, description="null: the token-exchange defaults (or no token exchange)."
    )
    workload_identity: WorkloadIdentity | None = Field(None, description="workload_identity: the workload.")
    rate_limit: RateLimitRegistration | None = Field(None, description="null: the server's default.")
    has_secret: bool
    previous_secret_expires_at: str | None = None
    secret_rotated_at: str | None = None
    created_at: str
    updated_at: str
    client_secret: str | None = Field(None, description="Only in the response that generated it.")

    @classmethod
    def of(cls, registered: RegisteredClient, generated_secret: str | None = None) -> ClientView:
        client = registered.client
        return cls(
            client_id=client.client_id,
            name=client.name,
            type=client.client_type.value,
            grant_types=list(client.grant_types),
            scopes=list(client.scopes),
            audiences=list(client.audiences),
            redirect_uris=list(client.redirect_uris),
            post_logout_redirect_uris=list(client.post_logout_redirect_uris),
            token_endpoint_auth_method=client.token_endpoint_auth_method,
            require_pkce=client.require_pkce,
            access_token_ttl_seconds=client.access_token_ttl_seconds,
            refresh_token_ttl_seconds=client.refresh_token_ttl_seconds,
            id_token_signed_response_alg=client.id_token_signed_response_alg,
            skip_consent=client.skip_consent,
            backchannel_logout_uri=client.backchannel_logout_uri,
            backchannel_logout_session_required=client.backchannel_logout_session_required,
            jwks=json.loads(client.jwks) if client.jwks is not None else None,
            jwks_uri=client.jwks_uri,
            token_endpoint_auth_signing_alg=client.token_endpoint_auth_signing_alg,
            token_exchange=_token_exchange_view(client.token_exchange),
            workload_identity=WorkloadIdentity(issuer=client.workload_issuer, subject=client.workload_subject)
            if client.workload_issuer is not None and client.workload_subject is not None
            else None,
            rate_limit=RateLimitRegistration(
                requests_per_second=client.rate_limit.requests_per_second, burst=client.rate_limit.burst
            )
            if client.rate_limit is not None
            else None,
            has_secret=client.secret_hash is not None,
            previous_secret_expires_at=_iso(client.previous_secret_expires_at),
            secret_rotated_at=_iso(registered.secret_rotated_at),
            created_at=registered.created_at.isoformat(),
            updated_at=registered.updated_at.isoformat(),
            client_secret=generated_secret,
        )


def _token_exchange_view(policy: TokenExchangePolicy | None) -> TokenExchangeRegistration | None:
    if policy is None:
        return None
    return TokenExchangeRegistration(
        audiences=list(policy.audiences),
        subject_audiences=list(policy.subject_audiences),
        allow_impersonation=policy.allow_impersonation,
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
