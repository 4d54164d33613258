"""Hostile input, each with the precise refusal, through the whole application (SQLite and PostgreSQL).

Not repeated here (tested elsewhere): the basic open-redirect cases, PKCE plain/missing, code replay,
cross-client codes, CSRF, framing, JWS refusals at the KeySet level, fuzzed form bodies.

* redirect_uri tricks: anything but the registered string is an error page, never a redirect.
* Token substitution: ID tokens, refresh tokens and codes are not access tokens; another client's tokens
  can be introspected but not revoked or refreshed, and a refused attempt leaves them working.
* Forged JWTs end to end: ``alg: none`` and HS256 signed with our public key, at /introspect and /userinfo;
  tokens signed by our own key but expired, not yet valid (nbf, iat) or from another issuer.
* SQL and HTML injection in every text field the server stores or renders: client names and scopes (admin
  API, then the login and consent pages), usernames and passwords on the login form, and the scope, state,
  nonce, client_id and redirect_uri parameters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from markupsafe import escape

from authserver.config import Settings
from authserver.protocol.models import User
from harness.accounts import new_user
from tests.conftest import settings_for
from tests.support.app import store_of
from tests.support.oauth import (
    PASSWORD,
    admin_headers,
    authorization_request,
    authorize_code,
    basic,
    hidden_fields,
    query_of,
    redeem_code,
    register,
)

REDIRECT = "https://app.example.com/callback"

SQL_PAYLOADS = [
    "' OR '1'='1",
    "x'; DROP TABLE clients; --",
    '" OR ""="',
    "1; SELECT pg_sleep(5)--",
    "admin'--",
]
HTML_PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)",
    "</title><svg onload=alert(1)>",
    "{{ 7*7 }}{% raw %}",
]


@pytest.fixture(scope="module")
def settings(backend: str, request: pytest.FixtureRequest) -> Settings:
    """No sign-in throttle: every hostile login here must reach the password check (the throttle has its
    own tests, ``test_login_throttle.py``)."""
    return settings_for(backend, request, login_max_failures_per_account=0, login_max_failures_per_address=0)


@pytest.fixture(scope="module")
async def web(app_client: httpx.AsyncClient) -> tuple[str, str]:
    """A confidential web client (authorization_code + refresh_token) and its secret."""
    client_id, body = await register(
        app_client,
        grant_types=["authorization_code", "refresh_token"],
        scopes=["openid", "profile", "email", "read"],
        redirect_uris=[REDIRECT],
    )
    return client_id, body["client_secret"]


async def _authorize(http: httpx.AsyncClient, **params: str) -> httpx.Response:
    return await http.get(f"/authorize?{urlencode(params)}")


def _authorize_params(client_id: str, **extra: str) -> dict[str, str]:
    """Both pages every time (prompt=login consent): the tests share one browser, which stays signed in."""
    defaults = {"redirect_uri": REDIRECT, "state": "st", "prompt": "login consent"}
    return authorization_request(client_id, **{**defaults, **extra})[0]


async def _tokens(http: httpx.AsyncClient, web: tuple[str, str], user: User, **extra: str) -> dict[str, Any]:
    code, verifier = await authorize_code(http, web[0], REDIRECT, user.username, **extra)
    response = await redeem_code(http, code, verifier, REDIRECT, headers=basic(*web))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _introspect(http: httpx.AsyncClient, auth: tuple[str, str], token: str) -> dict[str, Any]:
    response = await http.post("/introspect", data={"token": token}, headers=basic(*auth))
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _userinfo(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})


def _assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_token"
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


def _escaped_not_raw(page: str, payload: str) -> None:
    """Shown, HTML-escaped (Jinja2 autoescaping), and never raw when escaping changes it."""
    escaped = str(escape(payload))
    assert escaped in page, f"{payload!r} not shown (escaped) on the page"
    if escaped != payload:
        assert payload not in page, f"{payload!r} rendered unescaped"


# redirect_uri tricks --------------------------------------------------------------------------------------

REDIRECT_TRICKS = [
    "https://app.example.com@evil.example/callback",  # userinfo: the host is evil.example
    "https://evil.example@app.example.com/callback",  # userinfo in front of the right host
    "https://app.example.com\\@evil.example/callback",  # backslash: some parsers end the authority here
    "https://app.example.com\\callback",
    "https:\\\\app.example.com/callback",
    "//app.example.com/callback",  # scheme-relative
    "https://app.example.com//evil.example/callback",  # host confusion in the path
    "https:/app.example.com/callback",
    "https://app.example.com.evil.example/callback",
    "https://app.example.com/callback/../x",  # path traversal
    "https://app.example.com/x/../callback",  # normalises to the registered URI: still not the same string
    "https://app.example.com/./callback",
    "https://APP.example.com/callback",  # case changes
    "HTTPS://app.example.com/callback",
    "https://app.example.com/Callback",
    "https://app.example.com/callback/",  # trailing slash
    "https://app.example.com/callback?",  # query added
    "https://app.example.com/callback?next=https://evil.example",
    "https://app.example.com:443/callback",  # the default port spelled out
    "https://app.example.com/%63allback",  # percent-encoding variants
    "https://app%2Eexample.com/callback",
    "https://app.example.com/callback%2F..%2Fx",
    "https://app.example.com%40evil.example/callback",
    "https://\u0430pp.example.com/callback",  # IDN / unicode lookalikes: Cyrillic a
    "https://app.ex\u0430mple.com/callback",
    "https://xn--pp-8cd.example.com/callback",  # the Cyrillic-a host in punycode
    "https://app\uff0eexample.com/callback",  # fullwidth full stop
    "https://app.example.com/callba\u0441k",  # Cyrillic c
    "https://app.example.com/callback\u200b",  # zero-width space
    " https://app.example.com/callback",  # whitespace
    "https://app.example.com/callback ",
    "javascript:alert(document.domain)//https://app.example.com/callback",
    "https://app.example.com/callback#",  # an empty fragment
]


@pytest.mark.parametrize("redirect_uri", REDIRECT_TRICKS)
async def test_redirect_uri_tricks_are_an_error_page_never_a_redirect(
    app_client: httpx.AsyncClient, web: tuple[str, str], redirect_uri: str
) -> None:
    response = await _authorize(app_client, **_authorize_params(web[0], redirect_uri=redirect_uri))
    assert response.status_code == 400, response.text
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert "The redirect_uri is not registered for this application." in response.text
    assert 'name="password"' not in response.text  # no login page for an untrusted redirect URI


async def test_the_registered_redirect_uri_is_still_accepted(
    app_client: httpx.AsyncClient, web: tuple[str, str]
) -> None:
    response = await _authorize(app_client, **_authorize_params(web[0]))
    assert response.status_code == 200 and 'name="password"' in response.text


# Token substitution --------------------------------------------------------------------------------------


async def test_id_refresh_tokens_and_codes_are_not_access_tokens(
    app_client: httpx.AsyncClient, web: tuple[str, str], user: User
) -> None:
    tokens = await _tokens(app_client, web, user)
    assert (await _userinfo(app_client, tokens["access_token"])).status_code == 200  # the real thing works
    code, _ = await authorize_code(app_client, web[0], REDIRECT, user.username)
    for name, value in (
        ("ID token", tokens["id_token"]),
        ("refresh token", tokens["refresh_token"]),
        ("authorization code", code),
    ):
        _assert_invalid_token(await _userinfo(app_client, value))
        post = await app_client.post("/userinfo", headers={"Authorization": f"Bearer {value}"})
        _assert_invalid_token(post)
        if name != "refresh token":  # a refresh token introspects as what it is
            assert await _introspect(app_client, web, value) == {"active": False}, name
    # An ID token introspected with the access-token hint is still inactive, and is not revocable as one.
    hinted = await app_client.post(
        "/introspect",
        data={"token": tokens["id_token"], "token_type_hint": "access_token"},
        headers=basic(*web),
    )
    assert hinted.json() == {"active": False}
    # An access token is not a refresh token.
    as_refresh = await app_client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["access_token"]},
        headers=basic(*web),
    )
    assert as_refresh.status_code == 400 and as_refresh.json()["error"] == "invalid_grant"


async def test_another_clients_tokens_can_be_introspected_but_not_revoked_or_refreshed(
    app_client: httpx.AsyncClient, web: tuple[str, str], user: User
) -> None:
    tokens = await _tokens(app_client, web, user, scope="openid read")
    other_id, other = await register(
        app_client,
        grant_types=["authorization_code", "refresh_token"],
        scopes=["openid", "read"],
        redirect_uris=[REDIRECT],
    )
    intruder = (other_id, other["client_secret"])

    seen = await _introspect(app_client, intruder, tokens["access_token"])
    assert seen["active"] is True and seen["client_id"] == web[0]

    for token, hint in ((tokens["access_token"], "access_token"), (tokens["refresh_token"], "refresh_token")):
        refused = await app_client.post(
            "/revoke", data={"token": token, "token_type_hint": hint}, headers=basic(*intruder)
        )
        assert refused.status_code == 400 and refused.json()["error"] == "unauthorized_client", hint
    stolen = await app_client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(*intruder),
    )
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"

    # The refused attempts changed nothing for the rightful client.
    assert (await _introspect(app_client, web, tokens["access_token"]))["active"] is True
    assert (await _userinfo(app_client, tokens["access_token"])).status_code == 200
    rotated = await app_client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic(*web),
    )
    assert rotated.status_code == 200, rotated.text


# Forged and mistimed JWTs, end to end ---------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = _segments(header, claims)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


async def _public_key_forms(http: httpx.AsyncClient, kid: str) -> list[bytes]:
    """Every form of our public key an attacker might use as an HMAC secret."""
    jwks = (await http.get("/.well-known/jwks.json")).json()
    jwk = next(key for key in jwks["keys"] if key["kid"] == kid)
    public_key = jwt.PyJWK(jwk).key
    pem = public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    der = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return [pem, pem.strip(), der, json.dumps(jwk).encode(), json.dumps(jwk, separators=(",", ":")).encode()]


async def test_alg_none_and_hs256_with_our_public_key_are_refused(
    app_client: httpx.AsyncClient, web: tuple[str, str], user: User
) -> None:
    genuine = (await _tokens(app_client, web, user, scope="openid profile"))["access_token"]
    header = jwt.get_unverified_header(genuine)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    claims["scope"] = "openid profile email"  # what the forger wants more of

    forged = []
    for alg in ("none", "None", "NONE", "nOnE"):
        forged.append(f"{_segments({**header, 'alg': alg}, claims)}.")
        forged.append(f"{_segments({**header, 'alg': alg}, claims)}.{genuine.rsplit('.', 1)[1]}")
    for secret in await _public_key_forms(app_client, header["kid"]):
        for alg_header in ({**header, "alg": "HS256"}, {"alg": "HS256", "typ": "at+jwt"}):
            forged.append(_hs256(alg_header, claims, secret))
    forged.append(
        f"{_segments(header, claims)}.{genuine.rsplit('.', 1)[1]}"
    )  # claims swapped under a signature

    for token in forged:
        assert await _introspect(app_client, web, token) == {"active": False}, token
        _assert_invalid_token(await _userinfo(app_client, token))
        revoke = await app_client.post("/revoke", data={"token": token}, headers=basic(*web))
        assert revoke.status_code == 200  # nothing of ours to revoke (RFC 7009 §2.2)
    assert (await _introspect(app_client, web, genuine))["active"] is True


async def test_expired_not_yet_valid_and_foreign_tokens_signed_by_our_key_are_refused(
    app_client: httpx.AsyncClient, web: tuple[str, str], user: User
) -> None:
    genuine = (await _tokens(app_client, web, user, scope="openid profile"))["access_token"]
    claims = jwt.decode(genuine, options={"verify_signature": False})
    keyset = app_client.app.state.services.keyset()  # type: ignore[attr-defined]
    now = int(time.time())

    def signed(typ: str = "at+jwt", **changes: Any) -> str:
        """Signed by our active key; a change to None removes the claim."""
        merged = {**claims, "jti": uuid.uuid4().hex, **changes}
        return str(keyset.sign({k: v for k, v in merged.items() if v is not None}, typ))

    refused = {
        "expired a minute ago": signed(iat=now - 900, nbf=now - 900, exp=now - 60),
        "not yet valid (nbf in 2 minutes)": signed(nbf=now + 120),
        "issued in the future (iat in 2 minutes)": signed(iat=now + 120, nbf=now),
        "another issuer": signed(iss="https://evil.example"),
        "no expiry": signed(exp=None),
        "no jti": signed(jti=None),
        "an ID token's typ": signed(typ="JWT"),
    }
    for name, token in refused.items():
        assert await _introspect(app_client, web, token) == {"active": False}, name
        _assert_invalid_token(await _userinfo(app_client, token))
    # Within the 5 s leeway, and the same claims at the right time: accepted.
    assert (await _introspect(app_client, web, signed(exp=now + 60, nbf=now + 2)))["active"] is True
    assert (await _userinfo(app_client, signed())).status_code == 200


# SQL and HTML injection -----------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", SQL_PAYLOADS + HTML_PAYLOADS)
async def test_client_name_is_stored_verbatim_and_escaped_on_the_pages(
    app_client: httpx.AsyncClient, user: User, payload: str
) -> None:
    client_id, body = await register(
        app_client,
        name=payload,
        grant_types=["authorization_code"],
        scopes=["read", "<b>bold</b>", "x'--"],
        redirect_uris=[REDIRECT],
    )
    assert body["name"] == payload
    read = await app_client.get(f"/admin/clients/{client_id}", headers=admin_headers())
    assert read.status_code == 200 and read.json()["name"] == payload
    assert read.json()["scopes"] == ["read", "<b>bold</b>", "x'--"]

    login_page = await _authorize(app_client, **_authorize_params(client_id, scope="read <b>bold</b> x'--"))
    assert login_page.status_code == 200, login_page.text
    _escaped_not_raw(login_page.text, payload)
    consent = await app_client.post(
        "/authorize/login",
        data={**hidden_fields(login_page.text), "username": user.username, "password": PASSWORD},
    )
    assert consent.status_code == 200, consent.text
    _escaped_not_raw(consent.text, payload)
    _escaped_not_raw(consent.text, "<b>bold</b>")
    assert "{{" not in payload or "49" not in consent.text.split("<h1>")[1].split("</h1>")[0]
    # The table survived every payload.
    listed = await app_client.get("/admin/clients", params={"limit": 1000}, headers=admin_headers())
    assert listed.status_code == 200 and client_id in {client["client_id"] for client in listed.json()}


@pytest.mark.parametrize(
    "client_id", ["x' OR '1'='1", "a;DROP TABLE clients", "<script>", "a%2F..%2Fb", "a b"]
)
async def test_hostile_client_ids_in_the_admin_path_are_refused(
    app_client: httpx.AsyncClient, client_id: str
) -> None:
    response = await app_client.put(
        f"/admin/clients/{client_id}",
        json={"name": "x", "grant_types": ["client_credentials"]},
        headers=admin_headers(),
    )
    # The path pattern refuses them (400); an encoded slash does not match the route at all (404).
    assert response.status_code in (400, 404), response.text
    assert response.json()["error"] in ("invalid_request", "not_found")
    assert "<script>" not in response.text


@pytest.mark.parametrize("username", SQL_PAYLOADS + HTML_PAYLOADS)
async def test_login_form_injection_is_a_wrong_password_with_the_username_escaped(
    app_client: httpx.AsyncClient, web: tuple[str, str], user: User, username: str
) -> None:
    page = await _authorize(app_client, **_authorize_params(web[0]))
    for name, password in ((username, "whatever"), (user.username, username)):
        refused = await app_client.post(
            "/authorize/login", data={**hidden_fields(page.text), "username": name, "password": password}
        )
        assert refused.status_code == 401, refused.text
        assert "Wrong username or password." in refused.text
        assert "authyard_session" not in refused.headers.get("set-cookie", "")
        if name == username:
            _escaped_not_raw(refused.text, username)


async def test_a_hostile_username_is_escaped_on_the_consent_page(
    app_client: httpx.AsyncClient, web: tuple[str, str]
) -> None:
    username = f"<img src=x onerror=alert(1)>'--{uuid.uuid4().hex[:6]}"
    hostile = new_user(
        username, PASSWORD, email="m@example.com", name="<script>alert(2)</script>", email_verified=False
    )
    await store_of(app_client).create_user(hostile)
    page = await _authorize(app_client, **_authorize_params(web[0]))
    consent = await app_client.post(
        "/authorize/login", data={**hidden_fields(page.text), "username": username, "password": PASSWORD}
    )
    assert consent.status_code == 200, consent.text
    _escaped_not_raw(consent.text, username)


@pytest.mark.parametrize("payload", SQL_PAYLOADS + HTML_PAYLOADS)
async def test_state_and_nonce_travel_intact_and_are_never_rendered(
    app_client: httpx.AsyncClient, web: tuple[str, str], user: User, payload: str
) -> None:
    page = await _authorize(app_client, **_authorize_params(web[0], state=payload, nonce=payload))
    assert page.status_code == 200
    assert payload not in page.text
    # Denied: the error goes back with the state exactly as sent, percent-encoded in the Location.
    consent = await app_client.post(
        "/authorize/login",
        data={**hidden_fields(page.text), "username": user.username, "password": PASSWORD},
    )
    assert payload not in consent.text
    denied = await app_client.post(
        "/authorize/consent", data={**hidden_fields(consent.text), "decision": "no"}
    )
    location = denied.headers["location"]
    assert denied.status_code == 303 and location.startswith(REDIRECT + "?")
    assert not set(location) & set("<>\"' {}"), location
    assert query_of(location)["state"] == payload and query_of(location)["error"] == "access_denied"
    # Allowed: the nonce comes back in the ID token byte for byte.
    code, verifier = await authorize_code(app_client, web[0], REDIRECT, user.username, nonce=payload)
    tokens = await redeem_code(app_client, code, verifier, REDIRECT, headers=basic(*web))
    id_token = jwt.decode(tokens.json()["id_token"], options={"verify_signature": False})
    assert id_token["nonce"] == payload


@pytest.mark.parametrize("payload", SQL_PAYLOADS + HTML_PAYLOADS)
async def test_scope_injection_is_invalid_scope_back_to_the_client(
    app_client: httpx.AsyncClient, web: tuple[str, str], payload: str
) -> None:
    response = await _authorize(app_client, **_authorize_params(web[0], scope=f"read {payload}"))
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert urlsplit(location)._replace(query="").geturl() == REDIRECT
    query = query_of(location)
    assert query["error"] == "invalid_scope" and query["state"] == "st"
    token = await app_client.post(
        "/token", data={"grant_type": "client_credentials", "scope": payload}, headers=basic(*web)
    )
    # This client may not use client_credentials at all; the payload never gets further.
    assert token.status_code == 400 and token.json()["error"] == "unauthorized_client"


@pytest.mark.parametrize("payload", SQL_PAYLOADS + HTML_PAYLOADS)
async def test_client_id_and_redirect_uri_injection_is_an_error_page(
    app_client: httpx.AsyncClient, web: tuple[str, str], payload: str
) -> None:
    unknown = await _authorize(app_client, **_authorize_params(payload))
    assert unknown.status_code == 400 and "location" not in unknown.headers
    assert "The application that sent you here is not registered." in unknown.text
    assert payload not in unknown.text
    bad_uri = await _authorize(app_client, **_authorize_params(web[0], redirect_uri=REDIRECT + payload))
    assert bad_uri.status_code == 400 and "location" not in bad_uri.headers
    assert "The redirect_uri is not registered for this application." in bad_uri.text
    assert payload not in bad_uri.text


@pytest.mark.parametrize("payload", SQL_PAYLOADS + HTML_PAYLOADS)
async def test_token_endpoint_injection_is_refused_precisely(
    app_client: httpx.AsyncClient, web: tuple[str, str], payload: str
) -> None:
    as_client = await app_client.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": payload, "client_secret": payload},
    )
    assert as_client.status_code == 401 and as_client.json()["error"] == "invalid_client"
    as_basic = await app_client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic(web[0], payload)
    )
    assert as_basic.status_code == 401 and as_basic.json()["error"] == "invalid_client"
    for grant, field in (("authorization_code", "code"), ("refresh_token", "refresh_token")):
        data = {"grant_type": grant, field: payload, "redirect_uri": REDIRECT, "code_verifier": "v" * 43}
        refused = await app_client.post("/token", data=data, headers=basic(*web))
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", (
            grant,
            refused.text,
        )
    for payload_field in ("token", "token_type_hint"):
        data = {"token": "x", payload_field: payload}
        inspected = await app_client.post("/introspect", data=data, headers=basic(*web))
        assert inspected.status_code == 200 and inspected.json() == {"active": False}
    # Nothing leaked into the answers, and the clients are all still there.
    listed = await app_client.get("/admin/clients", params={"limit": 1000}, headers=admin_headers())
    assert listed.status_code == 200 and web[0] in {client["client_id"] for client in listed.json()}
