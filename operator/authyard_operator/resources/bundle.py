"""Every child of an AuthServer, rendered together: the desired state the apply layer converges to."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from authyard_operator.capacity import CapacityPlan
from authyard_operator.dburl import parse_database_url
from authyard_operator.keys import KeyPlan
from authyard_operator.resources import identity_providers
from authyard_operator.resources.configmap import config_hash, render_configmap
from authyard_operator.resources.deployment import render_deployment
from authyard_operator.resources.hpa import render_hpa
from authyard_operator.resources.meta import PGBOUNCER, Names
from authyard_operator.resources.pdb import render_pdb
from authyard_operator.resources.pgbouncer import (
    databases_ini,
    render_pgbouncer_configmap,
    render_pgbouncer_deployment,
    render_pgbouncer_secret,
    render_pgbouncer_service,
)
from authyard_operator.resources.secrets import render_admin_secret, render_signing_keys_secret
from authyard_operator.resources.service import render_service
from authyard_operator.resources.serviceaccount import render_service_account
from authyard_operator.resources.servicemonitor import render_service_monitor
from authyard_operator.resources.storage import render_data_claim
from authyard_operator.resources.trusted_issuers import (
    render_issuer_discovery_binding,
    render_trusted_issuers_configmap,
    trusted_issuers_document,
    trusts_any_issuer,
)
from authyard_operator.sizing import PoolSizing
from authyard_operator.spec.authserver import AuthServerSpec


@dataclass(frozen=True)
class Observed:
    """What the apply layer read from the cluster before rendering."""

    signing_keys_secret: dict[str, Any] | None = None
    admin_secret: dict[str, Any] | None = None
    database_url: str | None = None  # the value behind spec.database.urlSecretRef (PgBouncer mode needs it)
    service_monitor_available: bool = False  # the monitoring.coreos.com ServiceMonitor CRD exists
    backchannel_ca: str | None = None  # the PEM behind spec.backchannelLogout.trustedCA
    # The resourceVersions of the Secrets and ConfigMaps spec.identityProviders names: a new version rolls
    # the pods (a digest of the values would be a digest of secrets: no place for an annotation).
    identity_provider_versions: tuple[str, ...] = ()
    cluster_issuer: str | None = None  # the API server's service-account issuer (workloadIdentity.kubernetes)
    issuer_cas: dict[str, str] = field(default_factory=dict)  # trusted issuer name -> its caConfigMapRef PEM


@dataclass(frozen=True)
class Desired:
    children: list[dict[str, Any]]
    key_plan: KeyPlan
    config_hash: str
    unwanted: list[tuple[str, str, str]] = field(default_factory=list)  # (apiVersion, kind, name) to delete
    # Cluster-scoped objects: no ownerReference can tie them to a namespaced AuthServer.
    cluster_children: list[dict[str, Any]] = field(default_factory=list)
    cluster_unwanted: list[tuple[str, str, str]] = field(default_factory=list)


def render_children(
    name: str,
    namespace: str,
    spec: AuthServerSpec,
    sizing: PoolSizing,
    observed: Observed,
    now: datetime,
    plan: CapacityPlan | None = None,
) -> Desired:
    """All children for a spec whose pools fit (``sizing.fits``) and whose capacity plan, if any, is
    reachable. ValueError: an input is unusable (e.g. the database URL in PgBouncer mode), with a message
    for the AuthServer's status."""
    if not sizing.fits:
        raise ValueError(sizing.message)
    if plan is not None and not plan.reachable:
        raise ValueError(plan.message)
    configmap = render_configmap(name, namespace, spec, sizing)
    signing_keys, key_plan = render_signing_keys_secret(
        name, namespace, spec.tokens, observed.signing_keys_secret, now
    )
    children = [
        render_service_account(name, namespace),
        configmap,
        signing_keys,
        render_admin_secret(name, namespace, observed.admin_secret),
    ]
    if spec.embedded:
        children.append(render_data_claim(name, namespace, spec))
    if spec.backchannel_logout.trusted_ca is not None:
        _check_certificates(observed.backchannel_ca, "spec.backchannelLogout.trustedCA")
    issuers = trusted_issuers_document(spec, observed.cluster_issuer)
    if issuers is not None:
        children.append(render_trusted_issuers_configmap(name, namespace, issuers))
    for index, trusted in enumerate(spec.workload_identity.trusted_issuers):
        if trusted.ca_config_map_ref is not None:
            field_path = f"spec.workloadIdentity.trustedIssuers[{index}].caConfigMapRef"
            _check_certificates(observed.issuer_cas.get(trusted.name), field_path)
    # CA files and the issuers file are read when a worker starts: a new one must roll the pods (certificates
    # and issuers are public).
    pod_config_hash = config_hash(
        configmap["data"], observed.backchannel_ca or "", issuers, sorted(observed.issuer_cas.items())
    )
    if identity_providers.wanted(spec):
        upstreams = identity_providers.render_configmap(name, namespace, spec)
        children.append(upstreams)
        pod_config_hash = config_hash(pod_config_hash, upstreams["data"], observed.identity_provider_versions)
    if spec.uses_pgbouncer:
        if not observed.database_url:
            raise ValueError("the database URL Secret (spec.database.urlSecretRef) is missing or empty")
        database = parse_database_url(observed.database_url)
        pgbouncer_config = render_pgbouncer_configmap(name, namespace, sizing, database)
        # Hash what PgBouncer reads except the password: a digest of a password is no place for an annotation.
        pgbouncer_hash = config_hash(pgbouncer_config["data"], databases_ini(database), database.user)
        children += [
            pgbouncer_config,
            render_pgbouncer_secret(name, namespace, database),
            render_pgbouncer_deployment(name, namespace, spec, sizing, pgbouncer_hash),
            render_pgbouncer_service(name, namespace),
            render_pdb(name, namespace, PGBOUNCER),
        ]
    children += [
        render_deployment(name, namespace, spec, sizing, pod_config_hash, plan),
        render_service(name, namespace),
        render_pdb(name, namespace),
    ]
    if spec.autoscaled:
        children.append(render_hpa(name, namespace, spec, plan))
    if observed.service_monitor_available:
        children.append(render_service_monitor(name, namespace))
    binding = render_issuer_discovery_binding(name, namespace)
    binding_key = (binding["apiVersion"], binding["kind"], binding["metadata"]["name"])
    if spec.workload_identity.kubernetes.enabled:
        cluster_children, cluster_unwanted = [binding], []
    else:
        cluster_children, cluster_unwanted = [], [binding_key]
    return Desired(
        children,
        key_plan,
        pod_config_hash,
        unwanted_children(name, spec),
        cluster_children,
        cluster_unwanted,
    )


