"""Usage per client through the admin API: the application in-process on SQLite and PostgreSQL, the
worker's flush triggered directly."""

from __future__ import annotations

import uuid

import httpx

from tests.support.oauth import admin_headers, basic, register


async def _token(http: httpx.AsyncClient, client_id: str, secret: str) -> httpx.Response:
    return await http.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret)
    )


async def _admin(http: httpx.AsyncClient, path: str, **params: str | int) -> httpx.Response:
    return await http.get(path, params=params, headers=admin_headers())


async def _flush(http: httpx.AsyncClient) -> None:
    await http.app.state.services.flush_usage()  # type: ignore[attr-defined]  # set by the app's lifespan


async def test_a_clients_usage_is_reported_once_flushed(app_client: httpx.AsyncClient) -> None:
    client_id, body = await register(app_client, f"usage-{uuid.uuid4().hex[:6]}")
    for _ in range(3):
        assert (await _token(app_client, client_id, body["client_secret"])).status_code == 200
    refused = await app_client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "admin"},
        headers=basic(client_id, body["client_secret"]),
    )
    assert refused.json()["error"] == "invalid_scope"
    route = f"/admin/clients/{client_id}/usage"
    before = (await _admin(app_client, route)).json()
    assert before["tokens_last_hour"] == 0 and before["last_token_at"] is None  # counted, not yet flushed

    await _flush(app_client)
    usage = (await _admin(app_client, route)).json()
    assert usage["tokens_last_hour"] == usage["tokens_last_day"] == 3
    assert usage["errors_last_hour"] == 1 and usage["last_error"]["code"] == "invalid_scope"
    assert usage["last_token_at"] is not None
    listed = await app_client.get(
        "/admin/usage", params={"since": usage["last_token_at"]}, headers=admin_headers()
    )
    assert client_id in [entry["client_id"] for entry in listed.json()["clients"]]
    later = await app_client.get(
        "/admin/usage", params={"since": "2999-01-01T00:00:00Z"}, headers=admin_headers()
    )
    assert later.json() == {"clients": [], "next": None}


async def test_usage_pages_by_client_id(app_client: httpx.AsyncClient) -> None:
    prefix = f"page-{uuid.uuid4().hex[:6]}"
    for suffix in "abc":
        client_id, body = await register(app_client, f"{prefix}-{suffix}")
        assert (await _token(app_client, client_id, body["client_secret"])).status_code == 200
    await _flush(app_client)
    seen: list[str] = []
    after: str | None = f"{prefix}-"
    while after is not None and after.startswith(prefix):
        page = (
            await app_client.get("/admin/usage", params={"after": after, "limit": 2}, headers=admin_headers())
        ).json()
        assert len(page["clients"]) <= 2
        seen += [entry["client_id"] for entry in page["clients"] if entry["client_id"].startswith(prefix)]
        after = page["next"]
    assert seen == [f"{prefix}-a", f"{prefix}-b", f"{prefix}-c"]


async def test_usage_requests_are_checked(app_client: httpx.AsyncClient) -> None:
    assert (await app_client.get("/admin/usage")).status_code == 401
    assert (
        await app_client.get("/admin/clients/nobody-here/usage", headers=admin_headers())
    ).status_code == 404
    bad = await app_client.get("/admin/usage", params={"since": "yesterday"}, headers=admin_headers())
    assert bad.status_code == 400, bad.text
    too_many = await _admin(app_client, "/admin/usage", limit=100000)
    assert too_many.status_code == 400
