"""Reconcile an AuthServer: validate, plan capacity, size pools, observe, render children, apply, report."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from authyard_operator.apply import apply_children, delete_unwanted
from authyard_operator.capacity import CAPACITY_UNREACHABLE, plan_capacity
from authyard_operator.constants import API_VERSION
from authyard_operator.endpoints import effective_issuer
from authyard_operator.kube.client import Kube, KubeError
from authyard_operator.reconcile.cluster_issuer import ClusterIssuer, ClusterIssuerUnavailable
from authyard_operator.reconcile.outcome import Event, Outcome
from authyard_operator.resources import identity_providers
from authyard_operator.resources.bundle import Observed, render_children
from authyard_operator.resources.meta import Names
from authyard_operator.resources.trusted_issuers import render_issuer_discovery_binding
from authyard_operator.retry_after import delay as retry_delay
from authyard_operator.sizing import size_pools
from authyard_operator.spec.authserver import AuthServerSpec
from authyard_operator.spec.common import ConfigMapKeyRef
from authyard_operator.spec.rules import parse_spec
from authyard_operator.status.authserver import (
    DeploymentState,
    capacity_status,
    failed_status,
    invalid_spec_status,
    reconciled_status,
    with_deployment_state,
)
from authyard_operator.status.write import StatusChange

SERVICE_MONITOR_CRD = "servicemonitors.monitoring.coreos.com"
ROLLOUT_POLL_SECONDS = 10.0


class MissingInput(Exception):
    """Something the spec refers to does not exist (yet): Ready=False with a reason, retried."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


async def _secret_value(kube: Kube, namespace: str, name: str, key: str) -> str:
    secret = await kube.get("v1", "Secret", namespace, name)
    if secret is None:
        raise MissingInput(
            "DatabaseSecretMissing", f"Secret {name} (spec.database.urlSecretRef) does not exist"
        )
    encoded = (secret.get("data") or {}).get(key)
    if not encoded:
        raise MissingInput(
            "DatabaseSecretMissing", f"Secret {name} has no key '{key}' (spec.database.urlSecretRef)"
        )
    try:
        return base64.b64decode(encoded, validate=True).decode()
    except ValueError:
        raise MissingInput(
            "DatabaseSecretInvalid", f"Secret {name} key '{key}' is not valid base64"
        ) from None


async def _identity_provider_inputs(kube: Kube, namespace: str, spec: AuthServerSpec) -> tuple[str, ...]:
    """The resourceVersion of every Secret and ConfigMap spec.identityProviders names, each checked to hold
    its key (a pod would otherwise wait for the volume forever)."""
    versions = []
    for reference in identity_providers.references(spec):
        found = await kube.get("v1", reference.kind, namespace, reference.name)
        if not ((found or {}).get("data") or {}).get(reference.key):
            raise MissingInput(
                "IdentityProviderInputMissing",
                f"{reference.kind} {reference.name} key '{reference.key}' ({reference.field}) is missing or "
                "empty",
            )
        versions.append(str((found or {}).get("metadata", {}).get("resourceVersion", "")))
    return tuple(versions)


async def _config_map_text(
    kube: Kube, namespace: str, reference: ConfigMapKeyRef, field_path: str, reason: str
) -> str:
    """The value behind a ConfigMap key reference; MissingInput when the ConfigMap or the key is absent."""
    configmap = await kube.get("v1", "ConfigMap", namespace, reference.name)
    value = ((configmap or {}).get("data") or {}).get(reference.key)
    if not value:
        raise MissingInput(
            reason, f"ConfigMap {reference.name} key '{reference.key}' ({field_path}) is missing or empty"
        )
    return str(value)


async def _cluster_issuer(cluster_issuer: ClusterIssuer) -> str:
    try:
        return await cluster_issuer.issuer()
    except ClusterIssuerUnavailable as error:
        raise MissingInput(
            "ClusterIssuerUnavailable",
            f"{error}; set spec.workloadIdentity.kubernetes.enabled to false to trust no cluster tokens",
        ) from None


async def observe(
    kube: Kube, cluster_issuer: ClusterIssuer, name: str, namespace: str, spec: AuthServerSpec
) -> Observed:
    names = Names(name)
    database_url = None
    if spec.uses_pgbouncer and spec.database is not None:
        reference = spec.database.url_secret_ref
        database_url = await _secret_value(kube, namespace, reference.name, reference.key)
    backchannel_ca = None
    trusted_ca = spec.backchannel_logout.trusted_ca
    if trusted_ca is not None:
        backchannel_ca = await _config_map_text(
            kube, namespace, trusted_ca, "spec.backchannelLogout.trustedCA", "BackchannelCAMissing"
        )
    issuer_cas = {}
    for index, trusted in enumerate(spec.workload_identity.trusted_issuers):
        if trusted.ca_config_map_ref is not None:
            field_path = f"spec.workloadIdentity.trustedIssuers[{index}].caConfigMapRef"
            issuer_cas[trusted.name] = await _config_map_text(
                kube, namespace, trusted.ca_config_map_ref, field_path, "IssuerCAMissing"
            )
    issuer = None
    if spec.workload_identity.kubernetes.enabled:
        issuer = await _cluster_issuer(cluster_issuer)
    return Observed(
        backchannel_ca=backchannel_ca,
        identity_provider_versions=await _identity_provider_inputs(kube, namespace, spec),
        cluster_issuer=issuer,
        issuer_cas=issuer_cas,
        signing_keys_secret=await kube.get("v1", "Secret", namespace, names.signing_keys),
        admin_secret=await kube.get("v1", "Secret", namespace, names.admin),
        database_url=database_url,
        service_monitor_available=await kube.get(
            "apiextensions.k8s.io/v1", "CustomResourceDefinition", None, SERVICE_MONITOR_CRD
        ) is not None,
    )  # fmt: skip


