"""Small helpers the tests share: PKCE pairs, Basic headers, the login/consent walk over HTTP."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

ADMIN_TOKEN = "test-admin-token-with-enough-entropy-0123456789"
PASSWORD = "correct horse battery staple"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def hidden_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def query_of(location: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


async def register(
    http: httpx.AsyncClient, client_id: str | None = None, **fields: Any
) -> tuple[str, dict[str, Any]]:
    client_id = client_id or f"c-{secrets.token_hex(6)}"
    body = {"name": client_id, "grant_types": ["client_credentials"], "scopes": ["read", "write"], **fields}
    response = await http.put(f"/admin/clients/{client_id}", json=body, headers=admin_headers())
    assert response.status_code in (200, 201), response.text
    return client_id, response.json()


async def authorize_code(
    http: httpx.AsyncClient,
    client_id: str,
    redirect_uri: str,
    username: str,
    password: str = PASSWORD,
    scope: str = "openid profile email read",
    nonce: str | None = "n-0S6_WzA2Mj",
    **extra: str,
) -> tuple[str, str]:
    """Walk the real login and consent pages; returns (code, verifier)."""
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": "xyz",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    if nonce:
        params["nonce"] = nonce
    page = await http.get(f"/authorize?{urlencode(params)}")
    assert page.status_code == 200, page.text
    login = await http.post(
        "/authorize/login", data={**hidden_fields(page.text), "username": username, "password": password}
    )
    assert login.status_code == 200, login.text
    consent = await http.post("/authorize/consent", data={**hidden_fields(login.text), "decision": "allow"})
    assert consent.status_code == 303, consent.text
    query = query_of(consent.headers["location"])
    assert query["state"] == "xyz"
    return query["code"], verifier
