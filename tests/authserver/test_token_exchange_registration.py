"""The token-exchange policy (RFC 8693) through the admin API on both databases: created, read, changed and
removed with the client, and what is refused, each with its reason."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.oauth import admin_headers, register

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
GRANTS = ["client_credentials", TOKEN_EXCHANGE]


async def test_a_clients_token_exchange_policy_is_created_read_changed_and_removed(
    app_client: httpx.AsyncClient,
) -> None:
    policy = {
        "audiences": ["https://orders-b.example.com", "billing"],
        "subject_audiences": ["https://api.example.com"],
        "allow_impersonation": True,
    }
    client_id, created = await register(app_client, grant_types=GRANTS, token_exchange=policy)
    assert created["grant_types"] == GRANTS and created["token_exchange"] == policy
    read = (await app_client.get(f"/admin/clients/{client_id}", headers=admin_headers())).json()
    assert read["token_exchange"] == policy

    _, changed = await register(
        app_client, client_id, grant_types=GRANTS, token_exchange={"audiences": ["x"]}
    )
    assert changed["token_exchange"] == {
        "audiences": ["x"],
        "subject_audiences": [],
        "allow_impersonation": False,
    }
    _, removed = await register(app_client, client_id, grant_types=GRANTS)
    assert removed["token_exchange"] is None


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"token_exchange": {"audiences": ["x"]}}, "token_exchange needs the grant type"),
        (
            {
                "type": "public",
                "grant_types": ["authorization_code", TOKEN_EXCHANGE],
                "redirect_uris": ["https://a.example.com/cb"],
            },
            "public clients cannot use token exchange",
        ),
        ({"grant_types": GRANTS, "token_exchange": {"audiences": ["two words"]}}, "audiences"),
        ({"grant_types": GRANTS, "token_exchange": {"audiences": [""]}}, "audiences"),
        ({"grant_types": GRANTS, "token_exchange": {"impersonate": True}}, "impersonate"),
        (
            {"grant_types": GRANTS, "token_exchange": {"allow_impersonation": "sometimes"}},
            "allow_impersonation",
        ),
        ({"grant_types": ["urn:ietf:params:oauth:grant-type:saml2-bearer"]}, "grant_types"),
    ],
)
async def test_bad_token_exchange_registrations_are_refused_with_a_reason(
    app_client: httpx.AsyncClient, fields: dict[str, Any], words: str
) -> None:
    body = {"name": "x", "grant_types": ["client_credentials"], **fields}
    response = await app_client.put("/admin/clients/bad-te", json=body, headers=admin_headers())
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["error"] == "invalid_request" and words in problem["error_description"], problem