async def reconcile_authserver(
    kube: Kube, cluster_issuer: ClusterIssuer, body: dict[str, Any], now: datetime
) -> Outcome:
    meta = body["metadata"]
    name, namespace, generation = meta["name"], meta["namespace"], int(meta.get("generation") or 1)
    previous = body.get("status") or {}

    spec, problems = parse_spec(AuthServerSpec, body.get("spec"), name)
    if spec is None or problems:
        message = "; ".join(map(str, problems))
        return Outcome(
            invalid_spec_status(generation, problems, now, previous),
            [Event("Warning", "InvalidSpec", message)],
            permanent_failure=True,
        )
    plan = plan_capacity(spec)
    if plan is not None and not plan.reachable:
        status = failed_status(generation, CAPACITY_UNREACHABLE, plan.message, now, previous)
        return Outcome(
            {**status, "capacity": capacity_status(previous, plan.status())},
            [Event("Warning", CAPACITY_UNREACHABLE, plan.message)],
            permanent_failure=True,
        )
    sizing = size_pools(spec, plan.max_replicas if plan is not None else None)
    if not sizing.fits:
        return Outcome(
            failed_status(generation, "PoolBudgetExceeded", sizing.message, now, previous),
            [Event("Warning", "PoolBudgetExceeded", sizing.message)],
            permanent_failure=True,
        )

    try:
        observed = await observe(kube, cluster_issuer, name, namespace, spec)
        desired = render_children(name, namespace, spec, sizing, observed, now, plan)
    except MissingInput as missing:
        return Outcome(
            failed_status(generation, missing.reason, missing.message, now, previous),
            [Event("Warning", missing.reason, missing.message)],
            retry_after=30,
        )
    except ValueError as error:
        return Outcome(
            failed_status(generation, "InvalidSpec", str(error), now, previous),
            [Event("Warning", "InvalidSpec", str(error))],
            permanent_failure=True,
        )

    owner = {"apiVersion": API_VERSION, "kind": "AuthServer", "metadata": meta}
    live = await apply_children(kube, owner, desired.children)
    for child in desired.cluster_children:
        await kube.apply(child)
    deleted = await delete_unwanted(kube, namespace, desired.unwanted)
    deleted += await delete_unwanted(kube, None, desired.cluster_unwanted)

    events = [
        Event("Normal", "Deleted", f"deleted {item}, which the spec no longer wants") for item in deleted
    ]
    key_plan = desired.key_plan
    if key_plan.action == "regenerated":
        events.append(Event("Warning", "SigningKeysRegenerated", key_plan.note))
    elif key_plan.changed:
        events.append(
            Event("Normal", f"SigningKeys{key_plan.action.capitalize()}", key_plan.note or key_plan.action)
        )
    if previous.get("observedGeneration") != generation:
        events.append(Event("Normal", "Reconciled", f"generation {generation}: {len(live)} children applied"))

    deployment = live.get(f"Deployment/{Names(name).server}")
    state = DeploymentState.of(deployment) if deployment else None
    status = reconciled_status(
        generation=generation,
        issuer=effective_issuer(name, namespace, spec),
        sizing=sizing,
        capacity=plan,
        key_plan=key_plan,
        tokens=spec.tokens,
        deployment=state,
        now=now,
        previous=previous,
    )
    rolled_out = state is not None and state.rolled_out
    return Outcome(status, events, retry_after=None if rolled_out else ROLLOUT_POLL_SECONDS)


async def release_cluster_children(kube: Kube, name: str, namespace: str) -> None:
    """Delete what the AuthServer had outside its namespace (gone already: nothing to do)."""
    binding = render_issuer_discovery_binding(name, namespace)
    await kube.delete(binding["apiVersion"], binding["kind"], None, binding["metadata"]["name"])


def api_failure(error: KubeError, body: dict[str, Any], now: datetime) -> Outcome:
    """An API call failed mid-reconcile: say so in status; retry when it may pass."""
    meta = body["metadata"]
    message = f"Kubernetes API error: {error}"
    return Outcome(
        failed_status(int(meta.get("generation") or 1), "ApiError", message, now, body.get("status") or {}),
        [Event("Warning", "ApiError", message)],
        retry_after=retry_delay(15, error.retry_after) if error.retryable else None,
        permanent_failure=not error.retryable,
    )


def server_deployment_owner(deployment: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ownerReference of the AuthServer whose server Deployment this is; None for PgBouncer's Deployment
    or one that is not ours."""
    meta = deployment["metadata"]
    owner: dict[str, Any] | None = next((ref for ref in meta.get("ownerReferences", [])
                  if ref.get("kind") == "AuthServer" and ref.get("controller")), None)  # fmt: skip
    if owner is None or meta["name"] != owner["name"]:
        return None
    return owner


async def follow_rollout(
    kube: Kube, namespace: str, owner: dict[str, Any], deployment: DeploymentState, now: datetime
) -> StatusChange | None:
    """The AuthServer's readiness after its server Deployment's rollout moved, without a full reconcile;
    None when the AuthServer is gone (or is a new one of the same name) or a full reconcile must decide."""
    authserver = await kube.get(API_VERSION, "AuthServer", namespace, owner["name"])
    if authserver is None or authserver["metadata"].get("uid") != owner.get("uid"):
        return None
    previous = authserver.get("status") or {}
    generation = int(authserver["metadata"].get("generation") or 1)
    status = with_deployment_state(previous, generation, deployment, now)
    if status is None:
        return None
    return StatusChange(API_VERSION, "AuthServer", namespace, owner["name"], previous, status)
