"""The AuthServer custom resource: spec and status models (the CRD schema is generated from these)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from authyard_operator.spec.common import (
    DNS_LABEL_PATTERN,
    Audience,
    Conditions,
    ConfigMapKeyRef,
    DnsLabel,
    DnsSubdomain,
    Duration,
    Quantity,
    ResourceRequirements,
    Scope,
    SecretKeyRef,
    SpecModel,
)
from authyard_operator.spec.identity_providers import IdentityProviders

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - RFC 8693's grant type
GrantType = Literal[
    "client_credentials",
    "authorization_code",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:token-exchange",
]
SigningAlgorithm = Literal["ES256", "RS256", "EdDSA"]
PoolerType = Literal["none", "pgbouncer"]

# Token exchange is not among them: a client with it mints tokens for users it did not sign in, so an
# AuthServer's owner lists it in spec.clientPolicy.allowedGrantTypes to offer it.
DEFAULT_ALLOWED_GRANT_TYPES: tuple[GrantType, ...] = (
    "client_credentials",
    "authorization_code",
    "refresh_token",
)
# An issuer is an https URL (http for in-cluster and development) with no query, fragment or trailing slash.
ISSUER_PATTERN = r"^https?://[^\s/?#]+(/[^\s?#]*[^\s?#/])?$"
IMAGE_PATTERN = r"^\S+$"
# A namespace name, or "*" for every namespace (one pattern: a structural schema cannot type a union).
NamespaceOrAny = Annotated[str, Field(pattern=r"^(\*|" + DNS_LABEL_PATTERN[1:-1] + r")$", max_length=63)]


class Autoscaling(SpecModel):
    """A HorizontalPodAutoscaler (autoscaling/v2) for the auth server Deployment."""

    enabled: bool = Field(
        False, description="Run an HPA between minReplicas and maxReplicas; spec.replicas is then ignored."
    )
    min_replicas: int = Field(2, ge=1, le=100, description="Fewest replicas the HPA keeps.")
    max_replicas: int = Field(
        5,
        ge=1,
        le=100,
        description="Most replicas the HPA may run; the database connection budget is divided by this.",
    )
    target_cpu_utilization: int = Field(
        70,
        ge=1,
        le=100,
        alias="targetCPUUtilization",
        description="Average CPU utilization (percent of the CPU request) the HPA aims for.",
    )
    target_memory_utilization: int = Field(
        80,
        ge=1,
        le=100,
        description="Average memory utilization (percent of the memory request) the HPA aims for.",
    )
    target_requests_per_second_per_pod: int | None = Field(
        None,
        ge=1,
        le=100000,
        description="Optional: average HTTP requests per second per pod (Pods metric "
        "http_requests_per_second, served by a custom-metrics adapter such as prometheus-adapter).",
    )


# What one worker is assumed to serve when spec.capacity.perPodTokensPerSecond is absent: about half of what
# the benchmark measured (docs/performance.md: a 2-worker pod served 7,764 client_credentials tokens/s on
# PostgreSQL, 4,646/s in the slowest run of the day), because a cluster's pods share their nodes.
DEFAULT_TOKENS_PER_SECOND_PER_WORKER = 2000
BENCHMARK_COMMAND = (
    "python -m bench --db postgresql --scenarios client_credentials --workers 2 --concurrency 50 "
    "--duration 5 --repeat 1 --no-login --no-profile --no-save"
)


class Capacity(SpecModel):
    """A throughput target the operator turns into the autoscaler's bounds and targets and the pods' CPU
    requests (status.capacity shows the arithmetic). It runs an HPA; spec.autoscaling.enabled: true makes
    spec.autoscaling's minReplicas and maxReplicas win over the plan's."""

    peak_tokens_per_second: int = Field(
        ge=1, le=10_000_000, description="The peak token requests per second the AuthServer must serve."
    )
    per_pod_tokens_per_second: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Token requests per second one pod sustains. Absent: "
        f"{DEFAULT_TOKENS_PER_SECOND_PER_WORKER} x spec.workers, about half of what the benchmark measured "
        "for client_credentials (a 2-worker pod served 7,764/s on PostgreSQL). Measure your own with "
        f"`{BENCHMARK_COMMAND}` on a node like yours.",
    )
    headroom: float = Field(
        1.2,
        ge=1,
        le=10,
        description="Spare capacity above the peak: maxReplicas covers headroom x peak, and the per-pod "
        "target is peak / maxReplicas x headroom.",
    )
    min_replicas_for_availability: int = Field(
        3, ge=1, le=100, description="Fewest replicas, whatever the load (3 survive a node and a zone loss)."
    )
    max_cores: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="CPU cores the cluster can give this AuthServer's pods (their CPU requests together); "
        "bounds maxReplicas. Absent: no bound but the connection budget's.",
    )
    requests_per_second_metric: bool = Field(
        False,
        description="Also scale on the Pods metric http_requests_per_second (needs a custom-metrics adapter "
        "such as prometheus-adapter; without one the HPA cannot read it and never scales down). The CPU "
        "utilization target, derived from the same figures, is always set.",
    )


class Pooler(SpecModel):
    """An optional connection pooler between the auth server pods and the database."""

    type: PoolerType = Field(
        "none",
        description="none: pods connect to the database directly. pgbouncer: the operator runs PgBouncer "
        "in transaction pooling mode and points the pods at it.",
    )
    instances: int = Field(2, ge=1, le=10, description="Number of PgBouncer replicas (pgbouncer only).")
    image: str | None = Field(
        None,
        max_length=512,
        pattern=IMAGE_PATTERN,
        description="PgBouncer container image override (pgbouncer only).",
    )


class Database(SpecModel):
    """An external PostgreSQL database. Absent: embedded SQLite on a volume, a single replica."""

    url_secret_ref: SecretKeyRef = Field(
        description="The Secret key holding the database URL, e.g. postgresql+asyncpg://user:pass@host:5432/db."
    )
    max_connections: int = Field(
        ge=1,
        le=100000,
        description="The connection budget this AuthServer may use on the database. The operator sizes the "
        "pools so that all pods together (or PgBouncer) stay within 90% of it.",
    )
    write_connections: int = Field(
        1,
        ge=1,
        le=16,
        description="Connections of each worker's pool that serve only refresh-token rotation and code "
        "redemption. "
        "Writes that find them busy share the next statement, so 1 is the fastest with the database nearby; "
        "raise it only when round trips to a distant database, not its CPU, bound those writes. Each "
        "worker's pool needs at least one more connection than this.",
    )
    pooler: Pooler = Field(default_factory=Pooler, description="Connection pooler between pods and database.")


class Storage(SpecModel):
    """The volume of the embedded SQLite database (used only when spec.database is absent)."""

    size: Quantity = Field("1Gi", description="Size of the PersistentVolumeClaim holding the SQLite file.")
    storage_class_name: DnsSubdomain | None = Field(
        None, description="StorageClass of the claim; absent: the cluster's default StorageClass."
    )


class Tokens(SpecModel):
    """Token lifetimes and signing keys."""

    access_token_ttl: Duration = Field(
        "15m", alias="accessTokenTTL", description="Lifetime of access tokens (Go duration: 15m, 1h)."
    )
    refresh_token_ttl: Duration = Field(
        "720h", alias="refreshTokenTTL", description="Lifetime of refresh tokens (Go duration: 720h)."
    )
    signing_algorithm: SigningAlgorithm = Field(
        "ES256", description="JWS algorithm of access tokens: ES256, RS256 or EdDSA."
    )
    id_token_signing_algorithm: SigningAlgorithm = Field(
        "ES256",
        description="JWS algorithm of ID tokens for OAuthClients without idTokenSigningAlg. RS256 is always "
        "offered (an OAuthClient asks for it with idTokenSigningAlg: RS256); ES256 signs about 9 times "
        "cheaper. The key set holds keys of this algorithm, of RS256 and of signingAlgorithm.",
    )
    key_rotation_interval: Duration = Field(
        "720h",
        description="How often the signing key rotates. The next key is published one interval before it "
        "signs; a retired key stays published until every token it signed has expired.",
    )


# A host name, an IPv4 or IPv6 address, or "*." and a name: what a URL's host may be compared with.
HostPattern = Annotated[
    str, Field(pattern=r"^(\*\.)?[A-Za-z0-9:]([-A-Za-z0-9.:]*[A-Za-z0-9])?$", min_length=1, max_length=253)
]


class Sessions(SpecModel):
    """Sign-in sessions: how long a browser stays signed in. Ending one revokes its refresh tokens."""

    lifetime: Duration = Field(
        "8h",
        description="Absolute lifetime of a sign-in session (Go duration): then the user signs in again and "
        "the refresh tokens issued in the session are revoked (except those granted offline_access).",
    )
    idle_timeout: Duration = Field(
        "0s",
        description="End a sign-in session when its browser has not come back to the authorization endpoint "
        "for this long (refresh requests do not count); 0s: never.",
    )


# An IPv4 or IPv6 address or network in CIDR notation; the server parses it (ipaddress) and says so.
Network = Annotated[str, Field(pattern=r"^[0-9A-Fa-f.:]+(/[0-9]{1,3})?$", max_length=64)]


class PasswordPolicy(SpecModel):
    """What the admin API and the CLI accept as a password."""

    min_length: int = Field(8, ge=1, le=256, description="Shortest password accepted.")
    max_length: int = Field(
        256, ge=8, le=1024, description="Longest password accepted (bounds the KDF input)."
    )
    reject_account_names: bool = Field(
        True, description="Refuse a password that contains the username or the e-mail address."
    )


class SignIn(SpecModel):
    """The login page's defences: failed sign-ins throttled per account and per client address (counted
    across every replica in the database), and the password policy."""

    max_failures_per_account: int = Field(
        5,
        ge=0,
        le=1000,
        description="Failed sign-ins per username within failureWindow before a lockout; 0: none.",
    )
    max_failures_per_address: int = Field(
        20, ge=0, le=100000, description="Failed sign-ins per client address within failureWindow; 0: none."
    )
    failure_window: Duration = Field(
        "15m", description="Failures are forgotten after this long without one; also the longest lockout."
    )
    lockout: Duration = Field(
        "1m",
        description="The first lockout at a limit; each further failure doubles it, up to failureWindow.",
    )
    trusted_proxies: list[Network] = Field(
        default_factory=list,
        max_length=64,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Addresses or CIDR networks of the reverse proxies (an ingress controller's pods) whose "
        "X-Forwarded-For names the client for the per-address limit. Empty: the peer address is the "
        "client's.",
    )
    password_policy: PasswordPolicy = Field(
        default_factory=PasswordPolicy, description="The password policy."
    )


_RATE = "Sustained token requests per second for the whole AuthServer; 0: unlimited."
_BURST = "Token requests admitted at once after a quiet spell (each worker keeps at least one)."


class PerClientRateLimit(SpecModel):
    """Each client's token-endpoint budget for the whole AuthServer."""

    requests_per_second: float = Field(200, ge=0, le=1000000, description=_RATE)
    burst: int = Field(400, ge=1, le=1000000, description=_BURST)


