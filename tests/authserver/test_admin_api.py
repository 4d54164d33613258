"""The admin API the operator calls: idempotent upsert, secret rotation with grace, delete."""

from __future__ import annotations

import httpx

from tests.support.oauth import admin_headers, basic, register


async def _token_status(http: httpx.AsyncClient, client_id: str, secret: str) -> int:
    response = await http.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret)
    )
    return response.status_code


async def test_admin_api_requires_the_admin_token(app_client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        response = await app_client.get("/admin/clients", headers=headers)
        assert response.status_code == 401 and response.json()["error"] == "invalid_token"


async def test_upsert_is_idempotent_and_never_changes_the_secret(app_client: httpx.AsyncClient) -> None:
    client_id, created = await register(app_client, scopes=["read"])
    assert created["client_secret"] and created["has_secret"]
    again = await app_client.put(
        f"/admin/clients/{client_id}",
        headers=admin_headers(),
        json={"name": client_id, "grant_types": ["client_credentials"], "scopes": ["read"]},
    )
    assert again.status_code == 200 and again.json()["client_secret"] is None
    assert await _token_status(app_client, client_id, created["client_secret"]) == 200

    updated = await app_client.put(
        f"/admin/clients/{client_id}",
        headers=admin_headers(),
        json={"name": "Renamed", "grant_types": ["client_credentials"], "scopes": ["read", "orders.write"]},
    )
    assert updated.json()["scopes"] == ["read", "orders.write"] and updated.json()["name"] == "Renamed"
    token = await app_client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic(client_id, created["client_secret"]),
    )
    assert token.json()["scope"] == "read orders.write"
    listed = await app_client.get("/admin/clients", params={"limit": 1000}, headers=admin_headers())
    assert [c["client_id"] for c in listed.json()].count(client_id) == 1
    assert all("secret_hash" not in c and c["client_secret"] is None for c in listed.json())


async def test_caller_supplied_secret_makes_lost_responses_harmless(app_client: httpx.AsyncClient) -> None:
    secret = "s" * 43
    body = {"name": "svc", "grant_types": ["client_credentials"], "scopes": ["read"], "client_secret": secret}
    first = await app_client.put("/admin/clients/svc-supplied", json=body, headers=admin_headers())
    second = await app_client.put("/admin/clients/svc-supplied", json=body, headers=admin_headers())
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["client_secret"] is None  # the caller already has it
    assert await _token_status(app_client, "svc-supplied", secret) == 200
    short = await app_client.put(
        "/admin/clients/svc-short", headers=admin_headers(), json={**body, "client_secret": "too-short"}
    )
    assert short.status_code == 400 and short.json()["error"] == "invalid_request"


async def test_client_secret_rotation_keeps_the_old_secret_for_the_grace_period(
    app_client: httpx.AsyncClient,
) -> None:
    client_id, created = await register(app_client)
    old = created["client_secret"]
    rotated = await app_client.post(
        f"/admin/clients/{client_id}/rotate-secret", headers=admin_headers(), json={"grace_period": "1h"}
    )
    assert rotated.status_code == 200
    new = rotated.json()["client_secret"]
    assert new and new != old and rotated.json()["previous_secret_expires_at"]
    assert await _token_status(app_client, client_id, old) == 200
    assert await _token_status(app_client, client_id, new) == 200

    # A zero grace period retires the previous secret at once.
    newest = (
        await app_client.post(
            f"/admin/clients/{client_id}/rotate-secret", headers=admin_headers(), json={"grace_period": "0s"}
        )
    ).json()["client_secret"]
    assert await _token_status(app_client, client_id, new) == 401
    assert await _token_status(app_client, client_id, old) == 401
    assert await _token_status(app_client, client_id, newest) == 200


async def test_client_secret_rotation_to_a_supplied_secret_is_idempotent(
    app_client: httpx.AsyncClient,
) -> None:
    client_id, created = await register(app_client)
    target = {"grace_period": "1h", "client_secret": "n" * 50}
    first = await app_client.post(
        f"/admin/clients/{client_id}/rotate-secret", json=target, headers=admin_headers()
    )
    second = await app_client.post(
        f"/admin/clients/{client_id}/rotate-secret", json=target, headers=admin_headers()
    )
    assert first.status_code == second.status_code == 200
    # The retry did not push the original secret out of its grace window.
    assert await _token_status(app_client, client_id, created["client_secret"]) == 200
    assert await _token_status(app_client, client_id, "n" * 50) == 200