def _check_certificates(pem: str | None, field_path: str) -> None:
    """The server refuses to start on a CA file it cannot load: judge it here, before any pod does."""
    try:
        ssl.create_default_context(cadata=pem or "")
    except (ssl.SSLError, ValueError) as error:
        raise ValueError(f"{field_path} is not PEM CA certificates ({error})") from None


def unwanted_children(name: str, spec: AuthServerSpec) -> list[tuple[str, str, str]]:
    """Children an earlier spec may have created that this one does not want. The SQLite claim is never
    listed: dropping a database is not a side effect of an edit (it goes with the AuthServer)."""
    names = Names(name)
    unwanted = []
    if not spec.autoscaled:
        unwanted.append(("autoscaling/v2", "HorizontalPodAutoscaler", names.server))
    if not identity_providers.wanted(spec):
        unwanted.append(("v1", "ConfigMap", names.identity_providers))
    if not trusts_any_issuer(spec):
        unwanted.append(("v1", "ConfigMap", names.trusted_issuers))
    if not spec.uses_pgbouncer:
        unwanted += [
            ("apps/v1", "Deployment", names.pgbouncer),
            ("v1", "Service", names.pgbouncer),
            ("v1", "ConfigMap", names.pgbouncer),
            ("v1", "Secret", names.pgbouncer),
            ("policy/v1", "PodDisruptionBudget", names.pgbouncer),
        ]
    return unwanted
