"""RFC 7009 revocation and RFC 7662 introspection."""

from __future__ import annotations

import base64

import httpx

from tests.support.oauth import basic, register


async def _token(http: httpx.AsyncClient) -> tuple[str, str, str]:
    client_id, body = await register(http)
    response = await http.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, body["client_secret"])
    )
    return client_id, body["client_secret"], response.json()["access_token"]


async def test_introspection_then_revocation_makes_token_inactive(app_client: httpx.AsyncClient) -> None:
    client_id, secret, token = await _token(app_client)
    resource_id, resource_body = await register(app_client)
    auth = basic(resource_id, resource_body["client_secret"])

    active = await app_client.post("/introspect", data={"token": token}, headers=auth)
    assert active.status_code == 200 and active.headers["cache-control"] == "no-store"
    claims = active.json()
    assert claims["active"] is True and claims["client_id"] == client_id and claims["scope"] == "read write"
    assert claims["token_type"] == "Bearer" and claims["exp"] > claims["iat"]

    revoked = await app_client.post(
        "/revoke", data={"token": token, "token_type_hint": "access_token"}, headers=basic(client_id, secret)
    )
    assert revoked.status_code == 200
    after = await app_client.post("/introspect", data={"token": token}, headers=auth)
    assert after.json() == {"active": False}
    # Revoking again, or revoking garbage, is still a 200 (RFC 7009 §2.2).
    again = await app_client.post("/revoke", data={"token": token}, headers=basic(client_id, secret))
    garbage = await app_client.post("/revoke", data={"token": "garbage"}, headers=basic(client_id, secret))
    assert again.status_code == garbage.status_code == 200


async def test_a_client_cannot_revoke_another_clients_token(app_client: httpx.AsyncClient) -> None:
    _, _, token = await _token(app_client)
    other_id, other_body = await register(app_client)
    response = await app_client.post(
        "/revoke", data={"token": token}, headers=basic(other_id, other_body["client_secret"])
    )
    assert response.status_code == 400 and response.json()["error"] == "unauthorized_client"


async def test_revocation_is_seen_by_a_worker_that_learns_it_from_the_database(app_client) -> None:
    client_id, secret, token = await _token(app_client)
    services = app_client.app.state.services  # type: ignore[attr-defined]
    await app_client.post("/revoke", data={"token": token}, headers=basic(client_id, secret))
    jti = services.inspector.decode_access_token(token)["jti"]
    # A worker that never saw the revocation request: a fresh list synchronised from the store.
    from authserver.protocol.revocation_list import RevocationList

    fresh = RevocationList()
    revoked = await services.store.revoked_since(fresh.synced_until)
    for entry_jti, expiry in revoked.access_tokens:
        fresh.add(entry_jti, expiry.timestamp())
    assert fresh.is_revoked(jti)


async def test_introspection_needs_an_authenticated_confidential_client(
    app_client: httpx.AsyncClient,
) -> None:
    _, _, token = await _token(app_client)
    anonymous = await app_client.post("/introspect", data={"token": token})
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    public_id, _ = await register(
        app_client,
        type="public",
        grant_types=["authorization_code"],
        redirect_uris=["http://127.0.0.1:9999/cb"],
    )
    public = await app_client.post("/introspect", data={"token": token, "client_id": public_id})
    assert public.status_code == 401


async def test_introspection_of_garbage_and_of_id_tokens_is_inactive(app_client: httpx.AsyncClient) -> None:
    client_id, secret, _ = await _token(app_client)
    for token in ("x", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "." * 5000):
        response = await app_client.post(
            "/introspect", data={"token": token}, headers=basic(client_id, secret)
        )
        assert response.status_code == 200 and response.json() == {"active": False}, token


async def test_refresh_token_introspection_and_revocation(app_client: httpx.AsyncClient, user) -> None:
    from tests.support.oauth import authorize_code

    redirect = "http://127.0.0.1:9999/callback"
    client_id, body = await register(
        app_client,
        grant_types=["authorization_code", "refresh_token"],
        scopes=["read"],
        redirect_uris=[redirect],
    )
    code, verifier = await authorize_code(
        app_client, client_id, redirect, user.username, scope="read", nonce=None
    )
    tokens = (
        await app_client.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect,
                "code_verifier": verifier,
            },
            headers=basic(client_id, body["client_secret"]),
        )
    ).json()
    auth = basic(client_id, body["client_secret"])
    active = await app_client.post(
        "/introspect",
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        headers=auth,
    )
    assert active.json()["active"] is True and active.json()["sub"] == user.user_id
    await app_client.post("/revoke", data={"token": tokens["refresh_token"]}, headers=auth)
    inactive = await app_client.post("/introspect", data={"token": tokens["refresh_token"]}, headers=auth)
    assert inactive.json() == {"active": False}
    refresh = await app_client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, headers=auth
    )
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_grant"


async def test_tokens_with_unknown_kids_are_inactive_not_errors(app_client: httpx.AsyncClient) -> None:
    """A token whose key was pruned after rotation, or from another issuer: inactive, invalid, never a 500."""
    import base64 as b64
    import json as js

    def part(value: dict) -> str:
        return b64.urlsafe_b64encode(js.dumps(value).encode()).rstrip(b"=").decode()

    foreign = f"{part({'typ': 'at+jwt', 'alg': 'ES256', 'kid': 'x'})}.{part({})}.AAAA"
    client_id, secret, _ = await _token(app_client)
    auth = basic(client_id, secret)
    assert (await app_client.post("/introspect", data={"token": foreign}, headers=auth)).json() == {
        "active": False
    }
    assert (await app_client.post("/revoke", data={"token": foreign}, headers=auth)).status_code == 200
    userinfo = await app_client.get("/userinfo", headers={"Authorization": f"Bearer {foreign}"})
    assert userinfo.status_code == 401 and userinfo.json()["error"] == "invalid_token"


async def test_control_characters_are_refused_before_any_database_work(app_client: httpx.AsyncClient) -> None:
    for body in ("grant_type=client_credentials&client_id=%00", "grant_type=client_credentials&scope=a%0Ab"):
        response = await app_client.post(
            "/token", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 400 and response.json()["error"] == "invalid_request", body
    nul_basic = "Basic " + base64.b64encode(b"a\x00b:secret").decode()
    basic_response = await app_client.post(
        "/token", data={"grant_type": "client_credentials"}, headers={"Authorization": nul_basic}
    )
    assert basic_response.status_code == 401 and basic_response.json()["error"] == "invalid_client"
    page = await app_client.get("/authorize?client_id=%00&response_type=code")
    assert page.status_code == 400 and "location" not in page.headers
