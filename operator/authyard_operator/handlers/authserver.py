"""AuthServer handlers: reconcile on every change, on resume, and on a timer (drift, signing-key rotation)."""

from __future__ import annotations

from typing import Any

import kopf

from authyard_operator.clock import utcnow
from authyard_operator.constants import FIELD_MANAGER, GROUP, VERSION
from authyard_operator.handlers.common import finish, guarded_reconcile
from authyard_operator.kube.client import KubeError
from authyard_operator.reconcile.authserver import (
    api_failure,
    follow_rollout,
    reconcile_authserver,
    release_cluster_children,
    server_deployment_owner,
)
from authyard_operator.reconcile.outcome import Outcome
from authyard_operator.settings import OperatorSettings
from authyard_operator.status import write
from authyard_operator.status.authserver import DeploymentState

KIND = "AuthServer"
# Read once at import: kopf's decorators need the interval when handlers are registered.
RESYNC_SECONDS = OperatorSettings().resync_interval.total_seconds()
PLURAL = "authservers"


async def _reconcile(body: kopf.Body, memo: kopf.Memo) -> Outcome:
    return await guarded_reconcile(
        KIND,
        body,
        memo,
        lambda current: reconcile_authserver(memo.kube, memo.cluster_issuer, current, utcnow()),
        lambda error, current: api_failure(error, current, utcnow()),
    )


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    outcome = await _reconcile(body, memo)
    # A rollout in progress is not a failure: the Deployment watcher below reports its end.
    finish(body, patch, outcome, retry=outcome.failed and not outcome.permanent_failure)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def release(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Behind a finalizer: the cluster-scoped ClusterRoleBinding of the AuthServer's pods, which no
    ownerReference ties to it (namespaced children go with their ownerReferences)."""
    meta = body["metadata"]
    try:
        await release_cluster_children(memo.kube, meta["name"], meta["namespace"])
    except KubeError as error:
        raise kopf.TemporaryError(f"Kubernetes API error: {error}", delay=10) from None
    memo.locks.forget(KIND, meta["namespace"], meta["name"])


@kopf.timer(GROUP, VERSION, PLURAL, interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
async def resync(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Corrects drift in children, rotates and prunes keys on schedule, refreshes readiness."""
    outcome = await _reconcile(body, memo)
    finish(body, patch, outcome, retry=False)


@kopf.on.event("apps", "v1", "deployments", labels={"app.kubernetes.io/managed-by": FIELD_MANAGER})
async def deployment_changed(body: kopf.Body, memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    """A server Deployment's rollout moved: update its AuthServer's readiness without a full reconcile."""
    owner = server_deployment_owner(body)
    if owner is None:
        return
    namespace = body["metadata"]["namespace"]
    async with memo.locks.of(KIND, namespace, owner["name"]):
        try:
            change = await follow_rollout(
                memo.kube, namespace, owner, DeploymentState.of(dict(body)), utcnow()
            )
            if change is not None:
                await write.patch_if_changed(memo.kube, change)
        except KubeError as error:  # the next rollout event or the resync reports it instead
            logger.warning("rollout state of %s/%s not recorded: %s", namespace, owner["name"], error)