async def test_delete_removes_the_client(app_client: httpx.AsyncClient) -> None:
    client_id, created = await register(app_client)
    assert (
        await app_client.delete(f"/admin/clients/{client_id}", headers=admin_headers())
    ).status_code == 204
    assert (await app_client.get(f"/admin/clients/{client_id}", headers=admin_headers())).status_code == 404
    assert (
        await app_client.delete(f"/admin/clients/{client_id}", headers=admin_headers())
    ).status_code == 404
    assert await _token_status(app_client, client_id, created["client_secret"]) == 401


async def test_invalid_registrations_are_rejected_with_reasons(app_client: httpx.AsyncClient) -> None:
    cases = [
        ({"grant_types": ["authorization_code"]}, "redirect URI"),
        ({"grant_types": ["authorization_code"], "redirect_uris": ["http://example.com/cb"]}, "loopback"),
        ({"grant_types": ["authorization_code"], "redirect_uris": ["https://example.com/cb#x"]}, "fragment"),
        ({"grant_types": ["client_credentials"], "type": "public"}, "public clients"),
        ({"grant_types": ["password"]}, "grant_types"),
        ({"grant_types": ["client_credentials"], "scopes": ["bad scope"]}, "scopes"),
        ({"grant_types": ["client_credentials"], "access_token_ttl": "forever"}, "duration"),
        # Past what a timedelta holds: once an OverflowError and a 500 (found by the OpenAPI fuzzer).
        ({"grant_types": ["client_credentials"], "access_token_ttl": "9" * 30}, "at most"),
        ({"grant_types": ["client_credentials"], "refresh_token_ttl": "9" * 20 + "d"}, "at most"),
        ({"grant_types": ["client_credentials"], "secret_grace_period": "9" * 20}, "at most"),
        ({"grant_types": ["client_credentials"], "unknown": 1}, "unknown"),
    ]
    for fields, reason in cases:
        response = await app_client.put(
            "/admin/clients/bad-one", json={"name": "x", **fields}, headers=admin_headers()
        )
        assert response.status_code == 400, fields
        assert response.json()["error"] == "invalid_request"
        assert reason in response.json()["error_description"], (fields, response.json())
    bad_id = await app_client.put(
        "/admin/clients/bad%20id",
        json={"name": "x", "grant_types": ["client_credentials"]},
        headers=admin_headers(),
    )
    assert bad_id.status_code == 400


async def test_openapi_documents_the_admin_api(app_client: httpx.AsyncClient) -> None:
    spec = (await app_client.get("/openapi.json")).json()
    assert {"/admin/clients/{client_id}", "/admin/clients/{client_id}/rotate-secret", "/token"} <= set(
        spec["paths"]
    )
    assert "put" in spec["paths"]["/admin/clients/{client_id}"]


async def test_upsert_with_a_new_secret_and_grace_is_an_idempotent_client_secret_rotation(
    app_client: httpx.AsyncClient,
) -> None:
    """What the operator does: stage a new secret, then PUT it with a grace period, maybe twice."""
    body = {"name": "op", "grant_types": ["client_credentials"], "scopes": ["read"]}
    old, new = "o" * 43, "n" * 43
    await app_client.put(
        "/admin/clients/op-rotated", json={**body, "client_secret": old}, headers=admin_headers()
    )
    rotation = {**body, "client_secret": new, "secret_grace_period": "1h"}
    for _ in range(2):  # a retried call after a lost response must not push `old` out of its grace window
        response = await app_client.put("/admin/clients/op-rotated", json=rotation, headers=admin_headers())
        assert response.status_code == 200 and response.json()["previous_secret_expires_at"]
    assert await _token_status(app_client, "op-rotated", old) == 200
    assert await _token_status(app_client, "op-rotated", new) == 200
    replaced = {**body, "client_secret": "r" * 43}  # no grace: the new secret replaces at once
    await app_client.put("/admin/clients/op-rotated", json=replaced, headers=admin_headers())
    assert await _token_status(app_client, "op-rotated", "r" * 43) == 200
    assert await _token_status(app_client, "op-rotated", new) == 401
