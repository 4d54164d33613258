"""Deleting an OAuthClient: the registration goes with it, and the deletion is never stranded.

The reconcile reads the emulated API with the operator's own client; the admin API it calls is a closed
port (the registration's happy path runs against a real auth server in the integration tests)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from authyard_operator.admin_client import AdminClient
from authyard_operator.kube.client import Kube
from authyard_operator.kube.config import ClusterConfig
from authyard_operator.reconcile.oauthclient import ClientReconciler, UnregisterPending
from authyard_operator.reconcile.outcome import Event

from harness.kube import AUTHSERVERS
from harness.kube_emulator import AuthyardEmulator
from harness.operator import PLATFORM, TEAM
from tests.operator.stack import oauthclient

CLOSED_PORT_URL = "http://127.0.0.1:1"  # nothing listens on port 1: the admin API is unreachable
GIVE_UP_AFTER = timedelta(minutes=5)
BODY = oauthclient("orders")
GONE = Event("Normal", "AuthServerGone", f"AuthServer {PLATFORM}/auth is gone; nothing to unregister")


@pytest.fixture
async def reconciler(emulator: AuthyardEmulator) -> AsyncIterator[ClientReconciler]:
    for namespace in (PLATFORM, TEAM):
        emulator.create_namespace(namespace)
    kube = Kube(ClusterConfig(server=str(emulator.url).rstrip("/"), token="emulator-token"))
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            yield ClientReconciler(kube, AdminClient(http), CLOSED_PORT_URL)
    finally:
        await kube.close()


def _create_authserver(emulator: AuthyardEmulator, *, with_admin_secret: bool) -> None:
    emulator.create(AUTHSERVERS, {"metadata": {"name": "auth", "namespace": PLATFORM}, "spec": {}})
    if with_admin_secret:
        token = base64.b64encode(b"admin-token-of-sixteen-or-more").decode()
        emulator.create("v1/secrets", {"metadata": {"name": "auth-admin", "namespace": PLATFORM},
                                       "data": {"token": token}})  # fmt: skip


async def test_a_client_whose_authserver_is_gone_is_released_at_once(
    emulator: AuthyardEmulator, reconciler: ClientReconciler
) -> None:
    outcome = await reconciler.unregister(BODY, timedelta(0), GIVE_UP_AFTER)
    assert outcome.events == [GONE] and outcome.status == {}
    _create_authserver(emulator, with_admin_secret=False)  # never got as far as its admin Secret
    assert (await reconciler.unregister(BODY, timedelta(0), GIVE_UP_AFTER)).events == [GONE]


async def test_an_invalid_client_was_never_registered(reconciler: ClientReconciler) -> None:
    invalid = {**BODY, "spec": {"grantTypes": "not a list"}}
    outcome = await reconciler.unregister(invalid, timedelta(0), GIVE_UP_AFTER)
    assert outcome.events == [] and outcome.status == {}


async def test_an_unreachable_authserver_is_retried_then_let_go(
    emulator: AuthyardEmulator, reconciler: ClientReconciler
) -> None:
    _create_authserver(emulator, with_admin_secret=True)
    with pytest.raises(UnregisterPending) as pending:
        await reconciler.unregister(BODY, GIVE_UP_AFTER - timedelta(seconds=1), GIVE_UP_AFTER)
    assert pending.value.retry_after == 10
    assert pending.value.message.startswith(f"admin API unreachable at {CLOSED_PORT_URL}")

    outcome = await reconciler.unregister(BODY, GIVE_UP_AFTER, GIVE_UP_AFTER)
    (abandoned,) = outcome.events
    assert (abandoned.type, abandoned.reason) == ("Warning", "UnregisterAbandoned")
    assert abandoned.message.startswith(f"gave up unregistering {TEAM}.orders after 0:05:00: admin API")
