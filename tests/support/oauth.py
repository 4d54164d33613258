"""Small helpers the tests share: PKCE pairs, Basic headers, client registration, the login/consent walk
and the token requests over HTTP."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from harness.authserver import ADMIN_TOKEN

PASSWORD = "correct horse battery staple"
CALLBACK = "http://127.0.0.1:9999/callback"


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


def authorization_request(
    client_id: str, redirect_uri: str = CALLBACK, **extra: str
) -> tuple[dict[str, str], str]:
    """The parameters of an authorization code request with PKCE (RFC 6749 §4.1.1, RFC 7636 §4.3; ``extra``
    adds or overrides any), and the code_verifier of its challenge."""
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return params, verifier


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
    """Walk the real login and consent pages; returns (code, verifier). ``prompt=login consent`` by default:
    both pages every time, whatever the browser's session and the consent it remembers."""
    extra.setdefault("prompt", "login consent")
    params, verifier = authorization_request(client_id, redirect_uri, scope=scope, state="xyz", **extra)
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


async def redeem_code(
    http: httpx.AsyncClient,
    code: str,
    verifier: str | None,
    redirect_uri: str = CALLBACK,
    *,
    client_id: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: str,
) -> httpx.Response:
    """The token request for an authorization code (RFC 6749 §4.1.3) with its PKCE verifier (RFC 7636
    §4.5; none when ``verifier`` is None). A public client names itself with ``client_id``; a confidential
    one authenticates with ``headers``."""
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, **extra}
    if verifier is not None:
        data["code_verifier"] = verifier
    if client_id is not None:
        data["client_id"] = client_id
    return await http.post("/token", data=data, headers=headers)


async def refresh(
    http: httpx.AsyncClient,
    token: str,
    *,
    client_id: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: str,
) -> httpx.Response:
    """The refresh request (RFC 6749 §6); ``extra`` adds e.g. a narrower ``scope``."""
    data = {"grant_type": "refresh_token", "refresh_token": token, **extra}
    if client_id is not None:
        data["client_id"] = client_id
    return await http.post("/token", data=data, headers=headers)
