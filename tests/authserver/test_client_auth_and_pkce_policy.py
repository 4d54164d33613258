"""What relying parties trip on at the token endpoint: a confidential client may use either secret method
unless its registration pins one (RFC 6749 §2.3.1; openid-client's default is client_secret_post), and a
confidential client registered with ``require_pkce: false`` may leave PKCE out of an OpenID Connect request
(RFC 9700 §2.1.1: its nonce protects the code), while a challenge that was sent is always enforced (PKCE
downgrade protection)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import pytest
import sqlalchemy as sa

from authserver.protocol.models import User
from authserver.storage.engine import create_engine
from tests.authserver.test_refresh_families import _fresh_settings
from tests.support.migrations import migrate_to
from tests.support.oauth import (
    CALLBACK,
    PASSWORD,
    admin_headers,
    basic,
    hidden_fields,
    pkce_pair,
    query_of,
    redeem_code,
    register,
)

NONCE = "n-0S6_WzA2Mj"


async def _client_credentials(
    http: httpx.AsyncClient, client_id: str, secret: str, how: str
) -> httpx.Response:
    data = {"grant_type": "client_credentials"}
    if how == "post":
        return await http.post("/token", data={**data, "client_id": client_id, "client_secret": secret})
    if how == "both":
        return await http.post(
            "/token", data={**data, "client_secret": secret}, headers=basic(client_id, secret)
        )
    return await http.post("/token", data=data, headers=basic(client_id, secret))


async def test_an_unpinned_confidential_client_may_use_either_secret_method(
    app_client: httpx.AsyncClient,
) -> None:
    client_id, body = await register(app_client)
    assert body["token_endpoint_auth_method"] is None
    secret = body["client_secret"]
    for how in ("basic", "post"):
        response = await _client_credentials(app_client, client_id, secret, how)
        assert response.status_code == 200, (how, response.text)
    token = response.json()["access_token"]
    # The same at introspection and revocation.
    posted = {"client_id": client_id, "client_secret": secret, "token": token}
    introspected = await app_client.post("/introspect", data=posted)
    assert introspected.status_code == 200 and introspected.json()["active"] is True
    assert (await app_client.post("/revoke", data=posted)).status_code == 200
    # RFC 6749 §2.3: never more than one method in a request.
    both = await _client_credentials(app_client, client_id, secret, "both")
    assert both.status_code == 400 and both.json()["error"] == "invalid_request"
    wrong = await _client_credentials(app_client, client_id, secret + "x", "post")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("pinned", "refused"), [("client_secret_basic", "post"), ("client_secret_post", "basic")]
)
async def test_a_pinned_method_is_the_only_one(
    app_client: httpx.AsyncClient, pinned: str, refused: str
) -> None:
    client_id, body = await register(app_client, token_endpoint_auth_method=pinned)
    assert body["token_endpoint_auth_method"] == pinned
    secret = body["client_secret"]
    response = await _client_credentials(app_client, client_id, secret, refused)
    assert response.status_code == 401 and pinned in response.json()["error_description"]
    allowed = "basic" if refused == "post" else "post"
    assert (await _client_credentials(app_client, client_id, secret, allowed)).status_code == 200
    # Sending the registration again without the pin lifts it.
    await register(app_client, client_id, client_secret=None)
    assert (await _client_credentials(app_client, client_id, secret, refused)).status_code == 200


async def _code(http: httpx.AsyncClient, user: User, params: dict[str, str]) -> httpx.Response:
    """Walk login and consent for an authorization request; the final redirect."""
    page = await http.get(f"/authorize?{urlencode(params)}")
    if page.status_code != 200:
        return page
    login = await http.post(
        "/authorize/login", data={**hidden_fields(page.text), "username": user.username, "password": PASSWORD}
    )
    return await http.post("/authorize/consent", data={**hidden_fields(login.text), "decision": "allow"})


def _request(client_id: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "scope": "openid profile",
        "state": "xyz",
        **extra,
    }


@pytest.fixture(scope="module")
async def pkce_optional(app_client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    client_id, body = await register(
        app_client,
        grant_types=["authorization_code", "refresh_token"],
        scopes=["openid", "profile"],
        redirect_uris=[CALLBACK],
        require_pkce=False,
    )
    assert body["require_pkce"] is False
    return client_id, basic(client_id, body["client_secret"])


async def test_oidcc_server_pkce_less_confidential_code_flow_with_nonce(
    app_client: httpx.AsyncClient, pkce_optional: tuple[str, dict[str, str]], user: User
) -> None:
    client_id, auth = pkce_optional
    redirect = await _code(app_client, user, _request(client_id, nonce=NONCE))
    assert redirect.is_redirect, redirect.text
    code = query_of(redirect.headers["location"])["code"]
    token = await redeem_code(app_client, code, None, headers=auth)
    assert token.status_code == 200, token.text
    assert token.json()["id_token"] and token.json()["refresh_token"]


async def test_oidcc_ensure_request_without_nonce_succeeds_for_code_flow(
    app_client: httpx.AsyncClient, pkce_optional: tuple[str, dict[str, str]], user: User
) -> None:
    """The module's request exactly: no nonce, and (a confidential client) no PKCE; a code is issued."""
    client_id, auth = pkce_optional
    redirect = await _code(app_client, user, _request(client_id))
    assert redirect.is_redirect, redirect.text  # 302 when consent was remembered
    query = query_of(redirect.headers["location"])
    assert "code" in query and "error" not in query
    token = await redeem_code(app_client, query["code"], None, headers=auth)
    assert token.status_code == 200 and "nonce" not in jwt.decode(
        token.json()["id_token"], options={"verify_signature": False}
    )


