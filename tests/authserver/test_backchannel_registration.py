"""Back-channel logout registration (OpenID Connect Back-Channel Logout 1.0 §2.2) through the admin API, and
what discovery says of it (§2.1), on both databases."""

from __future__ import annotations

import httpx
import pytest

from tests.support.oauth import admin_headers, register

REDIRECT = "https://portal.example.com/callback"


def _rp(**fields: object) -> dict[str, object]:
    return {
        "name": "Portal",
        "grant_types": ["authorization_code"],
        "scopes": ["openid"],
        "redirect_uris": [REDIRECT],
        **fields,
    }


async def test_a_clients_backchannel_logout_uri_is_created_read_changed_and_removed(
    app_client: httpx.AsyncClient,
) -> None:
    uri = "https://portal.example.com/logout/backchannel?tenant=7"
    client_id, created = await register(
        app_client, **_rp(backchannel_logout_uri=uri, backchannel_logout_session_required=True)
    )
    assert created["backchannel_logout_uri"] == uri
    assert created["backchannel_logout_session_required"] is True
    read = (await app_client.get(f"/admin/clients/{client_id}", headers=admin_headers())).json()
    assert (read["backchannel_logout_uri"], read["backchannel_logout_session_required"]) == (uri, True)

    moved = "https://portal.example.com:8443/bc"
    _, changed = await register(app_client, client_id, **_rp(backchannel_logout_uri=moved))
    assert changed["backchannel_logout_uri"] == moved
    assert changed["backchannel_logout_session_required"] is False  # absent: false (§2.2's default)

    _, removed = await register(app_client, client_id, **_rp())
    assert removed["backchannel_logout_uri"] is None
    read = (await app_client.get(f"/admin/clients/{client_id}", headers=admin_headers())).json()
    assert read["backchannel_logout_uri"] is None


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:9000/bc",  # plain http on loopback, as redirect URIs allow
        "http://localhost/bc?x=1",
        "http://[::1]:8080/bc",
        "https://rp.example.com/a/b?c=d&e=f",
    ],
)
async def test_acceptable_backchannel_logout_uris(app_client: httpx.AsyncClient, uri: str) -> None:
    _, view = await register(app_client, **_rp(backchannel_logout_uri=uri))
    assert view["backchannel_logout_uri"] == uri


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("https://rp.example.com/bc#frag", "fragment"),  # §2.2: MUST NOT include a fragment
        ("/bc", "absolute"),
        ("rp.example.com/bc", "absolute"),
        ("http://rp.example.com/bc", "loopback"),
        ("ftp://rp.example.com/bc", "https URL"),
        ("https:///bc", "https URL"),
        ("https://user:pw@rp.example.com/bc", "user information"),
    ],
)
async def test_unacceptable_backchannel_logout_uris_are_refused_with_a_reason(
    app_client: httpx.AsyncClient, uri: str, words: str
) -> None:
    response = await app_client.put(
        "/admin/clients/bad-bc", json=_rp(backchannel_logout_uri=uri), headers=admin_headers()
    )
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["error"] == "invalid_request"
    assert "backchannel_logout_uri" in problem["error_description"] and words in problem["error_description"]


async def test_session_required_without_a_uri_is_refused(app_client: httpx.AsyncClient) -> None:
    response = await app_client.put(
        "/admin/clients/bad-bc", json=_rp(backchannel_logout_session_required=True), headers=admin_headers()
    )
    assert response.status_code == 400, response.text
    assert "needs a backchannel_logout_uri" in response.json()["error_description"]


async def test_discovery_says_backchannel_logout_is_supported_with_sid(app_client: httpx.AsyncClient) -> None:
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        metadata = (await app_client.get(path)).json()
        assert metadata["backchannel_logout_supported"] is True  # §2.1
        assert metadata["backchannel_logout_session_supported"] is True
