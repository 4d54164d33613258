"""The chart's RBAC grants exactly what the operator uses: nothing more, nothing less.

The expected grants are derived from the operator's own registry (``authyard_operator.kube.registry.
RESOURCES``: every resource and verb its API client may use; a call outside it fails the operator's tests),
plus the few things the registry does not list, each stated below with its reason. They are compared with
what the rendered ClusterRole/Roles grant to the operator's ServiceAccount, in both configurations:

- cluster-wide watching (``watchNamespaces: []``): namespaced resources through the ClusterRole;
- namespaced watching: namespaced resources through a Role in each watched namespace, and the ClusterRole
  limited to the cluster-scoped reads.

Decision encoded here: the leader-election Lease is granted by a Role in the release namespace only (the
operator sets AUTHYARD_LEASE_NAMESPACE to its own namespace through the downward API), never cluster-wide;
``get``/``update`` are further limited to the Lease's name (``create`` cannot be limited by name).
kopf's own peering (kopfpeerings) is not used: the operator runs kopf standalone.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from authyard_operator.kube.registry import BOUND_CLUSTER_ROLES, NON_RESOURCE_URLS, RESOURCES

from tests.packaging.helm_support import NAMESPACE, ROOT, VALUES_EXAMPLES, by_kind, one, render

Grant = tuple[str, str, str]  # (apiGroup, resource, verb); (NON_RESOURCE, url, verb) for nonResourceURLs
LEASE_KIND = "Lease"
NON_RESOURCE = "<nonResourceURL>"
BIND = ("rbac.authorization.k8s.io", "clusterroles", "bind")


def _own_crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in sorted((ROOT / "crds").glob("*.yaml"))]


def _extra_grants() -> dict[Grant, str]:
    """What the operator needs beyond its registry's resource/verb table, with the reason for each."""
    extra: dict[Grant, str] = {}
    for crd in _own_crds():
        group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
        if any("status" in (version.get("subresources") or {}) for version in crd["spec"]["versions"]):
            extra[(group, f"{plural}/status", "patch")] = (
                "the CRD declares the status subresource: Kube.patch_status and kopf write status through "
                "<plural>/status, which RBAC treats as a resource of its own"
            )
        extra[(group, f"{plural}/finalizers", "update")] = (
            "children carry ownerReferences with blockOwnerDeletion: true; API servers running the "
            "OwnerReferencesPermissionEnforcement admission plugin (e.g. OpenShift) require update on the "
            "owner's finalizers subresource to set them"
        )
    return extra


# What kopf itself needs, checked to be in the registry already (so no extra grant is required for it):
KOPF_NEEDS_FROM_REGISTRY = {
    ("authyard.dev", "authservers", "list"): "kopf lists the resources it serves",
    ("authyard.dev", "authservers", "watch"): "kopf watches the resources it serves",
    ("authyard.dev", "authservers", "patch"): "kopf patches finalizers and its progress annotations",
    ("authyard.dev", "oauthclients", "list"): "kopf lists the resources it serves",
    ("authyard.dev", "oauthclients", "watch"): "kopf watches the resources it serves",
    ("authyard.dev", "oauthclients", "patch"): "kopf patches finalizers and its progress annotations",
    ("", "events", "create"): "kopf.event() and kopf's own handler-failure events",
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"): "kopf scans the served CRDs",
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"): "kopf follows CRDs appearing/going",
    ("", "namespaces", "list"): "kopf resolves namespace patterns",
    ("", "namespaces", "watch"): "kopf follows namespaces appearing/going",
}


@dataclass(frozen=True)
class Expected:
    cluster_scoped: frozenset[Grant]
    namespaced: frozenset[Grant]  # in every watched namespace (all of them when cluster-wide)
    lease: frozenset[Grant]  # in the release namespace only


def expected() -> Expected:
    cluster, namespaced, lease = set(), set(), set()
    for resource in RESOURCES:
        grants = {(resource.group, resource.plural, verb) for verb in resource.verbs}
        if resource.kind == LEASE_KIND:
            lease |= grants
        elif resource.namespaced:
            namespaced |= grants
        else:
            cluster |= grants
    namespaced |= set(_extra_grants())
    cluster |= {(NON_RESOURCE, url, "get") for url in NON_RESOURCE_URLS}
    # RBAC's escalation check: binding a ClusterRole needs bind on it (limited to BOUND_CLUSTER_ROLES).
    cluster.add(BIND)
    return Expected(frozenset(cluster), frozenset(namespaced), frozenset(lease))


def test_the_registry_covers_what_kopf_needs() -> None:
    everything = expected()
    granted = everything.cluster_scoped | everything.namespaced
    missing = {grant: reason for grant, reason in KOPF_NEEDS_FROM_REGISTRY.items() if grant not in granted}
    assert missing == {}


def test_no_kopf_peering() -> None:
    assert not any("kopf" in resource.group for resource in RESOURCES)


# --- reading the rendered RBAC ---------------------------------------------------------------------------


@dataclass
class Granted:
    """Grants to the operator's ServiceAccount, by where they apply."""

    cluster: set[Grant]  # ClusterRole bound by a ClusterRoleBinding: every namespace and cluster scope
    by_namespace: dict[str, set[Grant]]  # Roles bound by RoleBindings
    resource_names: dict[tuple[str, Grant], set[str]]  # (namespace, grant) -> names it is limited to


