"""Retry-After: the operator never retries sooner than the API server or the auth server asked."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from authyard_operator import retry_after
from authyard_operator.admin_client import AdminApiError, AdminClient
from authyard_operator.kube.client import Kube, KubeError
from authyard_operator.reconcile.authserver import api_failure

from tests.operator.emulator import AuthyardEmulator

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Sun, 22 Nov 2026 12:01:30 GMT", 90.0),
        ("Sun, 22 Nov 2026 11:00:00 GMT", 0.0),  # a date in the past: no wait
        ("999999", retry_after.MAX_SECONDS),  # a broken header cannot park an object for days
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_parse(header: str | None, seconds: float | None) -> None:
    assert retry_after.parse(header, NOW) == seconds


def test_the_longer_of_our_delay_and_the_servers() -> None:
    assert retry_after.delay(15, None) == 15
    assert retry_after.delay(15, 3) == 15
    assert retry_after.delay(15, 120) == 120


async def test_an_api_server_429_with_retry_after_postpones_the_authserver_retry(
    emulator: AuthyardEmulator,
) -> None:
    import kubernetes_asyncio

    emulator.create_namespace("platform")
    configuration = kubernetes_asyncio.client.Configuration(host=str(emulator.url).rstrip("/"))
    configuration.api_key = {"BearerToken": "emulator-token"}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    kube = Kube(kubernetes_asyncio.client.ApiClient(configuration))
    try:
        emulator.fail_next("GET", r"/secrets/auth-admin$", 429, retry_after=120)
        with pytest.raises(KubeError) as caught:
            await kube.get("v1", "Secret", "platform", "auth-admin")
    finally:
        await kube.close()
    assert (caught.value.status, caught.value.retry_after) == (429, 120.0)
    body = {"metadata": {"name": "auth", "namespace": "platform", "generation": 1}, "status": {}}
    assert api_failure(caught.value, body, NOW).retry_after == 120.0


async def test_an_auth_server_503_with_retry_after_reaches_the_registration_retry() -> None:
    def shedding(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            503,
            json={"error": "temporarily_unavailable", "error_description": "the database is unavailable"},
            headers={"Retry-After": "45"},
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(shedding)) as http:
        with pytest.raises(AdminApiError) as caught:
            await AdminClient(http).upsert("http://auth.platform.svc:8080", "token", "team-a.svc", {})
    assert caught.value.retryable and caught.value.retry_after == 45.0
    assert "token" not in str(caught.value)