class PerAddressRateLimit(SpecModel):
    """Each client address's token-endpoint budget for the whole AuthServer."""

    requests_per_second: float = Field(500, ge=0, le=1000000, description=_RATE)
    burst: int = Field(1000, ge=1, le=1000000, description=_BURST)


class RateLimits(SpecModel):
    """Token-endpoint rate limits: budgets for the whole AuthServer, not per pod, so they hold as the HPA
    scales (each worker enforces its share; docs/rate-limits.md gives the bounds while shares converge).
    A limit answers 429 slow_down with Retry-After."""

    per_client: PerClientRateLimit = Field(
        default_factory=PerClientRateLimit,
        description="Each client's budget; an OAuthClient's spec.rateLimit wins.",
    )
    per_address: PerAddressRateLimit = Field(
        default_factory=PerAddressRateLimit,
        description="Each client address's budget: the peer's address, or the one spec.signIn.trustedProxies "
        "forward in X-Forwarded-For (never the header of anyone else).",
    )


class BackchannelLogout(SpecModel):
    """How the server reaches OAuthClients' back-channel logout URIs."""

    trusted_ca: ConfigMapKeyRef | None = Field(
        None,
        alias="trustedCA",
        description="A ConfigMap key holding PEM CA certificates trusted for back-channel logout URIs beside "
        "the public CAs (RPs behind a cluster-internal CA, such as cert-manager's). A change rolls the pods.",
    )