def _rule_grants(rule: dict[str, Any]) -> set[Grant]:
    if "nonResourceURLs" in rule:
        assert "*" not in rule["nonResourceURLs"] and "*" not in rule["verbs"], rule
        return {(NON_RESOURCE, url, verb) for url in rule["nonResourceURLs"] for verb in rule["verbs"]}
    for key in ("apiGroups", "resources", "verbs"):
        assert "*" not in rule[key], f"wildcard in {key}: {rule}"
    return {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def granted(objects: list[dict[str, Any]]) -> Granted:
    deployment = one(objects, "Deployment")
    service_account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    subject = {"kind": "ServiceAccount", "name": service_account, "namespace": NAMESPACE}
    cluster_roles = {role["metadata"]["name"]: role for role in by_kind(objects, "ClusterRole")}
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in by_kind(objects, "Role")}
    result = Granted(set(), defaultdict(set), defaultdict(set))

    for binding in by_kind(objects, "ClusterRoleBinding"):
        assert binding["subjects"] == [subject]
        assert binding["roleRef"]["kind"] == "ClusterRole"
        for rule in cluster_roles[binding["roleRef"]["name"]]["rules"]:
            grants = _rule_grants(rule)
            if "resourceNames" in rule:  # only bind, only on the ClusterRoles the operator binds
                assert grants == {BIND} and set(rule["resourceNames"]) == BOUND_CLUSTER_ROLES, rule
            else:
                assert BIND not in grants, "bind on every ClusterRole is escalation to cluster-admin"
            result.cluster |= grants
    for binding in by_kind(objects, "RoleBinding"):
        namespace = binding["metadata"]["namespace"]
        assert binding["subjects"] == [subject]
        assert binding["roleRef"]["kind"] == "Role", "a RoleBinding to a ClusterRole would hide grants"
        for rule in roles[(namespace, binding["roleRef"]["name"])]["rules"]:
            grants = _rule_grants(rule)
            result.by_namespace[namespace] |= grants
            if "resourceNames" in rule:
                for grant in grants:
                    result.resource_names[(namespace, grant)] |= set(rule["resourceNames"])
    bound = {binding["roleRef"]["name"] for binding in by_kind(objects, "ClusterRoleBinding")}
    assert set(cluster_roles) == bound, "every ClusterRole is bound (no dead RBAC)"
    bindings = by_kind(objects, "RoleBinding")
    bound_roles = {(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in bindings}
    assert set(roles) == bound_roles, "every Role is bound (no dead RBAC)"
    return result


def _lease_name(objects: list[dict[str, Any]]) -> str:
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    (item,) = [item for item in container["env"] if item["name"] == "AUTHYARD_LEASE_NAME"]
    return item["value"]


def _assert_lease_role(objects: list[dict[str, Any]], grants: Granted) -> None:
    want = expected()
    assert grants.by_namespace[NAMESPACE] >= want.lease
    lease_name = _lease_name(objects)
    for grant in want.lease:
        names = grants.resource_names.get((NAMESPACE, grant))
        if grant[2] == "create":
            assert names is None, "create cannot be limited by resourceNames"
        else:
            assert names == {lease_name}, grant
    # The Lease is granted nowhere else.
    assert not (grants.cluster & want.lease)
    for namespace, namespace_grants in grants.by_namespace.items():
        if namespace != NAMESPACE:
            assert not (namespace_grants & want.lease), namespace


# --- the two configurations ------------------------------------------------------------------------------


def test_cluster_wide_grants_exactly_the_registry() -> None:
    objects = render()
    grants = granted(objects)
    want = expected()
    assert grants.cluster - (want.cluster_scoped | want.namespaced) == set(), "granted but not used"
    assert (want.cluster_scoped | want.namespaced) - grants.cluster == set(), "used but not granted"
    assert set(grants.by_namespace) == {NAMESPACE}
    assert grants.by_namespace[NAMESPACE] == want.lease
    _assert_lease_role(objects, grants)


@pytest.mark.parametrize(
    "values_files",
    [(VALUES_EXAMPLES / "values-namespaced.yaml",), ()],
    ids=["values-namespaced", "set-watchNamespaces"],
)
def test_namespaced_grants_exactly_the_registry_per_namespace(values_files: tuple[Path, ...]) -> None:
    sets = () if values_files else ('watchNamespaces=["team-x", "authyard-system"]',)
    objects = render(values_files=values_files, sets=sets)
    if values_files:
        watched = yaml.safe_load(values_files[0].read_text())["watchNamespaces"]
    else:
        watched = ["team-x", NAMESPACE]
    grants = granted(objects)
    want = expected()
    assert grants.cluster == want.cluster_scoped, "only the cluster-scoped reads are cluster-wide"
    assert set(grants.by_namespace) == set(watched) | {NAMESPACE}
    for namespace in watched:
        extra_for_lease = want.lease if namespace == NAMESPACE else set()
        assert grants.by_namespace[namespace] == want.namespaced | extra_for_lease, namespace
    if NAMESPACE not in watched:
        assert grants.by_namespace[NAMESPACE] == want.lease
    _assert_lease_role(objects, grants)


def test_no_lease_role_without_leader_election() -> None:
    objects = render(sets=("replicaCount=1", 'leaderElection={"enabled": false}'))
    grants = granted(objects)
    assert dict(grants.by_namespace) == {}
    assert not (grants.cluster & expected().lease)


def test_rbac_can_be_left_to_the_platform_team() -> None:
    objects = render(sets=('rbac={"create": false}',))
    assert not {obj["kind"] for obj in objects} & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
