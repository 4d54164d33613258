"""Leader election on a coordination.k8s.io/v1 Lease: one active replica, the others on standby.

kopf's peering is not leader election (equal-priority peers all pause), so replicas compete for a Lease
the way client-go does: the holder renews it; a candidate takes it over once it has seen the same record
unchanged for a whole lease duration — measured on its own monotonic clock, so clock skew between nodes
cannot make a live leader look expired. Writes carry the resourceVersion, so two candidates cannot both win.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

from authyard_operator.clock import utcnow
from authyard_operator.kube.client import Kube, KubeError

log = logging.getLogger(__name__)
LEASE = "coordination.k8s.io/v1"


def _micro_time(moment: datetime) -> str:
    """Lease times are MicroTime: RFC 3339 with microseconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self, kube: Kube, namespace: str, name: str, identity: str, lease_seconds: float, renew_seconds: float
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self._observed_spec: dict[str, Any] | None = None
        self._observed_at = 0.0

    def _spec(self, acquire_time: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_seconds)),
            "acquireTime": acquire_time,
            "renewTime": _micro_time(utcnow()),
            "leaseTransitions": transitions,
        }

    async def try_acquire_or_renew(self) -> bool:
        """One attempt; True while this replica holds the lease."""
        try:
            lease = await self.kube.get(LEASE, "Lease", self.namespace, self.name)
            if lease is None:
                now = _micro_time(utcnow())
                await self.kube.create({
                    "apiVersion": LEASE, "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(now, 0),
                })  # fmt: skip
                log.info("acquired new lease %s/%s as %s", self.namespace, self.name, self.identity)
                return True
            spec = lease.get("spec") or {}
            if spec != self._observed_spec:
                self._observed_spec, self._observed_at = spec, time.monotonic()
            holder = spec.get("holderIdentity") or ""
            expired = time.monotonic() > self._observed_at + float(spec.get("leaseDurationSeconds") or 0)
            if holder and holder != self.identity and not expired:
                return False
            taking_over = holder != self.identity
            lease["spec"] = self._spec(
                _micro_time(utcnow()) if taking_over else spec.get("acquireTime") or _micro_time(utcnow()),
                int(spec.get("leaseTransitions") or 0) + (1 if taking_over else 0),
            )
            updated = await self.kube.update(lease)
            self._observed_spec, self._observed_at = updated.get("spec"), time.monotonic()
            if taking_over:
                log.info(
                    "took over lease %s/%s from %r as %s", self.namespace, self.name, holder, self.identity
                )
            return True
        except KubeError as error:
            # 409: another candidate wrote first. Anything else: we cannot prove we still lead.
            if error.status != 409:
                log.warning("lease %s/%s not renewed: %s", self.namespace, self.name, error)
            return False

    async def wait_until_leader(self) -> None:
        """Standby until this replica becomes the leader."""
        while not await self.try_acquire_or_renew():  # noqa: ASYNC110 - polling a remote Lease is the protocol
            await asyncio.sleep(self.renew_seconds)

    async def keep_leading(self, lost: asyncio.Event) -> None:
        """Renew until a renewal fails for longer than the lease; then set ``lost`` (the caller stops)."""
        last_success = time.monotonic()
        while not lost.is_set():
            await asyncio.sleep(self.renew_seconds)
            if await self.try_acquire_or_renew():
                last_success = time.monotonic()
            elif time.monotonic() - last_success >= self.lease_seconds - self.renew_seconds:
                log.error("lost the leader lease %s/%s", self.namespace, self.name)
                lost.set()

    async def release(self) -> None:
        """Hand the lease over at once on a clean shutdown (the standby need not wait for it to expire)."""
        try:
            lease = await self.kube.get(LEASE, "Lease", self.namespace, self.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = ""  # no holder: any candidate may take it at once
                await self.kube.update(lease)
        except KubeError as error:
            log.warning("lease not released: %s", error)
