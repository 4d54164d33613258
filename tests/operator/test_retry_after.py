"""Retry-After: the operator never retries sooner than the API server or the auth server asked."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from authyard_operator import retry_after
from authyard_operator.admin_client import AdminApiError, AdminClient
from authyard_operator.kube.client import Kube, KubeError
from authyard_operator.kube.config import ClusterConfig
from authyard_operator.reconcile.authserver import api_failure

from harness.kube_emulator import AuthyardEmulator

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
    emulator.create_namespace("platform")
    kube = Kube(ClusterConfig(server=str(emulator.url).rstrip("/"), token="emulator-token"))
    try:
        emulator.fail_next("GET", r"/secrets/auth-admin$", 429, retry_after=120)
        with pytest.raises(KubeError) as caught:
            await kube.get("v1", "Secret", "platform", "auth-admin")
    finally:
        await kube.close()
    assert (caught.value.status, caught.value.retry_after) == (429, 120.0)
    body = {"metadata": {"name": "auth", "namespace": "platform", "generation": 1}, "status": {}}
    assert api_failure(caught.value, body, NOW).retry_after == 120.0


async def test_the_auth_servers_503_retry_after_reaches_the_admin_client(tmp_path) -> None:
    """The real auth server application with its database unreachable answers the admin API with 503 and
    Retry-After; the operator's admin client carries the delay (and never the admin token) in its error."""
    from authserver.config import Settings
    from authserver.web.app import create_app
    from harness.ports import free_port
    from tests.support.oauth import ADMIN_TOKEN

    settings = Settings(
        issuer="http://testserver",
        database_url=f"postgresql+asyncpg://nobody:unused@127.0.0.1:{free_port()}/gone",
        db_auto_migrate=False,
        admin_token=ADMIN_TOKEN,
        signing_keys_file=tmp_path / "keys.json",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            with pytest.raises(AdminApiError) as caught:
                await AdminClient(http).upsert(
                    "http://testserver",
                    ADMIN_TOKEN,
                    "team-a.svc",
                    {"name": "svc", "grant_types": ["client_credentials"], "scopes": ["read"]},
                )
    assert (caught.value.status, caught.value.retryable, caught.value.retry_after) == (503, True, 1.0)
    assert ADMIN_TOKEN not in str(caught.value)
