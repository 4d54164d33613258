"""The cluster's service-account issuer, as the operator process knows it.

It is the ``issuer`` of the API server's service-account issuer discovery document (OIDC Discovery 1.0
§3), read with the operator's own credentials: what the cluster's projected tokens carry as ``iss``. A
cluster's issuer changes only when the API server is reconfigured (``--service-account-issuer``), yet every
AuthServer that trusts its cluster reconciles on each resync: one read per ``CACHE_SECONDS`` serves them
all. Only a good answer is kept: a failed read is retried by the next reconcile, never remembered.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from authyard_operator.kube.client import Kube, KubeError
from authyard_operator.resources.trusted_issuers import CLUSTER_DISCOVERY_PATH

CACHE_SECONDS = 600.0


class ClusterIssuerUnavailable(Exception):
    """The discovery document could not be read, or names no issuer; the message says which."""


class ClusterIssuer:
    def __init__(
        self, kube: Kube, ttl: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._kube = kube
        self._ttl = ttl
        self._clock = clock
        self._issuer: str | None = None
        self._read_at = -math.inf
        self._reading: asyncio.Future[str] | None = None

    async def issuer(self) -> str:
        """The issuer read within the last ``ttl`` seconds, or read now; raises ClusterIssuerUnavailable."""
        if self._issuer is not None and self._clock() - self._read_at < self._ttl:
            return self._issuer
        # Reconciles that find it stale together (the operator starting) wait for one read, not one each.
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read_and_keep())
            self._reading.add_done_callback(self._read_done)
        # Shielded: a reconcile cancelled while waiting must not cancel the read the others wait for.
        return await asyncio.shield(self._reading)

    async def _read_and_keep(self) -> str:
        issuer = await self._read()
        self._issuer, self._read_at = issuer, self._clock()
        return issuer

    def _read_done(self, reading: asyncio.Future[str]) -> None:
        self._reading = None  # a failure is not kept: the next call reads again
        if not reading.cancelled():
            reading.exception()  # retrieved here too, in case every waiter was cancelled

    async def _read(self) -> str:
        where = f"the cluster's service-account issuer discovery ({CLUSTER_DISCOVERY_PATH})"
        try:
            document = await self._kube.get_non_resource(CLUSTER_DISCOVERY_PATH)
        except KubeError as error:
            raise ClusterIssuerUnavailable(f"{where} cannot be read: {error}") from None
        issuer = document.get("issuer")
        if not isinstance(issuer, str) or not issuer:
            raise ClusterIssuerUnavailable(f"{where} names no issuer")
        return issuer