class KubernetesIssuer(SpecModel):
    """The service-account token issuer of the cluster the AuthServer runs in."""

    enabled: bool = Field(
        True,
        description="Trust the cluster's own service-account tokens (trusted issuer name kubernetes): the "
        "operator reads the API server's /.well-known/openid-configuration for the issuer, and the server "
        "pods fetch its /openid/v1/jwks with their own token and the cluster CA (their ServiceAccount is "
        "bound to the system:service-account-issuer-discovery ClusterRole).",
    )


class TrustedIssuer(SpecModel):
    """A token issuer whose JWTs authenticate OAuthClients with authentication.method ServiceAccount
    (another cluster, an external OpenID Connect issuer)."""

    name: DnsLabel = Field(
        description="The name OAuthClients use in authentication.issuer; kubernetes is the AuthServer's own "
        "cluster (workloadIdentity.kubernetes) and cannot be listed here."
    )
    issuer: str = Field(
        max_length=512,
        pattern=r"^https://[^\s/?#]+(/[^\s?#]*)?$",
        description="The issuer (the iss claim of its tokens), an https URL.",
    )
    audiences: list[Audience] = Field(
        default_factory=list,
        max_length=8,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Audiences one of which the tokens must carry. Empty: this AuthServer's issuer.",
    )
    jwks_uri: str | None = Field(
        None,
        max_length=2048,
        pattern=r"^https://[^\s#]+$",
        description="Where the issuer's keys are fetched. Absent: from its discovery document "
        "(<issuer>/.well-known/openid-configuration).",
    )
    ca_config_map_ref: ConfigMapKeyRef | None = Field(
        None,
        description="A ConfigMap key (in the AuthServer's namespace) holding PEM CA certificates for the "
        "issuer's discovery document and keys. Absent: the public CAs.",
    )


