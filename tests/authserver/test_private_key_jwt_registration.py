"""private_key_jwt registration (RFC 7523 §2.2, OIDC Core §9) through the admin API on both databases: public
keys inline or a jwks_uri, no secret ever, and what is refused, each with its reason."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.client_assertions import ec_key, ed_key, private_pem, public_jwk, rsa_key
from tests.support.oauth import admin_headers, register


def _signer(**fields: Any) -> dict[str, Any]:
    return {"token_endpoint_auth_method": "private_key_jwt", **fields}


async def test_a_private_key_jwt_client_is_created_read_and_changed_without_a_secret(
    app_client: httpx.AsyncClient,
) -> None:
    jwks = {"keys": [public_jwk(ec_key(), "a"), public_jwk(ed_key(), "b")]}
    client_id, created = await register(
        app_client, **_signer(jwks=jwks, token_endpoint_auth_signing_alg="ES256")
    )
    assert "client_secret" not in created or created["client_secret"] is None
    assert created["has_secret"] is False and created["jwks"] == jwks
    assert created["token_endpoint_auth_signing_alg"] == "ES256"
    read = (await app_client.get(f"/admin/clients/{client_id}", headers=admin_headers())).json()
    assert (read["jwks"], read["jwks_uri"], read["has_secret"]) == (jwks, None, False)

    uri = "https://svc.example.com/.well-known/jwks.json"
    _, moved = await register(app_client, client_id, **_signer(jwks_uri=uri))
    assert (moved["jwks"], moved["jwks_uri"], moved["token_endpoint_auth_signing_alg"]) == (None, uri, None)
    rotation = await app_client.post(
        f"/admin/clients/{client_id}/rotate-secret", json={}, headers=admin_headers()
    )
    assert rotation.status_code == 400 and "no secret to rotate" in rotation.json()["error_description"]


async def test_a_secret_client_switched_to_private_key_jwt_loses_its_secret(
    app_client: httpx.AsyncClient,
) -> None:
    client_id, created = await register(app_client)
    assert created["has_secret"] is True
    _, switched = await register(app_client, client_id, **_signer(jwks={"keys": [public_jwk(ec_key())]}))
    assert switched["has_secret"] is False and switched.get("client_secret") is None


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"jwks": {"keys": [{**public_jwk(ec_key()), "d": "c2VjcmV0"}]}}, "private members (d)"),
        ({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}, "private members (k)"),
        ({"jwks": {"keys": []}}, "no keys"),
        ({"jwks": {"nokeys": 1}}, '"keys" array'),
        ({"jwks": {"keys": [public_jwk(ec_key(), "x"), public_jwk(ec_key(), "x")]}}, "same kid"),
        ({"jwks": {"keys": [{**public_jwk(ec_key()), "alg": "RS256"}]}}, "alg must be one of ES256"),
        ({"jwks": {"keys": [{**public_jwk(ec_key()), "use": "enc"}]}}, "use must be sig"),
        ({"jwks": {"keys": [{**public_jwk(ec_key()), "x": "AAAA"}]}}, "not a valid public key"),
        ({}, "needs the client's public keys"),
        ({"jwks": {"keys": [public_jwk(ec_key())]}, "jwks_uri": "https://a.example.com/j"}, "not both"),
        ({"jwks_uri": "http://svc.example.com/jwks"}, "loopback"),
        ({"jwks_uri": "https://svc.example.com/jwks#k"}, "fragment"),
        ({"jwks_uri": "https://svc.example.com/j", "client_secret": "s" * 43}, "has no secret"),
        (
            {"jwks": {"keys": [public_jwk(ec_key())]}, "token_endpoint_auth_signing_alg": "RS256"},
            "can verify RS256",
        ),
        (
            {"jwks_uri": "https://svc.example.com/j", "token_endpoint_auth_signing_alg": "HS256"},
            "token_endpoint_auth_signing_alg",
        ),
        (
            {"jwks_uri": "https://svc.example.com/j", "token_endpoint_auth_signing_alg": "none"},
            "token_endpoint_auth_signing_alg",
        ),
    ],
)
async def test_unacceptable_key_registrations_are_refused_with_a_reason(
    app_client: httpx.AsyncClient, fields: dict[str, Any], words: str
) -> None:
    response = await app_client.put(
        "/admin/clients/bad-pk",
        json=_signer(**fields) | {"name": "x", "grant_types": ["client_credentials"]},
        headers=admin_headers(),
    )
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["error"] == "invalid_request" and words in problem["error_description"], problem


async def test_keys_need_private_key_jwt_and_a_private_key_is_never_echoed(
    app_client: httpx.AsyncClient,
) -> None:
    body = {"name": "x", "grant_types": ["client_credentials"], "jwks_uri": "https://svc.example.com/j"}
    response = await app_client.put("/admin/clients/bad-pk", json=body, headers=admin_headers())
    assert response.status_code == 400 and "need token_endpoint_auth_method" in response.text
    private = rsa_key()
    leaked = {**public_jwk(private), "d": "c2VjcmV0LXByaXZhdGUtZXhwb25lbnQ"}
    response = await app_client.put(
        "/admin/clients/bad-pk",
        json=_signer(jwks={"keys": [leaked]}) | {"name": "x", "grant_types": ["client_credentials"]},
        headers=admin_headers(),
    )
    assert response.status_code == 400
    assert "c2VjcmV0LXByaXZhdGUtZXhwb25lbnQ" not in response.text
    assert private_pem(private).decode() not in response.text


async def test_the_purge_forgets_expired_client_assertions(app_client: httpx.AsyncClient) -> None:
    """Spent jtis are kept only until their assertion expires: the purge job deletes them then."""
    store = app_client.app.state.services.store  # type: ignore[attr-defined]  # set by the app's lifespan
    key, kept = uuid.uuid4().hex * 2, uuid.uuid4().hex * 2
    now = datetime.now(UTC).replace(microsecond=0)
    assert await store.spend_client_assertion(key, now - timedelta(minutes=1), now - timedelta(minutes=2))
    assert await store.spend_client_assertion(kept, now + timedelta(minutes=5), now - timedelta(minutes=2))
    await store.purge_expired(now)
    async with store.engine.connect() as connection:
        rows = await connection.exec_driver_sql(
            f"SELECT key FROM used_client_assertions WHERE key IN ('{key}', '{kept}')"  # noqa: S608 - hex keys
        )
        assert rows.scalars().all() == [kept]
