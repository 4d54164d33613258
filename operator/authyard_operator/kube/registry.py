"""Every resource the operator touches and every verb it uses on it.

The single source for the chart's RBAC: a test derives the ClusterRole from this table and fails when the
chart grants more or less. A call the client makes on a resource/verb missing here fails in tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from authyard_operator.constants import GROUP, VERSION


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        path = f"{base}/{self.plural}"
        if name is not None:
            path += f"/{name}"
            if subresource:
                path += f"/{subresource}"
        return path


def _type(api_version: str, kind: str, plural: str, verbs: str, namespaced: bool = True) -> ResourceType:
    group, _, version = api_version.rpartition("/")
    return ResourceType(group, version, kind, plural, namespaced, frozenset(verbs.split()))


# Children are server-side applied (patch), read back (get), and removed when a spec stops wanting them.
_CHILD = "get patch delete"
RESOURCES: tuple[ResourceType, ...] = (
    # Our own resources: kopf lists and watches them, patches finalizers/annotations and status.
    _type(f"{GROUP}/{VERSION}", "AuthServer", "authservers", "get list watch patch"),
    _type(f"{GROUP}/{VERSION}", "OAuthClient", "oauthclients", "get list watch patch"),
    _type("v1", "ServiceAccount", "serviceaccounts", _CHILD),
    # ConfigMaps are also watched: a change to an OAuthClient's JWKS ConfigMap reaches its registration.
    _type("v1", "ConfigMap", "configmaps", _CHILD + " list watch"),
    # Credentials Secrets are replaced whole (create/update with resourceVersion), not applied.
    _type("v1", "Secret", "secrets", _CHILD + " create update"),
    _type("v1", "Service", "services", _CHILD),
    _type("v1", "PersistentVolumeClaim", "persistentvolumeclaims", _CHILD),
    _type("apps/v1", "Deployment", "deployments", _CHILD + " list watch"),
    _type("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", _CHILD),
    _type("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", _CHILD),
    _type("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors", _CHILD),
    _type("v1", "Event", "events", "create"),
    # An AuthServer's pods may read the cluster's service-account issuer (discovery and JWKS): the operator
    # binds the system:service-account-issuer-discovery ClusterRole to their ServiceAccount.
    _type("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", _CHILD,
          namespaced=False),
    _type("coordination.k8s.io/v1", "Lease", "leases", "get create update"),
    # kopf watches namespaces to follow --namespace patterns; the operator never changes them.
    _type("v1", "Namespace", "namespaces", "get list watch", namespaced=False),
    # kopf observes CRDs appearing and going; the operator reads whether the ServiceMonitor CRD exists.
    _type("apiextensions.k8s.io/v1", "CustomResourceDefinition", "customresourcedefinitions",
          "get list watch", namespaced=False),
)  # fmt: skip

# Documents outside the resources the operator reads (verb get): the cluster's service-account issuer, whose
# issuer string an AuthServer's trusted-issuers file needs.
NON_RESOURCE_URLS: frozenset[str] = frozenset({"/.well-known/openid-configuration"})
# ClusterRoles the operator binds (RBAC's escalation check: verb bind, limited to these names).
BOUND_CLUSTER_ROLES: frozenset[str] = frozenset({"system:service-account-issuer-discovery"})

_BY_KIND = {(resource.api_version, resource.kind): resource for resource in RESOURCES}


def resource_for(api_version: str, kind: str) -> ResourceType:
    try:
        return _BY_KIND[(api_version, kind)]
    except KeyError:
        raise LookupError(
            f"the operator does not manage {api_version} {kind}; add it to the registry"
        ) from None