async def test_a_pkce_less_request_must_be_openid(
    app_client: httpx.AsyncClient, pkce_optional: tuple[str, dict[str, str]], user: User
) -> None:
    """Without ``openid`` there is no ID token, so no nonce could protect the code: PKCE stays required."""
    client_id, _ = pkce_optional
    refused = await app_client.get(
        f"/authorize?{urlencode(_request(client_id, nonce=NONCE, scope='profile'))}"
    )
    assert refused.status_code == 302
    assert query_of(refused.headers["location"])["error"] == "invalid_request"


async def test_a_sent_challenge_is_enforced_for_a_pkce_optional_client(
    app_client: httpx.AsyncClient, pkce_optional: tuple[str, dict[str, str]], user: User
) -> None:
    client_id, auth = pkce_optional
    verifier, challenge = pkce_pair()
    params = _request(client_id, code_challenge=challenge, code_challenge_method="S256")
    redirect = await _code(app_client, user, params)
    code = query_of(redirect.headers["location"])["code"]
    # A challenge that was sent is enforced even though this client may go without PKCE.
    missing = await redeem_code(app_client, code, None, headers=auth)
    assert missing.status_code == 400
    redirect = await _code(app_client, user, params)
    code = query_of(redirect.headers["location"])["code"]
    assert (await redeem_code(app_client, code, verifier, headers=auth)).status_code == 200


async def test_a_code_issued_without_pkce_is_refused_with_a_verifier(
    app_client: httpx.AsyncClient, pkce_optional: tuple[str, dict[str, str]], user: User
) -> None:
    """PKCE downgrade protection (RFC 9700 §2.1.1): a verifier for a code that had no challenge fails."""
    client_id, auth = pkce_optional
    redirect = await _code(app_client, user, _request(client_id, nonce=NONCE))
    code = query_of(redirect.headers["location"])["code"]
    verifier, _ = pkce_pair()
    response = await redeem_code(app_client, code, verifier, headers=auth)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    replay = await redeem_code(app_client, code, None, headers=auth)  # the attempt used the code up
    assert replay.status_code == 400


async def test_pkce_stays_required_by_default_and_for_public_clients(
    app_client: httpx.AsyncClient, web_client: str
) -> None:
    client_id, _ = await register(
        app_client, grant_types=["authorization_code"], scopes=["openid"], redirect_uris=[CALLBACK]
    )
    for client in (client_id, web_client):
        refused = await app_client.get(
            f"/authorize?{urlencode(_request(client, nonce=NONCE, scope='openid'))}"
        )
        assert refused.status_code == 302
        assert "code_challenge is required" in query_of(refused.headers["location"])["error_description"]
    public = await app_client.put(
        "/admin/clients/spa-no-pkce",
        json={
            "name": "spa",
            "type": "public",
            "grant_types": ["authorization_code"],
            "redirect_uris": [CALLBACK],
            "require_pkce": False,
        },
        headers=admin_headers(),
    )
    assert public.status_code == 400 and "PKCE" in public.text


async def test_migration_0005_widens_default_basic_clients_and_downgrades_back(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    engine = create_engine(_fresh_settings(backend, tmp_path, request))
    clients = sa.table(
        "clients", sa.column("client_id"), sa.column("token_endpoint_auth_method"), sa.column("require_pkce")
    )
    codes = sa.table("authorization_codes", sa.column("code_hash"), sa.column("code_challenge"))
    rows = [
        {"client_id": "basic", "client_type": "confidential", "method": "client_secret_basic"},
        {"client_id": "post", "client_type": "confidential", "method": "client_secret_post"},
        {"client_id": "spa", "client_type": "public", "method": "none"},
    ]

    async def methods() -> dict[str, Any]:
        async with engine.connect() as connection:
            found = (
                await connection.execute(sa.select(clients.c.client_id, clients.c.token_endpoint_auth_method))
            ).all()
        return dict(found)  # type: ignore[arg-type]

    try:
        await migrate_to(engine, "0002")
        async with engine.begin() as connection:
            await connection.execute(
                sa.text(
                    "INSERT INTO clients (client_id, name, client_type, token_endpoint_auth_method, "
                    "grant_types, scopes, audiences, redirect_uris, created_at, updated_at) VALUES "
                    "(:client_id, :client_id, :client_type, :method, '[]', '[]', '[]', '[]', "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                rows,
            )
        await migrate_to(engine, "0005")
        assert await methods() == {"basic": None, "post": "client_secret_post", "spa": "none"}
        async with engine.begin() as connection:
            pkce = (await connection.execute(sa.select(clients.c.require_pkce))).scalars().all()
            assert [bool(value) for value in pkce] == [True, True, True]
            await connection.execute(
                sa.text(
                    "INSERT INTO authorization_codes (code_hash, client_id, user_id, redirect_uri, scope, "
                    "audience, code_challenge, auth_time, expires_at) VALUES "
                    "('h1', 'basic', 'u', 'x', 'openid', '', NULL, 0, CURRENT_TIMESTAMP), "
                    "('h2', 'basic', 'u', 'x', 'openid', '', 'c', 0, CURRENT_TIMESTAMP)"
                )
            )
        await migrate_to(engine, "0002", downgrade=True)
        assert await methods() == {
            "basic": "client_secret_basic",
            "post": "client_secret_post",
            "spa": "none",
        }
        async with engine.connect() as connection:
            left = (await connection.execute(sa.select(codes.c.code_hash))).scalars().all()
        assert left == ["h2"]
    finally:
        await engine.dispose()