class WorkloadIdentity(SpecModel):
    """Token issuers whose JWTs authenticate secretless OAuthClients (authentication.method ServiceAccount),
    rendered into the pods as AUTHSERVER_TRUSTED_ISSUERS_FILE."""

    kubernetes: KubernetesIssuer = Field(
        default_factory=KubernetesIssuer, description="The cluster the AuthServer runs in."
    )
    trusted_issuers: list[TrustedIssuer] = Field(
        default_factory=list,
        max_length=16,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
        description="Other issuers, each by a name unique in this list.",
    )

    def names(self) -> set[str]:
        """The issuer names OAuthClients may use."""
        names = {issuer.name for issuer in self.trusted_issuers}
        return names | {KUBERNETES_ISSUER} if self.kubernetes.enabled else names


KUBERNETES_ISSUER = "kubernetes"


class ClientPolicy(SpecModel):
    """Which OAuthClients may register with this AuthServer, and what they may ask for."""

    allowed_namespaces: list[NamespaceOrAny] = Field(
        default_factory=list,
        max_length=256,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description='Namespaces whose OAuthClients may register. Empty: this namespace only; "*": any.',
    )
    allowed_grant_types: list[GrantType] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_GRANT_TYPES),
        max_length=4,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Grant types OAuthClients may use. Default: client_credentials, authorization_code and "
        "refresh_token; token exchange (urn:ietf:params:oauth:grant-type:token-exchange) only when listed.",
    )
    allowed_scopes: list[Scope] | None = Field(
        None,
        max_length=256,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Scopes OAuthClients may request. Absent: any scope.",
    )
    allowed_audiences: list[Audience] | None = Field(
        None,
        max_length=256,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Audiences OAuthClients may request, and ask exchanged tokens for (spec.tokenExchange."
        "audiences). Absent: any audience.",
    )
    allowed_backchannel_logout_hosts: list[HostPattern] | None = Field(
        None,
        max_length=256,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Hosts an OAuthClient's backchannelLogout.uri may name: exact names or IP addresses, or "
        '"*.example.com" for any name under example.com. The AuthServer POSTs logout tokens there, from '
        "inside the cluster: list the hosts a tenant may make it reach. Absent: any host.",
    )


LabelKey = Annotated[
    str,
    Field(
        pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
        max_length=317,
    ),
]
LabelValue = Annotated[str, Field(pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$", max_length=63)]


class LabelSelectorRequirement(SpecModel):
    """One requirement of a label selector, as in Kubernetes' LabelSelector."""

    key: LabelKey = Field(description="The label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="In, NotIn: the value is (not) one of values. Exists, DoesNotExist: values is empty."
    )
    values: list[LabelValue] = Field(
        default_factory=list, max_length=64, description="Values for In and NotIn; empty otherwise."
    )

    @model_validator(mode="after")
    def _values_fit_the_operator(self) -> LabelSelectorRequirement:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError(
                f"{self.operator} needs values" if self.values == [] else f"{self.operator} takes no values"
            )
        return self


class LabelSelector(SpecModel):
    """A standard Kubernetes label selector: every matchLabels entry and every matchExpressions requirement
    must hold; an empty selector matches every object."""

    match_labels: dict[str, LabelValue] = Field(
        default_factory=dict, max_length=64, description="Labels the object must carry with these values."
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=16, description="Requirements on the object's labels."
    )


class ClientRef(SpecModel):
    """An OAuthClient, by namespace and name."""

    name: DnsSubdomain = Field(description="Name of the OAuthClient.")
    namespace: DnsLabel | None = Field(
        None, description="Namespace of the OAuthClient. Absent: the namespace of this AuthServer."
    )


class Consent(SpecModel):
    """First-party OAuthClients this AuthServer trusts: their users go from sign-in straight back to the
    application (no consent page, nothing remembered), unless a request says prompt=consent. An OAuthClient
    cannot trust itself: only this spec decides."""

    trusted_clients: list[ClientRef] = Field(
        default_factory=list, max_length=256, description="OAuthClients trusted by namespace and name."
    )
    trusted_client_selector: LabelSelector | None = Field(
        None,
        description="OAuthClients in this AuthServer's own namespace whose labels match are trusted too. "
        "Only there: whoever writes an OAuthClient writes its labels, so a selector over other namespaces "
        "would let their teams trust themselves.",
    )


class ClientUsage(SpecModel):
    """How the usage of this AuthServer's OAuthClients is judged."""

    unused_after_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="An OAuthClient is Unused (its condition True) after this many days without a token, "
        "unless it sets spec.unusedAfterDays.",
    )


class AuthServerSpec(SpecModel):
    """The desired state of an OAuth 2.1 authorization server."""

    issuer: str | None = Field(
        None,
        max_length=512,
        pattern=ISSUER_PATTERN,
        description="Issuer URL (no trailing slash). Absent: http://<name>.<namespace>.svc:8080.",
    )
    image: str | None = Field(
        None, max_length=512, pattern=IMAGE_PATTERN, description="Auth server container image override."
    )
    replicas: int = Field(
        1, ge=1, le=100, description="Number of pods when autoscaling is off. Embedded SQLite requires 1."
    )
    workers: int = Field(
        1,
        ge=1,
        le=16,
        description="Server worker processes per pod. Each worker has its own database pool, so the "
        "connection budget is split across replicas x workers.",
    )
    autoscaling: Autoscaling = Field(default_factory=Autoscaling, description="Horizontal pod autoscaling.")
    capacity: Capacity | None = Field(
        None,
        description="A throughput target: the operator runs an HPA and derives its bounds and targets and "
        "the pods' CPU requests from it (spec.replicas is then ignored). Needs spec.database.",
    )
    resources: ResourceRequirements | None = Field(
        None,
        description="Compute resources of the server container. Absent: requests cpu 100m, memory 128Mi; "
        "limits memory 256Mi.",
    )
    database: Database | None = Field(
        None, description="External PostgreSQL. Absent: embedded SQLite on a volume, exactly one replica."
    )
    storage: Storage = Field(
        default_factory=Storage, description="Volume of the embedded SQLite database (no spec.database)."
    )
    tokens: Tokens = Field(default_factory=Tokens, description="Token lifetimes and signing keys.")
    sessions: Sessions = Field(default_factory=Sessions, description="Sign-in session lifetimes.")
    backchannel_logout: BackchannelLogout = Field(
        default_factory=BackchannelLogout, description="Back-channel logout delivery."
    )
    sign_in: SignIn = Field(
        default_factory=SignIn, description="Failed sign-in throttling and the password policy."
    )
    rate_limits: RateLimits = Field(
        default_factory=RateLimits,
        description="Token-endpoint rate limits per client and per client address, for the whole AuthServer.",
    )
    workload_identity: WorkloadIdentity = Field(
        default_factory=WorkloadIdentity,
        description="Token issuers trusted to authenticate secretless OAuthClients (Kubernetes "
        "service-account tokens: this cluster by default).",
    )
    client_policy: ClientPolicy = Field(
        default_factory=ClientPolicy, description="Which OAuthClients may register here, and with what."
    )
    consent: Consent = Field(
        default_factory=Consent, description="OAuthClients whose users are never shown the consent page."
    )
    identity_providers: IdentityProviders = Field(
        default_factory=IdentityProviders,
        description="How people sign in: local accounts and upstream OpenID Connect providers or LDAP "
        "directories.",
    )
    client_usage: ClientUsage = Field(
        default_factory=ClientUsage, description="When an OAuthClient of this AuthServer counts as unused."
    )

    @property
    def embedded(self) -> bool:
        return self.database is None

    @property
    def uses_pgbouncer(self) -> bool:
        return self.database is not None and self.database.pooler.type == "pgbouncer"

    @property
    def autoscaled(self) -> bool:
        """Whether an HPA runs the Deployment: asked for, or planned from spec.capacity."""
        return self.autoscaling.enabled or self.capacity is not None

    @property
    def max_pods(self) -> int:
        """The most pods that can run at once: what the connection budget must cover."""
        return self.autoscaling.max_replicas if self.autoscaling.enabled else self.replicas


# ---- status -----------------------------------------------------------------------------------------------


class Endpoints(SpecModel):
    """Where applications reach the server (from the issuer)."""

    metadata: str | None = Field(None, description="RFC 8414 authorization server metadata URL.")
    token: str | None = Field(None, description="Token endpoint URL.")
    jwks: str | None = Field(None, description="JWK set URL for verifying access tokens.")
    authorization: str | None = Field(None, description="Authorization endpoint URL.")
    introspection: str | None = Field(None, description="Token introspection endpoint URL (RFC 7662).")
    revocation: str | None = Field(None, description="Token revocation endpoint URL (RFC 7009).")


class DatabaseStatus(SpecModel):
    """The connection pool figures the operator computed from the budget."""

    mode: Literal["embedded", "direct", "pgbouncer"] | None = Field(
        None, description="embedded (SQLite), direct (pods to PostgreSQL) or pgbouncer."
    )
    budget: int | None = Field(None, description="spec.database.maxConnections.")
    per_pod_pool_max: int | None = Field(None, description="Most connections one pod opens (all workers).")
    per_pod_pool_min: int | None = Field(None, description="Connections one pod keeps open (all workers).")
    aggregate_max: int | None = Field(
        None, description="Most connections that reach the database: all pods, or all PgBouncer instances."
    )
    pooler_pool_size: int | None = Field(
        None, description="PgBouncer's server connections per instance (default_pool_size), pgbouncer only."
    )


class CapacityStatus(SpecModel):
    """The capacity plan (spec.capacity) and its arithmetic, to be checked by hand."""

    reachable: bool | None = Field(None, description="Whether the peak can be served within the limits.")
    binding_limit: str | None = Field(
        None, description="The limit that bounds maxReplicas below the plan's, or makes the peak unreachable."
    )
    peak_tokens_per_second: int | None = Field(None, description="spec.capacity.peakTokensPerSecond.")
    per_pod_tokens_per_second: int | None = Field(
        None, description="What one pod is assumed to sustain (spec, or the default per worker)."
    )
    headroom: float | None = Field(None, description="spec.capacity.headroom.")
    replicas_needed: int | None = Field(None, description="ceil(peak / perPod): pods that serve the peak.")
    replicas_with_headroom: int | None = Field(
        None, description="ceil(headroom x peak / perPod): pods that serve the peak with its headroom."
    )
    cpu_per_pod: str | None = Field(None, description="The CPU request of each server pod.")
    replicas_within_cores: int | None = Field(
        None, description="floor(maxCores / cpuPerPod), when spec.capacity.maxCores is set."
    )
    replicas_within_connection_budget: int | None = Field(
        None, description="Most pods whose pools fit the connection budget (direct connections only)."
    )
    min_replicas: int | None = Field(None, description="The HPA's minReplicas.")
    max_replicas: int | None = Field(None, description="The HPA's maxReplicas.")
    bounds_from: Literal["plan", "spec.autoscaling"] | None = Field(
        None, description="Where minReplicas and maxReplicas come from: the plan, or spec.autoscaling."
    )
    target_requests_per_second_per_pod: int | None = Field(
        None,
        description="min(perPod, floor(peak / maxReplicas x headroom)): what each pod is scaled to serve.",
    )
    target_cpu_utilization: int | None = Field(
        None,
        alias="targetCPUUtilization",
        description="The HPA's CPU target: floor(100 x target / perPod) percent of cpuPerPod.",
    )
    connections: int | None = Field(
        None, description="Database connections at maxReplicas (all pods, or all PgBouncer instances)."
    )
    connection_budget: int | None = Field(None, description="spec.database.maxConnections (90% usable).")
    arithmetic: list[str] | None = Field(
        None, max_length=32, description="Each figure above as the formula with its numbers."
    )


class AlgorithmKeysStatus(SpecModel):
    """The keys of one algorithm."""

    algorithm: SigningAlgorithm = Field(description="JWS algorithm.")
    active_kid: str = Field(description="kid of the key of this algorithm that signs now.")
    next_kid: str | None = Field(
        None, description="kid of the published key of this algorithm that signs after the next rotation."
    )


class SigningKeysStatus(SpecModel):
    """The signing key set."""

    algorithm: SigningAlgorithm | None = Field(None, description="Algorithm of the access-token key.")
    algorithms: list[AlgorithmKeysStatus] | None = Field(
        None,
        max_length=3,
        description="Every algorithm the key set signs with (access and ID tokens), each rotated on the "
        "same schedule.",
    )
    active_kid: str | None = Field(None, description="kid of the key that signs new tokens.")
    next_kid: str | None = Field(
        None, description="kid of the published key that signs after the next signing-key rotation."
    )
    last_rotation: str | None = Field(
        None, json_schema_extra={"format": "date-time"}, description="When the signing keys last rotated."
    )
    next_rotation: str | None = Field(
        None, json_schema_extra={"format": "date-time"}, description="When the signing keys rotate next."
    )


class IdentityProviderStatus(SpecModel):
    name: str = Field(description="The provider's name in spec.identityProviders.")
    kind: str = Field(description="oidc or ldap.")
    healthy: bool = Field(
        description="oidc: its discovery document and keys were read; ldap: its service account bound."
    )
    message: str | None = Field(None, description="What failed.")
    last_checked: str | None = Field(None, description="When the server last checked it (RFC 3339).")


class AuthServerStatus(SpecModel):
    """The observed state, written by the operator."""

    observed_generation: int | None = Field(None, description="The metadata.generation last reconciled.")
    conditions: Conditions = Field(
        default_factory=list, description="Ready, Progressing and Degraded, with reason and message."
    )
    issuer: str | None = Field(None, description="The effective issuer URL.")
    endpoints: Endpoints | None = Field(None, description="Endpoint URLs.")
    replicas: int | None = Field(None, description="Pods of the Deployment.")
    ready_replicas: int | None = Field(None, description="Ready pods of the Deployment.")
    database: DatabaseStatus | None = Field(None, description="Connection pool figures.")
    capacity: CapacityStatus | None = Field(None, description="The capacity plan and its arithmetic.")
    identity_providers: list[IdentityProviderStatus] | None = Field(
        None,
        description="Each upstream identity provider (spec.identityProviders) and whether it can be used "
        "now, as the server's admin API last said; condition IdentityProvidersAvailable sums it up.",
    )
    signing_keys: SigningKeysStatus | None = Field(None, description="Signing-key rotation state.")
