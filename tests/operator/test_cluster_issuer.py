"""The cluster's service-account issuer, read from the emulated API server's discovery document and kept by
the operator process for a while (reconcile/cluster_issuer.py): one read serves every AuthServer's
reconciles and resyncs until it is stale; a failed read is never kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from authyard_operator import metrics
from authyard_operator.kube.client import Kube
from authyard_operator.kube.config import ClusterConfig
from authyard_operator.reconcile.cluster_issuer import CACHE_SECONDS, ClusterIssuer, ClusterIssuerUnavailable

from harness.kube import custom_resource
from harness.kube_emulator import AuthyardEmulator
from harness.polling import wait_for
from tests.operator.kubeapi import KubeApi

NS = "platform"
ISSUER = "https://oidc.cluster.example.com/id/4F2A"
ROTATED = "https://oidc.cluster.example.com/id/9C1B"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def api(emulator: AuthyardEmulator) -> AsyncIterator[Kube]:
    emulator.service_account_issuer = ISSUER
    kube = Kube(ClusterConfig(server=str(emulator.url).rstrip("/"), token="t0ken"), timeout=5.0)
    yield kube
    await kube.close()


async def test_one_read_serves_until_it_is_stale(api: Kube, emulator: AuthyardEmulator) -> None:
    clock = Clock()
    issuer = ClusterIssuer(api, clock=clock)
    for _ in range(5):
        assert await issuer.issuer() == ISSUER
    assert emulator.issuer_discovery_reads == 1

    emulator.service_account_issuer = ROTATED  # the API server reconfigured
    clock.now += CACHE_SECONDS - 1
    assert await issuer.issuer() == ISSUER  # still fresh: not asked again
    assert emulator.issuer_discovery_reads == 1
    clock.now += 1
    assert await issuer.issuer() == ROTATED
    assert await issuer.issuer() == ROTATED
    assert emulator.issuer_discovery_reads == 2


async def test_a_failed_read_is_not_kept(api: Kube, emulator: AuthyardEmulator) -> None:
    clock = Clock()
    issuer = ClusterIssuer(api, clock=clock)
    emulator.fail_next("GET", "^/.well-known/openid-configuration$", 503)
    with pytest.raises(ClusterIssuerUnavailable, match="cannot be read: 503"):
        await issuer.issuer()
    assert await issuer.issuer() == ISSUER  # asked again at once, not after the TTL
    assert emulator.issuer_discovery_reads == 2

    emulator.service_account_issuer = None  # 404: a cluster without issuer discovery
    clock.now += CACHE_SECONDS
    with pytest.raises(ClusterIssuerUnavailable, match="cannot be read: 404"):
        await issuer.issuer()
    with pytest.raises(ClusterIssuerUnavailable):  # a stale issuer is not served after a failure either
        await issuer.issuer()
    emulator.service_account_issuer = ISSUER
    assert await issuer.issuer() == ISSUER
    assert emulator.issuer_discovery_reads == 5


async def test_a_document_without_an_issuer_is_refused(api: Kube, emulator: AuthyardEmulator) -> None:
    emulator.service_account_issuer = ""
    with pytest.raises(ClusterIssuerUnavailable, match="names no issuer"):
        await ClusterIssuer(api).issuer()


async def test_resyncs_of_every_authserver_share_one_read(
    operator, emulator: AuthyardEmulator, kube: KubeApi
) -> None:
    """Two AuthServers trusting their cluster, resynced every second (the tests' interval): the operator
    reads the discovery document once."""
    emulator.create_namespace(NS)
    emulator.service_account_issuer = ISSUER
    await operator("authyard_operator.main")
    path = f"/apis/authyard.dev/v1alpha1/namespaces/{NS}/authservers"
    before = metrics.RECONCILES.labels("AuthServer", "success")._value.get()
    for name in ("one", "two"):
        await kube.post(path, custom_resource("AuthServer", name, NS, {}))
    await wait_for(
        lambda: metrics.RECONCILES.labels("AuthServer", "success")._value.get() >= before + 6,
        timeout=30,
        message="fewer than 6 reconciles",
    )
    for name in ("one", "two"):
        configmap = emulator.get("v1/configmaps", NS, f"{name}-trusted-issuers")
        assert configmap is not None and ISSUER in configmap["data"]["trusted-issuers.json"]
    assert emulator.issuer_discovery_reads == 1


async def test_reconciles_that_find_it_stale_together_share_one_read(
    api: Kube, emulator: AuthyardEmulator
) -> None:
    issuer = ClusterIssuer(api)
    hold = emulator.hold_next("GET", "^/.well-known/openid-configuration$")
    waiting = [asyncio.ensure_future(issuer.issuer()) for _ in range(5)]
    await asyncio.wait_for(hold.reached.wait(), timeout=10)
    waiting[0].cancel()  # one reconcile cancelled mid-wait: the others still get the answer
    hold.release()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == [ISSUER] * 4
    assert emulator.issuer_discovery_reads == 1

    emulator.fail_next("GET", "^/.well-known/openid-configuration$", 500)
    failing = ClusterIssuer(api)
    results = await asyncio.gather(*(failing.issuer() for _ in range(3)), return_exceptions=True)
    assert all(isinstance(result, ClusterIssuerUnavailable) for result in results)
    assert emulator.issuer_discovery_reads == 2
    assert await failing.issuer() == ISSUER
